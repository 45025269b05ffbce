/**
 * The agent channel against hostile or broken peers, with real TLS sockets: who may reach /agent/v1,
 * what a bad frame costs (that one connection, never the process), TLS versions and ciphers, and that
 * no secret ever reaches a log.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import { AgentKind, encodeEnvelope } from '#common/codec.js';
import { createCa, createCsr, generateRsaKeyPem, signAgentCsr } from '#common/pki.js';
import { Deployment } from '../harness/deployment.js';
import { until } from '../harness/processes.js';
import { identityOf, rawConnect, type Identity } from '../harness/raw-agent.js';

let d: Deployment;
let spy: Identity; // h-spy's real identity, used by hand while the agent itself is stopped
const enrolKeys: string[] = [];

beforeAll(async () => {
  d = await Deployment.create();
  for (const name of ['h-live', 'h-spy']) {
    const dir = await d.install('host', name);
    enrolKeys.push((await readFile(join(dir, 'enrol-key'), 'utf8')).trim());
    await d.startAgent(name);
  }
  await d.agents.get('h-spy')!.proc!.stop();
  spy = identityOf(d.agents.get('h-spy')!.dir);
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

const hello = (name = 'h-spy', major = 1) =>
  encodeEnvelope({
    id: 1,
    hello: { protocolMajor: major, protocolMinor: 0, agentVersion: 'test', kind: AgentKind.AGENT_KIND_HOST, name },
  });

async function mainStillServes(): Promise<void> {
  const r = await d.cli(['hosts', 'ping', 'h-live', '--json']);
  expect(r.json).toMatchObject({ state: 'done', result: { pong: true } });
}

describe('who reaches /agent/v1', () => {
  it('a client without a certificate is refused at the upgrade (401) and audited', async () => {
    const c = rawConnect(d.url, { ca: spy.ca });
    expect(await c.opened).toBe(false);
    expect(c.refused).toBe(401);
    const audit = await d.api<{ action: string; outcome: string; detail: { code: string } }[]>(
      'GET',
      '/audit?action=agent.connect',
    );
    expect(audit.body.some((a) => a.outcome === 'denied' && a.detail.code === 'ERR_AGENT_CERT_REQUIRED')).toBe(true);
  });

  it('a client with a certificate from another CA is refused (401)', async () => {
    const otherCa = await createCa('Evil CA');
    const key = await generateRsaKeyPem();
    const cert = signAgentCsr(otherCa, createCsr(key, 'evil'), 'hst_0000000000000000').certPem;
    const c = rawConnect(d.url, { ca: spy.ca, cert, key });
    expect(await c.opened).toBe(false);
    expect(c.refused).toBe(401);
    expect(c.frames).toEqual([]);
  });

  it('the enrolment endpoint takes nothing but one Enroll frame', async () => {
    const c = rawConnect(d.url, { ca: spy.ca }, '/enrol/v1');
    expect(await c.opened).toBe(true);
    c.ws.send(hello());
    await c.closed;
    expect(c.frames[0]?.error?.code).toBe('ERR_WIRE_EXPECTED_ENROLL');
  });
});

describe('bad frames close that one connection', () => {
  it('an oversized frame: Error ERR_WIRE_FRAME_TOO_BIG, close 1009; main keeps serving', async () => {
    const c = rawConnect(d.url, spy);
    expect(await c.opened).toBe(true);
    c.ws.send(Buffer.alloc(1024 * 1024 + 1000, 1));
    const closed = await c.closed;
    expect(closed.code).toBe(1009);
    expect(c.frames[0]?.error?.code).toBe('ERR_WIRE_FRAME_TOO_BIG');
    await mainStillServes();
  });

  it('a frame far over the limit is cut off by the socket limit (1009) without buffering it', async () => {
    const c = rawConnect(d.url, spy);
    expect(await c.opened).toBe(true);
    c.ws.send(Buffer.alloc(3 * 1024 * 1024, 1));
    expect((await c.closed).code).toBe(1009);
    await mainStillServes();
  });

  it('bytes that are not an Envelope: Error ERR_WIRE_MALFORMED, close 1002', async () => {
    const c = rawConnect(d.url, spy);
    expect(await c.opened).toBe(true);
    c.ws.send(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]));
    expect((await c.closed).code).toBe(1002);
    expect(c.frames[0]?.error?.code).toBe('ERR_WIRE_MALFORMED');
    await mainStillServes();
  });

  it('a text frame: Error and close', async () => {
    const c = rawConnect(d.url, spy);
    expect(await c.opened).toBe(true);
    c.ws.send('hello');
    expect((await c.closed).code).toBe(1002);
    expect(c.frames[0]?.error?.code).toBe('ERR_WIRE_TEXT_FRAME');
  });

  it('a protocol version main cannot speak gets a clear Error at once, not a hang', async () => {
    const c = rawConnect(d.url, spy);
    expect(await c.opened).toBe(true);
    const t0 = Date.now();
    c.ws.send(hello('h-spy', 99));
    const closed = await c.closed;
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(closed.code).toBe(4002);
    expect(c.frames[0]?.error?.code).toBe('ERR_WIRE_VERSION');
    expect(c.frames[0]?.error?.message).toMatch(/99\.0 is not supported/);
  });

  it('a Hello naming another agent than the certificate is refused', async () => {
    const c = rawConnect(d.url, spy);
    expect(await c.opened).toBe(true);
    c.ws.send(hello('h-live'));
    await c.closed;
    expect(c.frames[0]?.error?.code).toBe('ERR_WIRE_IDENTITY');
    await mainStillServes();
  });

  it('after Welcome, a message type agents may not send (Enroll) closes the connection', async () => {
    const c = rawConnect(d.url, spy);
    expect(await c.opened).toBe(true);
    c.ws.send(hello());
    await until('welcome', () => c.frames.find((f) => f.welcome), 5000);
    c.ws.send(
      encodeEnvelope({ id: 2, enroll: { enrolKey: 'x', csrPem: 'y', kind: AgentKind.AGENT_KIND_HOST, name: 'h-spy' } }),
    );
    expect((await c.closed).code).toBe(1002);
    expect(c.frames.find((f) => f.error)?.error?.code).toBe('ERR_WIRE_UNEXPECTED');
  });

  it('a frame claiming a tenant this agent does not serve is refused', async () => {
    const c = rawConnect(d.url, spy);
    expect(await c.opened).toBe(true);
    c.ws.send(hello());
    await until('welcome', () => c.frames.find((f) => f.welcome), 5000);
    c.ws.send(encodeEnvelope({ id: 3, tenant: 'someone-else', heartbeat: { sentAtMs: Date.now() } }));
    await c.closed;
    expect(c.frames.find((f) => f.error)?.error?.code).toBe('ERR_WIRE_FOREIGN_TENANT');
  });
});

describe('TLS', () => {
  /** One openssl s_client handshake with stdin at EOF; ok when a cipher was negotiated. */
  function probe(args: string[]): Promise<{ ok: boolean; out: string }> {
    const port = new URL(d.url).port;
    return new Promise((resolve) => {
      const child = spawn(
        'openssl',
        ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', ...args],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
      });
      child.stderr.on('data', (b: Buffer) => {
        out += b.toString();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.on('close', () => {
        clearTimeout(timer);
        const cipher = /Cipher is (\S+)/.exec(out)?.[1];
        resolve({ ok: cipher !== undefined && cipher !== '(NONE)', out });
      });
    });
  }

  it('refuses TLS 1.0 and 1.1, accepts 1.2 and 1.3 (the probes use the same permissive client settings)', async () => {
    const lax = ['-cipher', 'DEFAULT@SECLEVEL=0'];
    expect((await probe(['-tls1', ...lax])).ok).toBe(false);
    expect((await probe(['-tls1_1', ...lax])).ok).toBe(false);
    const v12 = await probe(['-tls1_2', ...lax]);
    expect(v12.ok, v12.out).toBe(true);
    expect((await probe(['-tls1_3'])).ok).toBe(true);
  });

  it('offers only ECDHE with AEAD ciphers on TLS 1.2: CBC and RSA key transport are refused', async () => {
    expect((await probe(['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-SHA'])).ok).toBe(false);
    expect((await probe(['-tls1_2', '-cipher', 'AES128-GCM-SHA256'])).ok).toBe(false);
    expect((await probe(['-tls1_2', '-cipher', 'ECDHE-RSA-AES128-GCM-SHA256'])).ok).toBe(true);
    expect((await probe(['-tls1_2', '-cipher', 'ECDHE-RSA-CHACHA20-POLY1305'])).ok).toBe(true);
  });
});

describe('secrets', () => {
  it('no API key, enrolment key or private key appears in any log line', async () => {
    // A refused bogus key must not be logged either.
    const bogus = 'pal_AAAAAAAAAAAA.SECRETSECRETSECRETSECRET123';
    expect((await d.api('GET', '/hosts', undefined, { key: bogus })).status).toBe(401);
    // Bundles hold the enrolment keys: read them from the archives too.
    for (const f of (await readdir(d.dir)).filter((x) => x.endsWith('.tar.gz'))) {
      await tar.t({
        file: join(d.dir, f),
        onReadEntry: (e) => {
          if (e.path === 'bundle.json')
            e.on('data', (b: Buffer) => {
              const k = /"enrolKey": "([^"]+)"/.exec(b.toString())?.[1];
              if (k) enrolKeys.push(k);
            });
        },
      });
    }
    const pemBody = (pem: string) =>
      pem
        .split('\n')
        .filter((l) => l && !l.startsWith('-----'))
        .slice(1, 3);
    const secrets = [
      d.apiKey,
      d.apiKey.split('.')[1],
      bogus,
      bogus.split('.')[1],
      ...enrolKeys,
      ...enrolKeys.map((k) => k.split('.')[1]),
      ...pemBody(await readFile(join(d.mainDir, 'pki', 'ca-key.pem'), 'utf8')),
      ...pemBody(await readFile(join(d.mainDir, 'pki', 'server-key.pem'), 'utf8')),
      ...pemBody(await readFile(join(d.agents.get('h-live')!.dir, 'pki', 'agent-key.pem'), 'utf8')),
    ];
    expect(enrolKeys.length).toBeGreaterThanOrEqual(2);
    const logs = [
      await readFile(d.mainLog, 'utf8'),
      d.main!.output,
      ...(await Promise.all([...d.agents.keys()].map((n) => readFile(d.agentLog(n), 'utf8').catch(() => '')))),
      ...[...d.agents.values()].map((a) => a.proc?.output ?? ''),
    ].join('\n');
    expect(logs.length).toBeGreaterThan(1000);
    for (const s of secrets) expect(logs.includes(s), `a secret (${s.slice(0, 6)}…) appears in a log`).toBe(false);
  });
});
