/**
 * The built-in http integration's runner (agent/integrations/http/run.ts) against a local HTTP service that
 * records what it got: each auth type reaches the service as the connection says and an arg cannot replace
 * it; a JSON body is sent as JSON; any status the service answers is a result; an answer over the cap, a
 * path climbing out of baseUrl, and a port nothing listens on are typed errors (the service's: 424); so is a result
 * that escaping makes too large as JSON (a 400: ask for less), and the wait is the call's budget at most.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpStatusOf } from '#common/error-codes.js';
import { MAX_RESPONSE_BYTES, runHttpRequest, type HttpConnectionInput } from '../../agent/integrations/http/run.js';
import { allowLocalTargets } from '../../agent/integrations/target-guard.js';
import { MAX_RESULT_BYTES } from '../../agent/integrations/call-limits.js';

let server: Server;
const held: ServerResponse[] = [];
const seen: { method: string; url: string; headers: IncomingHttpHeaders; body: string }[] = [];
let base = '';

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      if (req.url?.startsWith('/api/big')) return void res.end('x'.repeat(MAX_RESPONSE_BYTES + 1));
      // Under the raw cap, but each byte 0x01 is six as JSON (\u0001).
      if (req.url?.startsWith('/api/controls')) return void res.end(Buffer.alloc(MAX_RESPONSE_BYTES, 1));
      if (req.url?.startsWith('/api/slow')) return void held.push(res);
      if (req.url?.startsWith('/api/missing')) {
        res.statusCode = 404;
        return void res.end('no such thing');
      }
      res.setHeader('content-type', 'application/vnd.api+json; charset=utf-8');
      res.end(JSON.stringify({ ok: true }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}/api`;
  // Loopback is the host itself: reached only where its agent.json says so (and port 9, where nothing listens).
  allowLocalTargets([`127.0.0.1:${port}`, '127.0.0.1:9']);
});
afterAll(async () => {
  for (const res of held) res.destroy();
  allowLocalTargets([]);
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const conn = (over: Partial<HttpConnectionInput> = {}): HttpConnectionInput => ({
  baseUrl: base,
  authType: 'none',
  tlsVerify: true,
  ...over,
});
const failure = async (p: Promise<unknown>) => {
  const e = (await p.then(
    () => undefined,
    (err: unknown) => err,
  )) as (Error & { code: string; category: string }) | undefined;
  if (!e) throw new Error('expected a failure');
  return { code: e.code, status: httpStatusOf(e as Parameters<typeof httpStatusOf>[0]), message: e.message };
};

describe('the http integration', () => {
  it('sends basic, bearer and header auth as the connection says; an arg cannot replace it', async () => {
    await runHttpRequest(conn({ authType: 'basic', username: 'soc', secret: 'pw' }), { method: 'GET', path: '/a' });
    expect(seen.at(-1)?.headers.authorization).toBe(`Basic ${Buffer.from('soc:pw').toString('base64')}`);
    const headers = { Authorization: 'Bearer forged', 'X-Trace': '1' };
    await runHttpRequest(conn({ authType: 'bearer', secret: 'tok' }), { method: 'GET', path: '/a', headers });
    expect(seen.at(-1)?.headers).toMatchObject({ authorization: 'Bearer tok', 'x-trace': '1' });
    await runHttpRequest(conn({ authType: 'header', headerName: 'X-Api-Key', secret: 'k1' }), {
      method: 'GET',
      path: '/a',
      headers: { 'x-api-key': 'forged' },
    });
    expect(seen.at(-1)?.headers['x-api-key']).toBe('k1');
  });

  it('sends a JSON body with its type and the query; answers the parsed JSON', async () => {
    const r = await runHttpRequest(conn(), { method: 'POST', path: '/items', query: { a: '1 2' }, body: { n: 1 } });
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/api/items?a=1+2', body: '{"n":1}' });
    expect(seen.at(-1)?.headers['content-type']).toBe('application/json');
    expect(r).toMatchObject({ status: 200, body: { ok: true } });
  });

  it("answers the service's status as a result, not an error", async () => {
    const r = await runHttpRequest(conn(), { method: 'GET', path: '/missing' });
    expect(r).toMatchObject({ status: 404, body: 'no such thing' });
  });

  it('refuses an answer over the cap, a path out of baseUrl, and a port nothing answers on', async () => {
    expect(await failure(runHttpRequest(conn(), { method: 'GET', path: '/big' }))).toMatchObject({
      code: 'ERR_INTEGRATION_HTTP_TOO_LARGE',
      status: 424,
    });
    const climbed = await failure(runHttpRequest(conn(), { method: 'GET', path: '/%2e%2e/admin' }));
    expect(climbed).toMatchObject({ code: 'ERR_INTEGRATION_ARGS', status: 400 });
    expect(climbed.message).toBe('args.path: must stay under /api');
    const down = await failure(runHttpRequest(conn({ baseUrl: 'http://127.0.0.1:9' }), { method: 'GET', path: '/' }));
    expect(down).toMatchObject({ code: 'ERR_INTEGRATION_HTTP_UNREACHABLE', status: 424 });
    expect(down.message).toBe('cannot reach 127.0.0.1:9 (ECONNREFUSED)');
  });

  it('refuses a result over MAX_RESULT_BYTES as JSON though its body is under the raw cap: a 400 saying to ask for less', async () => {
    const r = await failure(runHttpRequest(conn(), { method: 'GET', path: '/controls' }));
    expect(r).toMatchObject({ code: 'ERR_INTEGRATION_RESULT_TOO_LARGE', status: 400 });
    expect(r.message).toMatch(new RegExp(`answer is \\d+ bytes as JSON, more than the ${MAX_RESULT_BYTES}`));
    expect(r.message).toContain('ask for less');
  });

  it("waits for the service no longer than the call's budget: its own timeout error, naming the ms", async () => {
    const started = performance.now();
    const r = await failure(runHttpRequest(conn(), { method: 'GET', path: '/slow' }, {}, 300));
    expect(r).toMatchObject({ code: 'ERR_INTEGRATION_HTTP_TIMEOUT', status: 424 });
    expect(r.message).toBe(`no answer from ${new URL(base).host} within 300 ms`);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('refuses, sending nothing, a Host, framing or hop-by-hop header from the caller, and control characters', async () => {
    const before = seen.length;
    for (const name of ['Host', 'HOST', 'Content-Length', 'transfer-encoding', 'Connection', 'Proxy-Authorization']) {
      const r = await failure(
        runHttpRequest(conn({ authType: 'bearer', secret: 'tok' }), {
          method: 'GET',
          path: '/a',
          headers: { [name]: 'x' },
        }),
      );
      expect(r, name).toMatchObject({ code: 'ERR_INTEGRATION_ARGS', status: 400 });
      expect(r.message).toBe(`args.headers.${name}: is set by the integration, not the caller`);
    }
    const split = await failure(
      runHttpRequest(conn(), { method: 'GET', path: '/a', headers: { 'X-A': 'one\r\nX-B: two' } }),
    );
    expect(split).toMatchObject({ code: 'ERR_INTEGRATION_ARGS', status: 400 });
    const badSecret = await failure(
      runHttpRequest(conn({ authType: 'bearer', secret: 'tok\nX-Evil: 1' }), { method: 'GET', path: '/a' }),
    );
    expect(badSecret).toMatchObject({ code: 'ERR_CONNECTION_SECRET', status: 400 });
    expect(badSecret.message).not.toContain('tok');
    expect(seen.length).toBe(before);
  });

  it("never connects to instance metadata or link-local addresses from the MSSP's side, in any form", async () => {
    for (const baseUrl of [
      'http://169.254.169.254',
      'http://[::ffff:169.254.169.254]/latest',
      'http://[fe80::1]/',
      'http://0.0.0.0:80/',
      'http://metadata.google.internal/computeMetadata',
    ]) {
      const r = await failure(runHttpRequest(conn({ baseUrl }), { method: 'GET', path: '/' }));
      expect(r, baseUrl).toMatchObject({ code: 'ERR_INTEGRATION_TARGET_REFUSED', status: 403 });
    }
  });

  it('reaches the host itself (loopback, by name or address) only at the exact IP:PORT its config allows', async () => {
    const port = (server.address() as AddressInfo).port;
    const before = seen.length;
    for (const baseUrl of [
      `http://127.0.0.2:${port}/api`,
      `http://localhost:${port + 1}/api`, // a name: judged by what it resolves to
      `http://[::ffff:127.0.0.1]:${port + 1}/api`,
      `http://127.0.0.1:${port + 1}/api`,
    ]) {
      const r = await failure(runHttpRequest(conn({ baseUrl }), { method: 'GET', path: '/a' }));
      expect(r, baseUrl).toMatchObject({ code: 'ERR_INTEGRATION_TARGET_REFUSED', status: 403 });
      expect(r.message).toContain('is the MSSP host itself');
      expect(r.message).toMatch(/lists "(127\.0\.0\.[12]|\[::1\]):\d+" in integrationLoopbackAllow$/);
    }
    expect(seen.length, 'the service received nothing').toBe(before);
    // The IPv4-mapped form of the allowed address is that address.
    const mapped = await runHttpRequest(conn({ baseUrl: `http://[::ffff:127.0.0.1]:${port}/api` }), {
      method: 'GET',
      path: '/a',
    });
    expect(mapped.status).toBe(200);
    allowLocalTargets([]);
    try {
      const r = await failure(runHttpRequest(conn(), { method: 'GET', path: '/a' }));
      expect(r).toMatchObject({ code: 'ERR_INTEGRATION_TARGET_REFUSED', status: 403 });
      expect(r.message).toContain(`lists "127.0.0.1:${port}" in integrationLoopbackAllow`);
      expect(seen.length).toBe(before + 1);
    } finally {
      allowLocalTargets([`127.0.0.1:${port}`, '127.0.0.1:9']);
    }
  });
});
