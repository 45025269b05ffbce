/**
 * The input rules main's API and each tenant's API share (common/http-input.ts), on a bare fastify app through
 * inject (no socket): an empty query value is absent before the querystring's schema sees it, and an empty body
 * with a JSON content type is no body, while a route whose schema needs a body still answers 400.
 */
import { describe, expect, it } from 'vitest';
import Fastify from 'fastify';
import { acceptEmptyJsonBody, dropEmptyQueryValues, installEmptyQueryRule } from '#common/http-input.js';
import { installErrorHandlers } from '#common/http-errors.js';

async function app() {
  const a = Fastify({ ajv: { customOptions: { coerceTypes: false, removeAdditional: false } } });
  installEmptyQueryRule(a);
  acceptEmptyJsonBody(a);
  a.get(
    '/search',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            q: { type: 'string', minLength: 1 },
            limit: { type: 'string', pattern: '^[0-9]{1,3}$' },
            cursor: { type: 'string', minLength: 1 },
          },
        },
      },
    },
    async (req) => ({ query: { ...(req.query as object) } }),
  );
  a.post('/publish', async (req) => ({ body: req.body ?? null }));
  a.post(
    '/create',
    {
      schema: {
        body: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1 } } },
      },
    },
    async (req) => req.body,
  );
  installErrorHandlers(a);
  await a.ready();
  return a;
}

describe('empty query values', () => {
  it('are absent: a template with blank slots passes a schema that refuses an empty string', async () => {
    const a = await app();
    const r = await a.inject({ method: 'GET', url: '/search?q=&limit=&cursor=' });
    expect(r.statusCode, r.body).toBe(200);
    expect(r.json()).toEqual({ query: {} });
    const some = await a.inject({ method: 'GET', url: '/search?q=alert&limit=' });
    expect(some.statusCode, some.body).toBe(200);
    expect(some.json()).toEqual({ query: { q: 'alert' } });
    // A value that is not empty is still checked, and an unknown parameter with a value still refused.
    const bad = await a.inject({ method: 'GET', url: '/search?q=&limit=abc' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toContain('limit');
    expect((await a.inject({ method: 'GET', url: '/search?bogus=1&q=' })).statusCode).toBe(400);
    await a.close();
  });

  it('of a repeated parameter are dropped, the others kept', () => {
    const q: Record<string, unknown> = { a: ['', 'x'], b: ['', ''], c: ['y', 'z', ''], d: '', e: 'v' };
    dropEmptyQueryValues(q);
    expect(q).toEqual({ a: 'x', c: ['y', 'z'], e: 'v' });
    dropEmptyQueryValues(undefined);
  });
});

describe('an empty body with a JSON content type', () => {
  it('is no body on a route that takes none, as without a content type', async () => {
    const a = await app();
    for (const headers of [
      { 'content-type': 'application/json' },
      { 'content-type': 'application/json; charset=utf-8' },
    ]) {
      const r = await a.inject({ method: 'POST', url: '/publish', headers, payload: '' });
      expect(r.statusCode, r.body).toBe(200);
      expect(r.json()).toEqual({ body: null });
    }
    expect((await a.inject({ method: 'POST', url: '/publish' })).statusCode).toBe(200);
    await a.close();
  });

  it('is still refused with 400 by a route that needs a body; JSON is still parsed and checked', async () => {
    const a = await app();
    const json = { 'content-type': 'application/json' };
    const empty = await a.inject({ method: 'POST', url: '/create', headers: json, payload: '' });
    expect(empty.statusCode).toBe(400);
    expect(empty.json().error).toMatchObject({ code: 'ERR_BAD_REQUEST' });
    expect(empty.json().error.message).toMatch(/^body /);
    const missing = await a.inject({ method: 'POST', url: '/create', headers: json, payload: '{}' });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.message).toContain('name');
    const ok = await a.inject({ method: 'POST', url: '/create', headers: json, payload: '{"name":"x"}' });
    expect(ok.json()).toEqual({ name: 'x' });
    const bad = await a.inject({ method: 'POST', url: '/create', headers: json, payload: '{"name":' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('ERR_BAD_BODY');
    const proto = await a.inject({ method: 'POST', url: '/publish', headers: json, payload: '{"__proto__":{"x":1}}' });
    expect(proto.statusCode).toBe(400);
    await a.close();
  });
});
