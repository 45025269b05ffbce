/**
 * Scripts end to end with real processes (main, host h1, tenant sa) and a local HTTP fake: a script whose body does
 * not compile is refused at publish with its line; a shared script run on the tenant (`palisade scripts run`) calls
 * an http integration against the fake, updates an incident and returns its result with its logs, and its
 * integration call is audited as integration.run with the caller next to the script.run line; a script that loops
 * forever is stopped at its timeout while the tenant keeps answering; a customer read-only user cannot run a
 * script (403). The sandbox's own limits and escapes: test/integration/script-sandbox.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Deployment } from '../harness/deployment.js';
import { runCli, until, type CliResult } from '../harness/processes.js';
import type { ErrorBody } from '../harness/api-shapes.js';

let d: Deployment;
let fake: Server;
const seen: { method: string; url: string; body: string }[] = [];

const cli = (args: string[]): Promise<CliResult> => runCli(args, d.env, 60_000);
const ok = async (args: string[]): Promise<CliResult> => {
  const r = await cli(args);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return r;
};

/** Creates a script item on main with `body`, publishes it (or not), and shares it to every tenant. */
async function script(name: string, body: string): Promise<{ id: string }> {
  const created = await ok(
    ['content', 'create', '--type', 'script', '--name', name, '--labels', 'all'].concat(['--body', body, '--json']),
  );
  return created.json as { id: string };
}

async function shared(name: string, body: string): Promise<string> {
  const { id } = await script(name, body);
  await ok(['content', 'publish', id]);
  await ok(['content', 'share', id]);
  await until(`${name} shared to sa`, async () => {
    const r = await d.api<{ id: string }[]>('GET', '/tenants/sa/api/content?type=script');
    return r.status === 200 && r.body.some((i) => i.id === id);
  });
  return id;
}

beforeAll(async () => {
  fake = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString() });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ verdict: 'malicious', score: 97 }));
    });
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  d = await Deployment.create();
  await d.install('host', 'h1');
  // The fake is on loopback, which a tenant's integrations reach only where the host's config names it.
  d.configure('h1', { integrationLoopbackAllow: [`127.0.0.1:${(fake.address() as AddressInfo).port}`] });
  await d.startAgent('h1');
  await d.createTenant('sa', 'h1');
  const base = `http://127.0.0.1:${(fake.address() as AddressInfo).port}/api`;
  await ok(['connections', 'create', 'intel', '--tenant', 'sa', '--type', 'http', '--set', `baseUrl=${base}`]);
  await ok(['integrations', 'create', 'ti', '--tenant', 'sa', '--integration', 'http', '--connection', 'intel']);
}, 240_000);
afterAll(async () => {
  await d?.stop();
  fake?.closeAllConnections();
  await new Promise((r) => (fake ? fake.close(r) : r(undefined)));
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('scripts', () => {
  it('a script that does not compile is refused at publish, naming its line', async () => {
    const { id } = await script('broken', 'const ip = input.ip;\nconst r = await ;\nreturn r;');
    const r = await d.api<ErrorBody>('POST', `/content/${id}/publish`);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('ERR_SCRIPT_SYNTAX');
    expect(r.body.error.message).toMatch(/^body: line 2: the script does not compile: /);
  });

  it('a shared script calls an http integration, updates the incident and returns its result', async () => {
    const body = [
      "const r = await palisade.integration('ti', 'request', { method: 'POST', path: '/lookup', body: { ip: input.ip } });",
      "palisade.log('score', r.body.score);",
      'const inc = await palisade.incident.get();',
      'await palisade.incident.update({ severity: 4, labels: { ...inc.labels, verdict: r.body.verdict } });',
      "await palisade.context.set('enrich.verdict', r.body.verdict);",
      'return { verdict: r.body.verdict, was: inc.severity };',
    ].join('\n');
    const id = await shared('enrich-ip', body);
    const made = await d.api<{ id: string }>('POST', '/tenants/sa/api/incidents', {
      name: 'odd login',
      type: 'login',
      severity: 1,
      labels: { source: 'idp' },
    });
    expect(made.status, made.raw).toBe(201);
    const incident = made.body.id;
    const run = await ok(
      ['scripts', 'run', 'enrich-ip', '--tenant', 'sa', '--input', '{"ip":"192.0.2.7"}'].concat([
        '--incident',
        incident,
        '--json',
      ]),
    );
    const answer = run.json as { script: { id: string }; result: unknown; logs: string[]; context: unknown };
    expect(answer).toMatchObject({
      script: { id },
      result: { verdict: 'malicious', was: 1 },
      logs: ['score 97'],
      context: { enrich: { verdict: 'malicious' } },
    });
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/api/lookup', body: '{"ip":"192.0.2.7"}' });
    const inc = await d.api<{ severity: number; labels: Record<string, string> }>(
      'GET',
      `/tenants/sa/api/incidents/${incident}`,
    );
    expect(inc.body).toMatchObject({ severity: 4, labels: { source: 'idp', verdict: 'malicious' } });
    const text = await ok([
      'scripts',
      'run',
      id,
      '--tenant',
      'sa',
      '--input',
      '{"ip":"192.0.2.8"}',
      '--incident',
      incident,
    ]);
    expect(text.stdout).toContain('log: score 97');
    expect(text.stdout).toContain('"verdict": "malicious"');

    const audit = await d.api<{ actor: string; action: string; target: string; outcome: string; detail?: object }[]>(
      'GET',
      '/tenants/sa/api/audit?limit=20',
    );
    const runs = audit.body.filter((e) => e.action === 'script.run');
    expect(runs[0]).toMatchObject({ target: id, outcome: 'ok', detail: { name: 'enrich-ip', integrationCalls: 1 } });
    const call = audit.body.find((e) => e.action === 'integration.run');
    expect(call).toMatchObject({ target: 'ti', outcome: 'ok', detail: { command: 'request', script: id } });
    expect(call?.actor).toBe(runs[0].actor);
    expect(call?.actor).toMatch(/\(via main\)$/);
  });

  it('a script that loops forever is stopped at its timeout while the tenant keeps answering', async () => {
    await shared('spin', 'palisade.log("spinning"); for (;;) {}');
    const started = Date.now();
    const looping = d.api<ErrorBody>('POST', '/tenants/sa/api/scripts/run', {
      script: 'spin',
      limits: { timeoutMs: 4000 },
    });
    // While it spins, the tenant answers reads and writes (the isolate has a thread of its own).
    let answered = 0;
    while (Date.now() - started < 3000) {
      const info = await d.api<{ tenant: string }>('GET', '/tenants/sa/api/info');
      expect(info.status).toBe(200);
      answered++;
    }
    expect(answered).toBeGreaterThan(3);
    const r = await looping;
    expect(r.status).toBe(422);
    expect(r.body.error.code).toBe('ERR_SCRIPT_TIMEOUT');
    expect(Date.now() - started).toBeLessThan(15_000);
    const after = await d.api<ErrorBody>('POST', '/tenants/sa/api/scripts/run', {
      script: 'enrich-ip',
      input: { ip: '192.0.2.9' },
    });
    // The same tenant process runs the next script (this one fails only for want of an incident).
    expect(after.body.error.code).toBe('ERR_SCRIPT_ERROR');
    expect(after.body.error.message).toMatch(/^line 3: ERR_BAD_REQUEST: this run has no incident/);
  });

  it('a customer read-only user cannot run a script', async () => {
    const reader = await d.createUser({ name: 'sa-reader', tenant: 'sa', roles: ['read-only'] });
    const key = await d.createKey(reader.id);
    const before = seen.length;
    const r = await d.api<ErrorBody>('POST', '/tenants/sa/api/scripts/run', { script: 'enrich-ip' }, { key });
    expect(r.status).toBe(403);
    expect(r.body.error.message).toContain('lacks "scripts:run"');
    expect(seen.length).toBe(before);
  });
});
