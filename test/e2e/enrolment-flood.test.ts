/**
 * Main's unauthenticated doors under attack, with a real main and agents over real TLS: every field of an
 * Enroll frame is checked before anything of it is stored or logged (a 1 MB name with escape sequences
 * leaves no byte on disk), refusals on `/enrol/v1` and certificate-less `/agent/v1` are throttled per
 * source address (auth-throttle.ts), and a flood of 10 000 bad enrolments grows main's data directory by
 * at most 1 MiB while a real agent on another address enrols and connects during it.
 * The attackers connect from 127.0.0.2–4 (Linux answers all of 127/8); the harness's agents from 127.0.0.1.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import WebSocket from 'ws';
import { AgentKind, decodeEnvelope, encodeEnvelope, type EnvelopeInit } from '#common/codec.js';
import { createCsr, generateRsaKeyPem } from '#common/pki.js';
import { DEFAULT_THROTTLE } from '../../main/access/auth-throttle.js';
import { AUDIT_MAX_STRING } from '../../main/access/audit.js';
import { Deployment } from '../harness/deployment.js';
import { bytesUnder, filesContaining } from '../harness/data-scan.js';
import { rawConnect } from '../harness/raw-agent.js';

let d: Deployment;
let ca: string;
let csrPem: string;

beforeAll(async () => {
  d = await Deployment.create();
  ca = readFileSync(d.caCertPath, 'utf8');
  csrPem = createCsr(await generateRsaKeyPem(), 'host:x');
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

interface AuditView {
  action: string;
  actor: string;
  target?: string;
  outcome: string;
  remote?: string;
  detail?: Record<string, unknown>;
}

const LIMIT = DEFAULT_THROTTLE.maxFailures;
/** Well-formed, never issued. */
const unknownKey = (i: number) => `pek_${String(i).padStart(12, 'A')}.${'B'.repeat(43)}`;
const enroll = (over: Partial<NonNullable<EnvelopeInit['enroll']>> = {}) =>
  encodeEnvelope({
    id: 1,
    enroll: {
      enrolKey: unknownKey(0),
      csrPem,
      kind: AgentKind.AGENT_KIND_HOST,
      name: 'h-x',
      protocolMajor: 1,
      protocolMinor: 1,
      ...over,
    },
  });

/** One Enroll frame on its own connection from `from`; main's Error code and close code. */
async function enrolOnce(from: string, frame: Uint8Array): Promise<{ code?: string; close: number; refused?: number }> {
  const c = rawConnect(d.url, { ca }, '/enrol/v1', from);
  if (!(await c.opened)) return { close: 0, refused: c.refused };
  c.ws.send(frame);
  const closed = await c.closed;
  return { code: c.frames[0]?.error?.code ?? undefined, close: closed.code };
}

async function audit(action: string): Promise<AuditView[]> {
  const r = await d.api<AuditView[]>('GET', `/audit?limit=10000&action=${action}`);
  expect(r.status).toBe(200);
  return r.body;
}

const fromAddress = (a: AuditView, ip: string) =>
  a.remote === ip || a.remote?.startsWith(`${ip}:`) === true || a.target === ip;

describe('an Enroll frame is checked before anything of it is kept', () => {
  it('a 1 MB name with escape sequences is refused (ERR_BAD_NAME) and nothing of it reaches the disk or the log', async () => {
    const marker = `NAME-MARKER-${Date.now()}`;
    const name = `${marker}\u001b[2J\u001b[1;1Hadmin  auth.key  ok\r\n${'A'.repeat(1_000_000)}`;
    const r = await enrolOnce('127.0.0.3', enroll({ name }));
    expect(r.code).toBe('ERR_BAD_NAME');
    expect(r.close).toBe(1008);
    const rows = (await audit('agent.enrol')).filter((a) => fromAddress(a, '127.0.0.3'));
    expect(rows[0]).toMatchObject({ outcome: 'denied', detail: { code: 'ERR_BAD_NAME', field: 'name' } });
    expect(JSON.stringify(rows[0])).not.toContain('AAAA');
    expect(await filesContaining(d.mainDir, marker)).toEqual([]); // registry, audit and logs/main.log
  });

  it('every other field too: version, kind, key format, CSR size and shape, tunnel key length', async () => {
    const cases: [string, Uint8Array, string][] = [
      ['protocol 7', enroll({ protocolMajor: 7 }), 'ERR_WIRE_VERSION'],
      ['no kind', enroll({ kind: AgentKind.AGENT_KIND_UNSPECIFIED }), 'ERR_WIRE_BAD_KIND'],
      ['a key that is not one', enroll({ enrolKey: `pek_${'\u001b'.repeat(40)}` }), 'ERR_ENROL_KEY_MALFORMED'],
      ['a 100 KiB CSR', enroll({ csrPem: csrPem.replace('\n', `\n${'QUFB\n'.repeat(20_000)}`) }), 'ERR_ENROL_BAD_CSR'],
      ['a CSR that is no PEM', enroll({ csrPem: 'hello\u001b[0m' }), 'ERR_ENROL_BAD_CSR'],
      ['a host with a tunnel key', enroll({ boxPublicKey: new Uint8Array(32) }), 'ERR_ENROL_BOX_KEY'],
      [
        'an engine with a 31-byte tunnel key',
        enroll({ kind: AgentKind.AGENT_KIND_ENGINE, boxPublicKey: new Uint8Array(31) }),
        'ERR_ENROL_BOX_KEY',
      ],
    ];
    for (const [what, frame, code] of cases) expect((await enrolOnce('127.0.0.3', frame)).code, what).toBe(code);
    // Each refusal is audited by code (and field), never by value.
    const rows = (await audit('agent.enrol')).filter((a) => fromAddress(a, '127.0.0.3'));
    for (const [, , code] of cases) expect(rows.some((a) => a.detail?.code === code)).toBe(true);
    for (const a of rows)
      for (const v of Object.values(a)) expect(JSON.stringify(v).length).toBeLessThanOrEqual(AUDIT_MAX_STRING + 64);
  });
});

describe('refusals are throttled per source address', () => {
  it('certificate-less /agent/v1: 401 up to the limit, then 429 with Retry-After and no audit line each', async () => {
    const statuses: number[] = [];
    let retryAfter: string | undefined;
    for (let i = 0; i < LIMIT + 30; i++) {
      const c = rawConnect(d.url, { ca }, '/agent/v1', '127.0.0.4');
      await c.opened;
      statuses.push(c.refused ?? 0);
      retryAfter = c.retryAfter;
    }
    expect(statuses.slice(0, LIMIT).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(LIMIT).every((s) => s === 429)).toBe(true);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    expect(Number(retryAfter)).toBeLessThanOrEqual(60);
    const denied = (await audit('agent.connect')).filter((a) => fromAddress(a, '127.0.0.4'));
    expect(denied).toHaveLength(LIMIT);
    const blocks = (await audit('auth.throttle')).filter((a) => fromAddress(a, '127.0.0.4'));
    expect(blocks).toHaveLength(1);
    expect(blocks[0].detail).toMatchObject({ endpoint: '/agent/v1' });
  });

  it('10 000 bad enrolments grow the data directory by at most 1 MiB, while an agent on another address enrols', async () => {
    const before = await bytesUnder(d.mainDir);
    const marker = `FLOOD-MARKER-${Date.now()}`;
    // resumed handshakes: the flood is cheap for us too
    const tls = new HttpsAgent({ keepAlive: false, maxCachedSessions: 8 });
    const outcomes = new Map<string, number>();
    let next = 0;
    const ATTEMPTS = 10_000;
    const one = (i: number) =>
      new Promise<string>((resolve) => {
        const ws = new WebSocket(new URL('/enrol/v1', d.url), {
          ca,
          agent: tls,
          localAddress: '127.0.0.2',
          perMessageDeflate: false,
          handshakeTimeout: 10_000,
        });
        const frame =
          i % 2 === 0
            ? enroll({ enrolKey: unknownKey(i), name: `\u001b[31m${marker}\r\nadmin ok ${'x'.repeat(2000)}` })
            : enroll({ enrolKey: unknownKey(i) });
        ws.once('unexpected-response', (_q, res) => {
          res.resume();
          ws.terminate();
          resolve(`http ${res.statusCode}`);
        });
        ws.once('open', () => ws.send(frame));
        ws.once('message', (data) => resolve(decodeEnvelope(data as Buffer).error?.code ?? 'no error'));
        ws.once('close', () => resolve('closed'));
        ws.once('error', () => resolve('error'));
      });
    let agentIn = false;
    const started = Date.now();
    // The flood goes on until it has made its attempts and the agent below is in, whichever is later.
    const flood = Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < ATTEMPTS || !agentIn) {
          const outcome = await one(next++);
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        }
      }),
    );
    // A real host enrols and connects from 127.0.0.1 while the flood runs.
    while (next < 1000) await new Promise((r) => setTimeout(r, 50));
    try {
      await d.install('host', 'h-during');
      expect((await d.startAgent('h-during')).output).toMatch(/enrolled as hst_/);
    } finally {
      agentIn = true;
      await flood;
      tls.destroy();
    }
    // The throttle's window is a minute: a slow machine's flood spans more than one.
    const windows = Math.ceil((Date.now() - started) / DEFAULT_THROTTLE.windowMs);

    const grown = (await bytesUnder(d.mainDir)) - before;
    expect(grown, `grew by ${grown} bytes`).toBeLessThanOrEqual(1024 * 1024);
    // Each window lets LIMIT failures through (and what was in flight when its block began) before refusing again.
    expect(outcomes.get('http 429') ?? 0, JSON.stringify([...outcomes])).toBeGreaterThan(
      next - windows * (2 * LIMIT + 32),
    );
    const rows = (await audit('agent.enrol')).filter((a) => fromAddress(a, '127.0.0.2'));
    expect(rows.length).toBeLessThanOrEqual(windows * (LIMIT + 32)); // + what was in flight when a block began, at most
    expect((await audit('auth.throttle')).filter((a) => fromAddress(a, '127.0.0.2')).length).toBeLessThanOrEqual(
      windows,
    );
    expect(await filesContaining(d.mainDir, marker)).toEqual([]);
    const hosts = (await d.cli(['hosts', '--json'])).json as { name: string; status: string }[];
    expect(hosts.find((h) => h.name === 'h-during')?.status).toBe('online');
  }, 600_000);
});
