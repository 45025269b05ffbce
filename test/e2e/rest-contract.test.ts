/**
 * The REST contract as an outsider sees it: the OpenAPI document lints clean with a standard linter,
 * every operation declares auth, summary and 4xx answers, and no malformed input — bad JSON, wrong
 * types, huge or deeply nested bodies, hostile path segments, wrong auth — yields a 5xx, a hang, or a
 * change.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { Deployment, type ApiReply } from '../harness/deployment.js';

let d: Deployment;
interface Op {
  method: string;
  path: string;
  spec: Record<string, unknown>;
}
let doc: {
  servers?: { url: string }[];
  paths: Record<string, Record<string, Record<string, unknown>>>;
  components?: Record<string, unknown>;
};
let ops: Op[] = [];

beforeAll(async () => {
  // Every route is called twice without a valid key: the default throttle (120 a minute) would answer 429 part-way.
  d = await Deployment.create({ mainConfig: { authFailuresPerMinute: 10_000 } });
  await d.install('host', 'fuzz-target');
  await d.startAgent('fuzz-target');
  // A real tenant of the same name, so relayed fuzz reaches a tenant process through its host.
  await d.createTenant('fuzz-target', 'fuzz-target');
  doc = (await d.api<typeof doc>('GET', '/docs/json', undefined, { key: null })).body;
  ops = Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, spec]) => ({ method: method.toUpperCase(), path, spec })),
  );
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

function expectClientError(r: ApiReply, what: string): void {
  expect(r.status, `${what} → ${r.status} ${r.raw.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
  expect(r.status, `${what} → ${r.status} ${r.raw.slice(0, 200)}`).toBeLessThan(500);
  const body = r.body as { error?: { code?: unknown; message?: unknown } };
  expect(typeof body?.error?.code, `${what}: error.code`).toBe('string');
  expect(typeof body?.error?.message, `${what}: error.message`).toBe('string');
}

/** Fills path parameters with a value (hostile or valid). */
function fill(path: string, value: string): string {
  return path.replace(/\{[^}]+\}/g, value);
}

describe('OpenAPI document', () => {
  it('passes the Redocly recommended ruleset with no errors or warnings', async () => {
    const config = await createConfig({ extends: ['recommended'] });
    const problems = await lintFromString({ source: JSON.stringify(doc), absoluteRef: '/openapi.json', config });
    const shown = problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} @ ${p.location[0]?.pointer}`);
    expect(shown).toEqual([]);
  });

  it('declares servers, the bearer scheme, and for every operation a summary, operationId and 4xx responses', () => {
    expect(doc.servers?.[0]?.url).toMatch(/^https:\/\//);
    expect(JSON.stringify(doc.components)).toContain('"scheme":"bearer"');
    expect(ops.length).toBeGreaterThanOrEqual(12);
    for (const op of ops) {
      const responses = Object.keys(op.spec.responses as object);
      expect(op.spec.summary, `${op.method} ${op.path}`).toEqual(expect.any(String));
      expect(op.spec.operationId, `${op.method} ${op.path}`).toEqual(expect.any(String));
      expect(
        responses.some((c) => /^4\d\d$/.test(c)) || op.path === '/api/v1/health',
        `${op.method} ${op.path} has a 4xx`,
      ).toBe(true);
    }
  });
});

describe('no input yields a 5xx, a hang or a change', () => {
  const hostileSegments = [
    '..%2f..%2fetc%2fpasswd',
    '%00',
    'A'.repeat(300),
    '%E2%80%AE',
    'UPPER',
    '-x-',
    '%25',
    "'%3B--",
    '%F0%9F%92%A9',
  ];

  it('rejects every authenticated route without a key or with a bogus key (401, audited)', async () => {
    // The public routes (health, readiness, console sign-in) are the ones whose operation declares no security.
    const isPublic = (o: Op) => Array.isArray(o.spec.security) && o.spec.security.length === 0;
    expect(ops.filter(isPublic).map((o) => `${o.method} ${o.path}`)).toEqual([
      'GET /api/v1/health',
      'GET /readyz',
      'POST /api/v1/session',
    ]);
    for (const op of ops.filter((o) => !isPublic(o))) {
      const p = fill(op.path, 'fuzz-target');
      expectClientError(
        await d.api(op.method, p, op.method === 'POST' ? {} : undefined, { key: null }),
        `${op.method} ${p} no key`,
      );
      const r = await d.api(op.method, p, op.method === 'POST' ? {} : undefined, {
        key: 'pal_AAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBB',
      });
      expectClientError(r, `${op.method} ${p} bogus key`);
      expect(r.status).toBe(401);
    }
    const audit = await d.api<{ action: string; outcome: string }[]>('GET', '/audit?action=auth&limit=1000');
    expect(audit.body.filter((a) => a.outcome === 'denied').length).toBeGreaterThanOrEqual(ops.length);
  });

  it('answers hostile path segments with 4xx JSON', async () => {
    for (const op of ops.filter((o) => o.path.includes('{'))) {
      for (const seg of hostileSegments) {
        const p = fill(op.path, seg);
        expectClientError(
          await d.api(op.method, p, op.method === 'POST' ? { command: 'ping' } : undefined),
          `${op.method} ${p}`,
        );
      }
    }
    expectClientError(await d.api('GET', '/api/v1/%'), 'lone percent');
    expectClientError(await d.api('GET', `/api/v1/${'x/'.repeat(2000)}`), 'very deep path');
  });

  it('answers malformed bodies with 4xx JSON naming the problem', async () => {
    const bodies: { what: string; raw?: string | Buffer; json?: unknown; headers?: Record<string, string> }[] = [
      { what: 'bad JSON', raw: '{"kind": "host", ' },
      { what: 'JSON null', raw: 'null' },
      { what: 'array', json: [1, 2, 3] },
      { what: 'string', json: 'hello' },
      {
        what: 'wrong types',
        json: { kind: 7, name: ['x'], command: { a: 1 }, ttl: 5, wait: 'yes', timeoutMs: 'soon' },
      },
      { what: 'unknown field', json: { kind: 'host', name: 'ok-name', command: 'ping', extra: true } },
      { what: 'deep nesting', raw: '['.repeat(100_000) + ']'.repeat(100_000) },
      { what: 'deep object nesting', raw: '{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000) },
      { what: 'huge body', raw: JSON.stringify({ kind: 'host', name: 'x'.repeat(2 * 1024 * 1024) }) },
      {
        what: 'wrong content type',
        raw: 'kind=host&name=x',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      },
      { what: 'proto pollution', raw: '{"__proto__": {"admin": true}, "constructor": {"prototype": {"x": 1}}}' },
      { what: 'invalid UTF-8', raw: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]) },
    ];
    for (const op of ops.filter((o) => o.method === 'POST')) {
      const p = fill(op.path, 'fuzz-target');
      for (const b of bodies) {
        const r = await d
          .api(op.method, p, b.json, { rawBody: b.raw, headers: b.headers })
          .catch((e: NodeJS.ErrnoException) => {
            // A body declared over the limit is answered 413 and the connection closed (fastify: the client
            // would send it anyway), so a client still writing it may see the close before the answer.
            if (b.what === 'huge body' && (e.code === 'EPIPE' || e.code === 'ECONNRESET')) return undefined;
            throw e;
          });
        if (r) expectClientError(r, `${op.method} ${p} ${b.what}`);
      }
    }
    const named = await d.api<{ error: { message: string } }>('POST', '/installers', {
      kind: 'host',
      name: 'BAD NAME',
    });
    expect(named.status).toBe(400);
    expect(named.body.error.message).toContain('name');
  });

  it('answers headers or a request line too large for the HTTP parser with 431 JSON', async () => {
    const r = await d.api('GET', `/hosts?limit=${'9'.repeat(20_000)}`);
    expect(r.status).toBe(431);
    expectClientError(r, 'huge query string');
    const h = await d.api('GET', '/hosts', undefined, { headers: { 'x-junk': 'j'.repeat(20_000) } });
    expect(h.status).toBe(431);
  });

  it('answers bad query strings with 4xx JSON', async () => {
    for (const q of ['limit=-1', 'limit=abc', 'limit=99999999999', 'unknown=1', 'limit=1&limit=2']) {
      expectClientError(await d.api('GET', `/audit?${q}`), `audit?${q}`);
      expectClientError(await d.api('GET', `/hosts/fuzz-target/commands?${q}`), `commands?${q}`);
    }
  });

  it('left nothing changed: the same hosts, no new enrolment keys, main still serving', async () => {
    const hosts = await d.api<{ name: string; status: string }[]>('GET', '/hosts');
    expect(hosts.body.map((h) => h.name)).toEqual(['fuzz-target']);
    expect(hosts.body[0].status).toBe('online');
    const audit = await d.api<{ action: string }[]>('GET', '/audit?action=enrol-key.create&limit=1000');
    expect(audit.body).toHaveLength(1);
    const ping = await d.api<{ state: string }>('POST', '/hosts/fuzz-target/commands', { command: 'ping' });
    expect(ping.body.state).toBe('done');
    const incidents = await d.api<{ items: unknown[] }>('GET', '/tenants/fuzz-target/api/incidents');
    expect(incidents.status).toBe(200);
    expect(incidents.body.items).toEqual([]);
  });
});
