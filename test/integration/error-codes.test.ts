/**
 * The error table (common/error-codes.ts) against the code and the docs: every code the source quotes is
 * a row, every row is quoted somewhere, every class takes only its category's codes, statuses come from
 * the rows, and the committed docs/errors.md is what the table renders. The one unit test that reads
 * files: the source tree and the committed docs are what it checks.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FastifyError } from 'fastify';
import * as table from '#common/error-codes.js';
import {
  CATEGORY_STATUS,
  ERROR_CODE_FAMILIES,
  ERROR_CODES,
  ERROR_SECTIONS,
  httpStatusOf,
  peerCode,
} from '#common/error-codes.js';
import {
  BadParameterError,
  DependencyError,
  NotFoundError,
  PalisadeError,
  UnavailableError,
  RunFailedError,
  WS_CLOSE,
} from '#common/errors.js';
import { classifyHttpError } from '#common/http-errors.js';
import { exitCodeFor } from '#common/cli-output.js';
import { REPO } from '../harness/processes.js';

const SOURCE_DIRS = ['main', 'agent', 'admin', 'installer', 'common', 'proto', 'bin', 'bench', 'scripts'];
const TABLE_MODULE = join('common', 'error-codes.ts');
/** Node's codes that the source reads (to translate them) but never sends. */
const NOT_OURS = new Set(['ERR_HTTP_REQUEST_TIMEOUT']);
/** Rows whose status is not their category's: answers the HTTP edge writes itself. */
const EDGE_STATUSES = { ERR_HEADERS_TOO_LARGE: 431, ERR_REQUEST_TIMEOUT: 408, ERR_UNSUPPORTED_MEDIA_TYPE: 415 };

/** Codes quoted whole ('ERR_X' or "ERR_X"), and prefixes of codes made in a template literal (`ERR_X_${…}`). */
function codesIn(text: string): { codes: string[]; families: string[] } {
  return {
    codes: [...text.matchAll(/['"](ERR_[A-Z0-9_]+)['"]/g)].map((m) => m[1]),
    families: [...text.matchAll(/`(ERR_[A-Z0-9_]*_)\$\{/g)].map((m) => m[1]),
  };
}

/** Where each code and family is quoted in the source (TypeScript, the CLI's entry script, the native addon). */
function scanSource(): { codes: Map<string, string[]>; families: Set<string> } {
  const codes = new Map<string, string[]>();
  const families = new Set<string>();
  for (const dir of SOURCE_DIRS) {
    for (const rel of readdirSync(join(REPO, dir), { recursive: true, encoding: 'utf8' })) {
      const file = join(dir, rel);
      const generated = /(^|\/)(node_modules|build|gen)\//.test(file);
      if (!/\.(ts|js|mjs|c)$/.test(file) || generated || file === TABLE_MODULE) continue;
      const found = codesIn(readFileSync(join(REPO, file), 'utf8'));
      for (const c of found.codes) codes.set(c, [...(codes.get(c) ?? []), file]);
      for (const f of found.families) families.add(f);
    }
  }
  return { codes, families };
}

describe('the error table', () => {
  const source = scanSource();
  const listed = Object.keys(ERROR_CODES);

  it('finds quoted codes and template prefixes, and no code inside another name', () => {
    const sample = "new X('ERR_A_B', 'm'); send(\"ERR_C\"); `ERR_HTTP_${s}`; 'FST_ERR_CTP_X'; // ERR_IN_A_COMMENT";
    expect(codesIn(sample)).toEqual({ codes: ['ERR_A_B', 'ERR_C'], families: ['ERR_HTTP_'] });
  });

  it('lists every code the source quotes', () => {
    const unlisted = [...source.codes]
      .filter(([c]) => !(c in ERROR_CODES) && !NOT_OURS.has(c))
      .map(([c, files]) => `${c} (${files.join(', ')})`);
    expect(unlisted, 'add these to common/error-codes.ts').toEqual([]);
    expect(listed.length).toBeGreaterThan(200);
  });

  it('lists no code that the source does not quote', () => {
    expect(
      listed.filter((c) => !source.codes.has(c)),
      'remove these rows, or the code was renamed',
    ).toEqual([]);
  });

  it('lists exactly the code families the source makes from a status', () => {
    expect([...source.families].sort()).toEqual(Object.keys(ERROR_CODE_FAMILIES).sort());
  });

  it('has each code in one section, well formed, with a sentence of meaning', () => {
    const inSections = Object.values(ERROR_SECTIONS).flatMap((rows) => Object.keys(rows));
    expect(inSections.length, 'a code in two sections').toBe(listed.length);
    expect(new Set(inSections)).toEqual(new Set(listed));
    for (const [code, row] of Object.entries(ERROR_CODES)) {
      expect(code).toMatch(/^ERR_[A-Z0-9]+(_[A-Z0-9]+)*$/);
      expect(row.message, code).toMatch(/^[A-Z0-9-].{9,}\.$/s);
    }
  });

  it("gives each row its category's status, but for the answers the HTTP edge writes itself", () => {
    const differing = Object.fromEntries(
      Object.entries(ERROR_CODES)
        .filter(([, r]) => r.status !== CATEGORY_STATUS[r.category])
        .map(([c, r]) => [c, r.status]),
    );
    expect(differing).toEqual(EDGE_STATUSES);
  });

  it('answers a failed dependency 424, and only for services outside Palisade that integrations call', () => {
    // Palisade did its part and the service it called did not: a 4xx whose category says so, kept
    // apart from Palisade's own 5xx (unavailable, timeout, connection) so those still mean our fault.
    expect(CATEGORY_STATUS.dependency).toBe(424);
    const dependency = Object.entries(ERROR_CODES).filter(([, r]) => r.category === 'dependency');
    expect(dependency.map(([c]) => c).filter((c) => !/^ERR_(AWS|INTEGRATION)_/.test(c))).toEqual([]);
    expect(dependency.map(([c]) => c)).toEqual(expect.arrayContaining(['ERR_AWS_SERVICE', 'ERR_AWS_TIMEOUT']));
    expect(httpStatusOf(new DependencyError('ERR_AWS_UNREACHABLE', 'no route'))).toBe(424);
  });

  it("answers a script's own failure 422 run-failed: not bad input (CLI exit 1, not 2), not Palisade's 5xx", () => {
    for (const code of ['ERR_SCRIPT_ERROR', 'ERR_SCRIPT_TIMEOUT', 'ERR_SCRIPT_MEMORY'] as const) {
      expect(ERROR_CODES[code]).toMatchObject({ category: 'run-failed', status: 422 });
      expect(exitCodeFor(new RunFailedError(code, 'the script threw'))).toBe(1);
    }
    expect(exitCodeFor(new BadParameterError('ERR_SCRIPT_SYNTAX', 'line 2'))).toBe(2);
  });

  it('answers REST errors with the status of their row; a re-wrapped peer code with its category', () => {
    const answer = (e: PalisadeError) => classifyHttpError(e as unknown as FastifyError);
    expect(answer(new BadParameterError('ERR_BAD_NAME', 'no'))).toEqual({
      status: 400,
      code: 'ERR_BAD_NAME',
      message: 'no',
    });
    expect(answer(new NotFoundError('ERR_TENANT_NOT_FOUND', 'no tenant')).status).toBe(404);
    expect(answer(new UnavailableError('ERR_TENANT_BUSY', 'moving')).status).toBe(503);
    // The relay answers a host's refusal as unavailable whatever the host's code meant there.
    expect(httpStatusOf(new PalisadeError('unavailable', peerCode('ERR_TENANT_NOT_FOUND'), 'not here'))).toBe(503);
    expect(httpStatusOf(new PalisadeError('conflict', 'ERR_TENANT_MOVE_FAILED', 'target refused'))).toBe(409);
    expect(httpStatusOf(new PalisadeError('unavailable', peerCode('ERR_FROM_A_NEWER_PEER'), 'x'))).toBe(503);
  });

  it("says what a schema check wants: a missing field is required, an enum's allowed values are listed", () => {
    const invalid = (validationContext: string, v: Record<string, unknown>) =>
      classifyHttpError(
        Object.assign(new Error('x'), { validation: [v], validationContext }) as unknown as FastifyError,
      );
    const required = { keyword: 'required', instancePath: '', params: { missingProperty: 'incident' } };
    expect(invalid('body', { ...required, message: "must have required property 'incident'" })).toEqual({
      status: 400,
      code: 'ERR_BAD_REQUEST',
      message: 'body.incident is required',
    });
    const status = { keyword: 'enum', instancePath: '/status', params: { allowedValues: ['active', 'used', 1] } };
    expect(invalid('querystring', { ...status, message: 'must be equal to one of the allowed values' }).message).toBe(
      'querystring.status must be one of active, used, 1',
    );
    const other = {
      keyword: 'minLength',
      instancePath: '/q',
      params: {},
      message: 'must NOT have fewer than 1 characters',
    };
    expect(invalid('querystring', other).message).toBe('querystring.q must NOT have fewer than 1 characters');
  });

  it('names every form an anyOf accepts: a command from a list, or of a pattern', () => {
    const at = { instancePath: '/command' };
    const validation = [
      {
        ...at,
        schemaPath: '#/properties/command/anyOf/0/enum',
        keyword: 'enum',
        params: { allowedValues: ['a', 'b'] },
      },
      {
        ...at,
        schemaPath: '#/properties/command/anyOf/1/pattern',
        keyword: 'pattern',
        params: { pattern: '^x:[a-z]+$' },
      },
      { ...at, schemaPath: '#/properties/command/anyOf', keyword: 'anyOf', params: {}, message: 'must match a schema' },
    ];
    const err = Object.assign(new Error('x'), { validation, validationContext: 'body' }) as unknown as FastifyError;
    expect(classifyHttpError(err).message).toBe(
      'body.command must be one of a, b; or "x:" followed by one or more lowercase letters',
    );
  });

  it('types each class to the codes of its category', () => {
    // @ts-expect-error a code that is no row of the table does not compile
    expect(new BadParameterError('ERR_NOT_IN_THE_TABLE', 'x').category).toBe('bad-parameter');
    // @ts-expect-error a not-found code does not compile in a bad-parameter error
    expect(new BadParameterError('ERR_TENANT_NOT_FOUND', 'x').code).toBe('ERR_TENANT_NOT_FOUND');
  });

  it('is what the committed docs/errors.md shows (regenerate with npm run docs:errors)', async () => {
    const script = pathToFileURL(join(REPO, 'scripts', 'gen-error-docs.mjs')).href;
    type Inputs = { table: typeof table; exitCodeFor: typeof exitCodeFor; wsClose: typeof WS_CLOSE };
    const { renderErrorDocs } = (await import(script)) as { renderErrorDocs: (inputs: Inputs) => string };
    const docs = renderErrorDocs({ table, exitCodeFor, wsClose: WS_CLOSE });
    for (const code of listed) expect(docs).toContain(`| \`${code}\` |`);
    const committed = readFileSync(join(REPO, 'docs', 'errors.md'), 'utf8');
    expect(committed, 'docs/errors.md is stale: run npm run docs:errors').toBe(docs);
  });
});
