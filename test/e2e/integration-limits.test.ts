/**
 * The size and time limits of integration calls, end to end with real main, host, tenant and engine processes
 * (engines a1, a2 of group a) and local fakes (a REST service, AWS). Shown: a REST answer whose JSON outgrows a
 * result (256 KiB of control characters) is a 400 through an engine of a group, and neither engine's session ends
 * nor does the call move to the other engine (the next call works on the same sessions); a POST body too large for
 * a command to an engine is refused before anything is sent (413, the service sees nothing); across tenants, a
 * tenant's answer over the per-tenant cap is that tenant's error entry while the command run on the tenant alone
 * answers; an AWS connection whose timeoutMs (300 s) outlasts the call's budget fails with AWS's own timeout error
 * within main's relay deadline, not with the engine's or the relay's.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Deployment, type EngineSession } from '../harness/deployment.js';
import { runCli } from '../harness/processes.js';
import { FakeAws, type FakeIdentity } from '../harness/aws-fake.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import { CALL_BUDGET_MS } from '../../agent/integrations/call-limits.js';
import { MAX_INTEGRATION_REPLY_BYTES } from '../../main/search/fanout.js';

interface Ran {
  engine: string;
  failedOver?: string[];
  result: { status: number; body: unknown };
}
interface CommandReply {
  results: { tenant: string; ok: boolean; error?: { code: string; message: string } }[];
}

let d: Deployment;
let aws: FakeAws;
let mssp: FakeIdentity;
let rest: Server;
const restSeen: { method: string; path: string; bytes: number }[] = [];
const BEARER = `bearer-${randomBytes(16).toString('hex')}`;
const portOf = (s: { address(): unknown }) => (s.address() as AddressInfo).port;

const ok = async (args: string[], stdin?: string) => {
  const r = await runCli(args, d.env, 60_000, stdin);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
};
const run = <T = Ran>(instance: string, command: string, args?: unknown) =>
  d.api<T>('POST', `/tenants/cust/api/integrations/${instance}/run`, { command, ...(args ? { args } : {}) });
/** The engines' sessions as they are: the same ids and start times later mean none ended meanwhile. */
const sessions = async () =>
  (await d.engineSessions('cust')).map((s: EngineSession) => `${s.name} ${s.id} ${s.since}`).sort();

beforeAll(async () => {
  aws = new FakeAws();
  await aws.start();
  mssp = aws.addIdentity({
    accessKeyId: 'AKIAMSSPFAKE00000003',
    secretAccessKey: `mssp/${randomBytes(12).toString('base64')}`,
    arn: 'arn:aws:iam::999988887777:user/palisade',
    account: '999988887777',
  });
  rest = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      restSeen.push({ method: req.method ?? '', path: req.url ?? '', bytes });
      if (req.url === '/api/controls') return void res.end(Buffer.alloc(256 * 1024, 1)); // six times that as JSON
      res.setHeader('content-type', 'application/json');
      if (req.url === '/api/medium') return void res.end(JSON.stringify({ pad: 'm'.repeat(100_000) }));
      res.end(JSON.stringify({ tickets: [{ id: 7 }] }));
    });
  });
  await new Promise<void>((r) => rest.listen(0, '127.0.0.1', r));
  d = await Deployment.create();
  await d.install('host', 'h1');
  await d.startAgent('h1');
  await d.createTenant('cust', 'h1');
  const open = [`127.0.0.1:${aws.port}`, `127.0.0.1:${portOf(rest)}`];
  for (const name of ['a1', 'a2']) await d.startEngine(name, 'cust', { allow: open, group: 'a' });
  await ok(
    ['connections', 'create', 'tickets', '--tenant', 'cust', '--type', 'http'].concat([
      ...['--set', `baseUrl=http://127.0.0.1:${portOf(rest)}/api`, '--set', 'authType=bearer', '--secret-stdin'],
    ]),
    `${BEARER}\n`,
  );
  await ok(
    ['connections', 'create', 'patient', '--tenant', 'cust', '--type', 'aws'].concat([
      ...['--set', 'region=eu-west-1', '--set', `endpointUrl=${aws.url}`, '--set', `stsEndpointUrl=${aws.url}`],
      ...['--set', `accessKeyId=${mssp.accessKeyId}`, '--set', 'timeoutMs=300000', '--secret-stdin'],
    ]),
    `${mssp.secretAccessKey}\n`,
  );
  for (const [name, integration, connection] of [
    ['web-a', 'http', 'tickets'],
    ['aws-a', 'aws', 'patient'],
  ])
    await ok(
      ['integrations', 'create', name, '--tenant', 'cust', '--integration', integration, '--connection'].concat([
        connection,
        '--run-on',
        'group:a',
      ]),
    );
}, 300_000);
afterAll(async () => {
  rest?.closeAllConnections();
  await d?.stop();
  await aws?.close();
  await new Promise((r) => (rest ? rest.close(r) : r(undefined)));
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('results and commands too large for an engine session', () => {
  it('a REST answer too large as JSON is a 400 through the group; no session ends, nothing moves engines', async () => {
    const before = await sessions();
    expect(before).toHaveLength(2);
    const r = await run<ErrorBody>('web-a', 'request', { method: 'GET', path: '/controls' });
    expect(r.status, r.raw).toBe(400);
    expect(r.body.error.code).toBe('ERR_INTEGRATION_RESULT_TOO_LARGE');
    expect(r.body.error.message).toContain('ask for less');
    expect(restSeen.filter((s) => s.path === '/api/controls')).toHaveLength(1); // asked once: no failover
    for (let i = 0; i < 2; i++) {
      const next = await run('web-a', 'request', { method: 'GET', path: '/tickets' });
      expect(next.status, next.raw).toBe(200);
      expect(next.body.failedOver).toBeUndefined();
      expect(next.body.result).toMatchObject({ status: 200, body: { tickets: [{ id: 7 }] } });
    }
    expect(await sessions()).toEqual(before);
  });

  it('a POST body too large for a command to an engine is refused before sending: 413, the service sees nothing', async () => {
    const before = await sessions();
    const seen = restSeen.length;
    // Within main's 1 MiB request limit, but not with the connection and call around it in one engine command.
    const body = 'b'.repeat(1_047_500);
    const r = await run<ErrorBody>('web-a', 'request', { method: 'POST', path: '/tickets', body });
    expect(r.status, r.raw).toBe(413);
    expect(r.body.error.code).toBe('ERR_ENGINE_COMMAND_TOO_LARGE');
    expect(r.body.error.message).toContain('send less');
    expect(restSeen).toHaveLength(seen);
    const small = await run('web-a', 'request', { method: 'POST', path: '/tickets', body: 'b'.repeat(100_000) });
    expect(small.status, small.raw).toBe(200);
    expect(restSeen.at(-1)).toMatchObject({ method: 'POST', bytes: 100_000 });
    expect(await sessions()).toEqual(before);
  });
});

describe('across tenants', () => {
  it("a tenant's answer over the per-tenant cap is its error entry; run on the tenant alone, it answers", async () => {
    const r = await d.api<CommandReply>('POST', '/commands', {
      command: 'integration:web-a.get',
      args: { path: '/medium' },
      tenants: ['cust'],
    });
    expect(r.status, r.raw).toBe(200);
    expect(r.body.results).toHaveLength(1);
    expect(r.body.results[0]).toMatchObject({
      tenant: 'cust',
      ok: false,
      error: { code: 'ERR_FANOUT_REPLY_TOO_LARGE' },
    });
    expect(r.body.results[0].error!.message).toContain(`more than the ${MAX_INTEGRATION_REPLY_BYTES}`);
    expect(r.body.results[0].error!.message).toContain("'palisade integrations run web-a get --tenant cust'");
    const alone = await run('web-a', 'get', { path: '/medium' });
    expect(alone.status, alone.raw).toBe(200);
    expect(alone.body.result).toMatchObject({ status: 200, body: { pad: 'm'.repeat(100_000) } });
  });
});

describe("one budget for a call, inside main's relay deadline", () => {
  it("an AWS timeoutMs of 300 s gives way to the call's budget: AWS's own timeout error, from the engine", async () => {
    aws.override = (q) => (q.signed?.service === 's3' ? 'hang' : undefined);
    const started = performance.now();
    const r = await run<ErrorBody>('aws-a', 's3.list-buckets').finally(() => (aws.override = undefined));
    const took = performance.now() - started;
    expect(r.status, r.raw).toBe(424);
    expect(r.body.error.code).toBe('ERR_AWS_TIMEOUT');
    expect(r.body.error.message).toMatch(/within \d+ ms/);
    expect(took).toBeLessThan(CALL_BUDGET_MS + 3_000); // main's relay would have given up at 30 s
    const after = await run('aws-a', 's3.list-buckets');
    expect(after.status, after.raw).toBe(200);
  }, 60_000);
});
