/**
 * A strict reader of the Prometheus text exposition format (0.0.4) for tests: every line must be empty,
 * `# HELP`, `# TYPE` or a sample `name{label="value",…} value [timestamp]`, each sample must belong to a family
 * whose TYPE came first, and a family is declared once. It throws on the first malformed line, naming it.
 * prom-client ships no parser, and a lenient one would let a broken exposition pass. Not a full implementation:
 * no other comments, no exemplars.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  /** Family name → its TYPE. */
  types: Map<string, string>;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
const VALUE = String.raw`"(?:[^"\\\n]|\\[\\"n])*"`;
/** A float as Go's ParseFloat reads it, which is what Prometheus uses: NaN and Inf in any case (prom-client: `Nan`). */
const NUMBER = String.raw`[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?[iI][nN][fF](?:[iI][nN][iI][tT][yY])?|[nN][aA][nN]`;
const SAMPLE_RE = new RegExp(
  `^(${NAME})(?:\\{((?:${LABEL}=${VALUE})(?:,${LABEL}=${VALUE})*,?)?\\})? (${NUMBER})(?: -?\\d+)?$`,
);
const HELP_RE = new RegExp(`^# HELP (${NAME}) (?:[^\\\\\\n]|\\\\[\\\\n])*$`);
const TYPE_RE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
const PAIR_RE = new RegExp(`(${LABEL})=(${VALUE})`, 'g');
/** The series a histogram or summary family writes besides its own name. */
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count'] };

export function parseExposition(text: string): Exposition {
  if (!text.endsWith('\n')) throw new Error('the exposition does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  const types = new Map<string, string>();
  const helped = new Set<string>();
  const samples: Sample[] = [];
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line.slice(0, 200))}`;
    if (line === '') return; // the format ignores empty lines (prom-client puts one between families)
    const help = HELP_RE.exec(line);
    const type = TYPE_RE.exec(line);
    if (help) {
      if (helped.has(help[1])) throw new Error(`${where}: a second HELP for ${help[1]}`);
      helped.add(help[1]);
    } else if (type) {
      if (types.has(type[1])) throw new Error(`${where}: a second TYPE for ${type[1]}`);
      types.set(type[1], type[2]);
    } else {
      const m = SAMPLE_RE.exec(line);
      if (!m) throw new Error(`${where}: neither # HELP, # TYPE nor a sample`);
      if (!familyOf(m[1], types)) throw new Error(`${where}: a sample of ${m[1]} before its family's TYPE`);
      const labels: Record<string, string> = {};
      for (const [, k, v] of (m[2] ?? '').matchAll(PAIR_RE)) {
        if (k in labels) throw new Error(`${where}: label ${k} twice`);
        labels[k] = JSON.parse(v) as string; // the format's escapes (\\, \", \n) are JSON's
      }
      samples.push({ name: m[1], labels, value: floatOf(m[3]) });
    }
  });
  return { types, samples };
}

function floatOf(text: string): number {
  const t = text.toLowerCase();
  if (t === 'nan') return NaN;
  if (/^[+-]?inf/.test(t)) return t.startsWith('-') ? -Infinity : Infinity;
  return Number(text);
}

function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  for (const [family, type] of types) if ((SUFFIXES[type] ?? []).some((s) => name === family + s)) return family;
  return undefined;
}

/** The sum of the samples named `name` whose labels include `labels` (0 when there is none). */
export function sampleSum(e: Exposition, name: string, labels: Record<string, string> = {}): number {
  return e.samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);
}
