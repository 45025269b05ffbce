/**
 * The documentation in the repository documents the product by itself: README.md and docs/ may link only to
 * files (and headings) that exist in the repository, never mention a design or style file users do not
 * have or an issue number, and keep lines readable (≤ 120 characters, as the formatter wraps prose).
 * Not a style check of the prose. The checker is pure and is tried on samples first; the last test runs it
 * over the repository's Markdown files, which it reads: the docs are its input (unlike other unit tests).
 */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { REPO } from '../harness/processes.js';

const MAX_LINE = 120;
/** What points outside the repository: the design and style documents, the shared folder, issue numbers. */
const OUTSIDE = [/\.\.\/shared\b/, /\bDESIGN\.md\b/, /\bDESIGN §/, /\bSTYLE\.md\b/, /\bissues? #?\d+/i];

interface Repo {
  exists(path: string): boolean;
  read(path: string): string;
}

/** GitHub's anchor for a heading: lower case, punctuation (backticks too) dropped, each space a hyphen. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

const FENCE = /^\s*(```|~~~)/;

/** The lines of a Markdown text outside fenced code blocks (those blanked, so line numbers hold). */
function outsideFences(text: string): string[] {
  let inFence = false;
  return text.split('\n').map((line) => {
    if (FENCE.test(line)) {
      inFence = !inFence;
      return '';
    }
    return inFence ? '' : line;
  });
}

function anchors(text: string): Set<string> {
  const headings = outsideFences(text).filter((l) => /^#{1,6}\s/.test(l));
  return new Set(headings.map((l) => slug(l.replace(/^#+\s/, ''))));
}

const INLINE_LINK = /!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g;

/** Link targets of a Markdown text with their line: inline links and images, and reference definitions. */
function links(text: string): { line: number; target: string }[] {
  const out: { line: number; target: string }[] = [];
  outsideFences(text).forEach((withCode, i) => {
    const l = withCode.replace(/`[^`]*`/g, ''); // `[--labels x](…)` in a code span is no link
    for (const m of l.matchAll(INLINE_LINK)) out.push({ line: i + 1, target: m[1] });
    const def = /^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/.exec(l);
    if (def) out.push({ line: i + 1, target: def[1] });
  });
  return out;
}

/** Every problem of one Markdown file (`file` relative to the repository root), as `file:line: what`. */
function docProblems(file: string, repo: Repo): string[] {
  const text = repo.read(file);
  const problems: string[] = [];
  text.split('\n').forEach((l, i) => {
    const where = `${file}:${i + 1}`;
    const chars = [...l].length;
    // A Markdown table row cannot be wrapped (the formatter leaves tables alone too).
    if (chars > MAX_LINE && !l.startsWith('|'))
      problems.push(`${where}: line of ${chars} characters (at most ${MAX_LINE})`);
    for (const re of OUTSIDE) {
      const m = re.exec(l);
      if (m) problems.push(`${where}: mentions ${m[0]}, which is not in the repository`);
    }
  });
  for (const { line, target } of links(text)) {
    const where = `${file}:${line}`;
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) {
      if (/^file:/i.test(target)) problems.push(`${where}: links to a local file outside the repository (${target})`);
      continue; // https:, mailto: — public addresses, not files of the repository
    }
    const [path, anchor] = target.split('#', 2);
    // `/x` is the repository's root on GitHub; anything else is relative to the linking file.
    const resolved = path === '' ? file : path.startsWith('/') ? path.slice(1) : join(dirname(file), decodeURI(path));
    if (resolved.startsWith('..')) {
      problems.push(`${where}: links outside the repository (${target})`);
    } else if (!repo.exists(resolved)) {
      problems.push(`${where}: links to ${target}, which does not exist`);
    } else if (anchor !== undefined && /\.md$/i.test(resolved) && !anchors(repo.read(resolved)).has(anchor)) {
      problems.push(`${where}: links to ${target}, but ${resolved} has no heading #${anchor}`);
    }
  }
  return problems;
}

/** A repository made of the given files (a folder exists when a file is under it), for the samples. */
const fakeRepo = (files: Record<string, string>): Repo => ({
  exists: (p) => p in files || Object.keys(files).some((f) => f.startsWith(`${p.replace(/\/$/, '')}/`)),
  read: (p) => files[p],
});

describe('docs checker on samples', () => {
  const base = {
    'docs/a.md': '# A\n\n## The shortest path: direct engine ⇄ host\n### `main.json`\n',
    'main/config.ts': '',
  };

  it('accepts links to files, folders and headings that exist, and public addresses', () => {
    const readme = [
      '[a](docs/a.md#the-shortest-path-direct-engine--host) [j](docs/a.md#mainjson)',
      '[m](main/) [c](/main/config.ts) ![i](docs/a.md) [w](https://nodejs.org "Node")',
      '[ref]: docs/a.md',
    ].join('\n');
    expect(docProblems('README.md', fakeRepo({ ...base, 'README.md': readme }))).toEqual([]);
  });

  it('names each missing file, missing heading and path out of the repository with its line', () => {
    const doc = [
      'ok',
      '[x](gone.md) and [y](a.md#nowhere)',
      '[z](../../outside/x.md)',
      '[r]: ../common/none.ts',
      '[f](file:///etc/x)',
    ];
    expect(docProblems('docs/b.md', fakeRepo({ ...base, 'docs/b.md': doc.join('\n') }))).toEqual([
      'docs/b.md:2: links to gone.md, which does not exist',
      'docs/b.md:2: links to a.md#nowhere, but docs/a.md has no heading #nowhere',
      'docs/b.md:3: links outside the repository (../../outside/x.md)',
      'docs/b.md:4: links to ../common/none.ts, which does not exist',
      'docs/b.md:5: links to a local file outside the repository (file:///etc/x)',
    ]);
  });

  it('refuses mentions of the design and style files, the shared folder and issue numbers, in code too', () => {
    const repo = fakeRepo({ 'docs/c.md': 'See DESIGN.md\n`../shared/STYLE.md`\nas in issue 4\nsee DESIGN §8\n' });
    expect(docProblems('docs/c.md', repo)).toEqual([
      'docs/c.md:1: mentions DESIGN.md, which is not in the repository',
      'docs/c.md:2: mentions ../shared, which is not in the repository',
      'docs/c.md:2: mentions STYLE.md, which is not in the repository',
      'docs/c.md:3: mentions issue 4, which is not in the repository',
      'docs/c.md:4: mentions DESIGN §, which is not in the repository',
    ]);
  });

  it('ignores links inside code, counts characters, not bytes, against the line limit, and lets table rows be long', () => {
    const long = ['→'.repeat(MAX_LINE), 'x'.repeat(MAX_LINE + 1), `| ${'y'.repeat(MAX_LINE)} |`];
    const doc = ['```sh', '[x](nowhere.md)', '```', '`[y](nowhere.md)`', ...long];
    expect(docProblems('docs/d.md', fakeRepo({ 'docs/d.md': doc.join('\n') }))).toEqual([
      `docs/d.md:6: line of ${MAX_LINE + 1} characters (at most ${MAX_LINE})`,
    ]);
  });
});

/** README.md and every Markdown file under docs/, relative to the repository root. */
function markdownFiles(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(join(REPO, dir), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.md') ? [join(dir, e.name)] : [],
    );
  return ['README.md', ...walk('docs')];
}

describe("the repository's documentation", () => {
  it('links only to what exists in the repository, mentions nothing outside it, keeps lines readable', () => {
    const repo: Repo = {
      exists: (p) => existsSync(resolve(REPO, p)),
      read: (p) => readFileSync(resolve(REPO, p), 'utf8'),
    };
    const files = markdownFiles();
    expect(files).toContain('docs/README.md');
    expect(files.flatMap((f) => docProblems(f, repo))).toEqual([]);
  });
});
