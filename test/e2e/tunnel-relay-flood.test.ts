/**
 * Main's tunnel relay against an engine gone bad, with real processes over real TLS: main, one host (relay
 * path only) running two tenants, a real engine for the bystander tenant and, for the flooded tenant,
 * engines enrolled for real whose identities (certificate, box key, tenant key) a hostile client then
 * drives by hand. Whatever such an engine sends, main and the host hold a bounded amount for it; junk gets
 * it cut off with a reason, audited, and its dropped records counted where an admin looks; an engine that
 * does not read what it asked for is cut off too, as is one that asks main nonstop for fresh direct-path
 * statements (each costs main a signature); the other tenant's tunnel works throughout.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import WebSocket from 'ws';
import { AgentKind, decodeEnvelope, encodeEnvelope, type Envelope } from '#common/codec.js';
import { engineHandshake, type SessionKeys } from '../../agent/tunnel/tunnel-crypto.js';
import {
  engineHelloRecord,
  parseTenantHello,
  RECORD_HANDSHAKE,
  RECORD_SEALED,
} from '../../agent/tunnel/tunnel-records.js';
import { FLOOD_RECORDS, RENEWAL_BURST } from '../../main/tunnels/relay-limits.js';
import { Deployment } from '../harness/deployment.js';
import { readLog, until } from '../harness/processes.js';
import { identityOf, rawConnect, type RawConn } from '../harness/raw-agent.js';

const MiB = 1024 * 1024;
const HOST = 'rh',
  FLOODED = 'fa',
  BYSTANDER = 'fb';
/** How long and how much the valid-record flood runs: whichever comes first. */
const FLOOD_MS = 20_000;
const FLOOD_BYTES = 2048 * MiB;
/**
 * RSS main and the host may grow by under a flood. The relay holds ≤ 4 MiB per engine toward the host and
 * ≤ 32 MiB per engine in the host's queue toward the tenant, ≤ 64 MiB toward an engine; the rest is the
 * garbage of relaying at full speed (measured: +60 MiB each under the valid-record flood, +45 for main
 * with an engine not reading). Unbounded, the host grew by 180 MiB under the first and main by 760 under
 * the last, and by several hundred under the junk floods that went on unchecked.
 */
const RSS_GROWTH_LIMIT_MiB = 128;
/**
 * The renewal flood: requests for a fresh direct-path statement, as fast as main reads them, reading nothing,
 * for this long at most. Unbounded, main signed every one and queued its answer: 230 000 in 10 s, +225 MiB.
 */
const RENEW_FLOOD_MS = 10_000;

let d: Deployment;
let echo: Server;
let echoPort = 0;
/** The bystander's outbound tunnel listener: through its real engine to `echo`. */
let bystanderPort = 0;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tick = () => new Promise((r) => setImmediate(r));

interface AuditRow {
  actor: string;
  action: string;
  target?: string;
  outcome: string;
  remote?: string;
  detail?: Record<string, unknown>;
}
interface EngineRow {
  name: string;
  relay: { droppedRecords: number; droppedBytes: number; floodDisconnects: number };
}

/** One round trip of random bytes through the bystander tenant's tunnel. */
function echoOnce(bytes = 64 * 1024, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const sent = randomBytes(bytes);
    const chunks: Buffer[] = [];
    let got = 0;
    const s = connect(bystanderPort, '127.0.0.1', () => s.write(sent));
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`bystander echo: ${got} of ${bytes} bytes within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got < bytes) return;
      clearTimeout(timer);
      s.destroy();
      if (Buffer.concat(chunks).equals(sent)) resolve();
      else reject(new Error('bystander echo came back altered'));
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/** Round trips through the bystander's tunnel, one after another, until stop(); any failure fails it. */
function bystanderLoop(): { stop(): Promise<number> } {
  let running = true;
  let ok = 0;
  const loop = (async () => {
    while (running) {
      await echoOnce();
      ok++;
      await sleep(250);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return ok;
    },
  };
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

/** Samples main's and the host's RSS until stop(), which logs base → peak and returns the growth of each. */
function watchRss(): { stop(label: string): { main: number; host: number } } {
  const pids = { main: d.main!.child.pid!, host: d.agents.get(HOST)!.proc!.child.pid! };
  const base = { main: rssMiB(pids.main), host: rssMiB(pids.host) };
  const peak = { ...base };
  const sampler = setInterval(() => {
    peak.main = Math.max(peak.main, rssMiB(pids.main));
    peak.host = Math.max(peak.host, rssMiB(pids.host));
  }, 100);
  return {
    stop(label) {
      clearInterval(sampler);
      console.log(
        `${label}: RSS MiB base → peak: main ${base.main.toFixed(0)} → ${peak.main.toFixed(0)}, host ${base.host.toFixed(0)} → ${peak.host.toFixed(0)}`,
      );
      return { main: peak.main - base.main, host: peak.host - base.host };
    },
  };
}

/**
 * An enrolled engine of the flooded tenant, driven by hand: its own certificate for main, its own box key
 * and its tenant's public key for the sealed session. Everything it sends, a real engine could send.
 */
class HostileEngine {
  keys?: SessionKeys;
  /** The tenant's sealed records opened so far, and how many frames that took. */
  private readonly plain: Envelope[] = [];
  private seen = 0;
  private readonly tenantKey: Uint8Array;
  private readonly box: { publicKey: Uint8Array; secretKey: Uint8Array };

  private constructor(
    readonly name: string,
    readonly conn: RawConn,
    dir: string,
  ) {
    const cfg = JSON.parse(readFileSync(join(dir, 'agent.json'), 'utf8')) as { tenantPublicKey: string };
    const box = JSON.parse(readFileSync(join(dir, 'pki', 'tunnel-key.json'), 'utf8')) as {
      publicKey: string;
      secretKey: string;
    };
    this.tenantKey = Buffer.from(cfg.tenantPublicKey, 'base64');
    this.box = { publicKey: Buffer.from(box.publicKey, 'base64'), secretKey: Buffer.from(box.secretKey, 'base64') };
  }

  /** Connects with the engine's identity and says Hello as that engine. */
  static async connect(name: string): Promise<HostileEngine> {
    const dir = d.agents.get(name)!.dir;
    const conn = rawConnect(d.url, identityOf(dir));
    expect(await conn.opened, `${name} connects`).toBe(true);
    conn.ws.send(
      encodeEnvelope({
        id: 1,
        hello: { protocolMajor: 1, protocolMinor: 2, agentVersion: 'test', kind: AgentKind.AGENT_KIND_ENGINE, name },
      }),
    );
    await until(`${name}: Welcome`, () => conn.frames.some((f) => f.welcome), 10_000);
    return new HostileEngine(name, conn, dir);
  }

  get ws(): WebSocket {
    return this.conn.ws;
  }
  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(record: Uint8Array, tenant = FLOODED): void {
    this.ws.send(encodeEnvelope({ tenant, tunnel: { record } }));
  }

  /** A real handshake with its tenant through main: the relayed session opens, as for a real engine. */
  async handshake(): Promise<void> {
    const hs = engineHandshake(this.box, this.tenantKey);
    const from = this.conn.frames.length;
    this.send(engineHelloRecord(hs.hello));
    const reply = await until(
      `${this.name}: the tenant's answer`,
      () => this.conn.frames.slice(from).find((f) => f.tunnel?.record?.[0] === RECORD_HANDSHAKE),
      15_000,
    );
    this.keys = hs.finish(parseTenantHello(reply.tunnel!.record!));
  }

  /** A record sealed with the session's keys: the tenant opens it and takes it. */
  sealed(plain: Uint8Array): Buffer {
    return this.keys!.send.seal(plain, Uint8Array.of(RECORD_SEALED));
  }

  /** The tenant's sealed records received so far, opened once each and in order (their nonces count). */
  opened(): Envelope[] {
    for (; this.seen < this.conn.frames.length; this.seen++) {
      const rec = this.conn.frames[this.seen].tunnel?.record;
      if (rec?.[0] === RECORD_SEALED) this.plain.push(decodeEnvelope(this.keys!.receive.open(rec.subarray(1))));
    }
    return this.plain;
  }

  /**
   * Sends the records `next` makes (to its tenant, or the one named) as fast as the socket takes them,
   * keeping ≤ 8 MiB in this process, until `maxBytes` or `maxMs`, or main closes the connection. Returns
   * the bytes sent.
   */
  async flood(next: () => { record: Uint8Array; tenant?: string }, maxBytes: number, maxMs: number): Promise<number> {
    const t0 = Date.now();
    let sent = 0;
    for (let i = 1; sent < maxBytes && Date.now() - t0 < maxMs && this.open; i++) {
      if (this.ws.bufferedAmount > 8 * MiB) {
        await sleep(2);
        continue;
      }
      const { record, tenant } = next();
      this.send(record, tenant);
      sent += record.length;
      if (i % 16 === 0) await tick(); // let the samplers and the bystander run
    }
    return sent;
  }

  error(): Envelope['error'] | undefined {
    return this.conn.frames.find((f) => f.error)?.error ?? undefined;
  }
}

/** Installs and starts an engine of the flooded tenant so it enrols for real, then stops it: its identity is ours. */
async function enrolHostile(name: string): Promise<void> {
  await d.startEngine(name, FLOODED);
  await d.agents.get(name)!.proc!.stop();
  await until(`${name}'s session to end`, async () => !(await engines(FLOODED)).includes(name), 30_000);
}

async function engines(tenant: string): Promise<string[]> {
  return (await d.engineSessions(tenant)).map((e) => e.name);
}

async function floodAudits(name: string): Promise<AuditRow[]> {
  const r = await d.api<AuditRow[]>('GET', '/audit?action=engine.flood&limit=100');
  return r.body.filter((a) => a.target === `engine:${name}`);
}

/** What `palisade engines --json` says about one engine. */
async function engineRow(name: string): Promise<EngineRow> {
  const r = await d.cli(['engines', '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (r.json as EngineRow[]).find((e) => e.name === name)!;
}

const mainLines = async (msg: string) =>
  (await readLog(d.mainLog))
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    })
    .filter((o) => o.msg === msg);

beforeAll(async () => {
  echo = createServer((s: Socket) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  echoPort = (echo.address() as { port: number }).port;
  d = await Deployment.create();
  await d.install('host', HOST, ['--engine-listen', 'off']);
  await d.startAgent(HOST);
  for (const t of [FLOODED, BYSTANDER]) await d.createTenant(t, HOST);
  await d.startEngine('fb-eng', BYSTANDER, { allow: [`127.0.0.1:${echoPort}`] });
  const t = await d.api<{ listen: string }>('POST', `/tenants/${BYSTANDER}/api/tunnels`, {
    to: `127.0.0.1:${echoPort}`,
    listen: '127.0.0.1:0',
  });
  expect(t.status, t.raw).toBe(201);
  bystanderPort = Number(t.body.listen.split(':').pop());
  await echoOnce();
  await enrolHostile('fa-bad');
  await enrolHostile('fa-deaf');
  await enrolHostile('fa-renew');
}, 240_000);
afterAll(async () => {
  await d?.stop();
  echo?.close();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('an engine flooding main with tunnel records', () => {
  let bad: HostileEngine;

  it('valid sealed records at full speed through its live session: main and the host hold a bounded amount, the other tenant keeps working', async () => {
    bad = await HostileEngine.connect('fa-bad');
    await bad.handshake();
    await until('the hostile engine in session', async () => (await engines(FLOODED)).includes('fa-bad'), 10_000);
    // Stream data for a stream that does not exist: the tenant opens each record and drops it.
    const plain = encodeEnvelope({ streamData: { streamId: 424242, data: randomBytes(512 * 1024) } });
    const rss = watchRss();
    const bystander = bystanderLoop();
    let growth: { main: number; host: number } | undefined;
    try {
      const t0 = Date.now();
      const sent = await bad.flood(() => ({ record: bad.sealed(plain) }), FLOOD_BYTES, FLOOD_MS);
      console.log(`valid-record flood: ${(sent / MiB).toFixed(0)} MiB in ${Date.now() - t0} ms`);
      const ok = await bystander.stop();
      growth = rss.stop('valid-record flood');
      expect(ok, 'bystander round trips during the flood').toBeGreaterThanOrEqual(3);
      expect(growth.main, 'main RSS growth (MiB)').toBeLessThan(RSS_GROWTH_LIMIT_MiB);
      expect(growth.host, 'host RSS growth (MiB)').toBeLessThan(RSS_GROWTH_LIMIT_MiB);
      // Records a real session could carry are slowed down, not refused: the engine is still there, and
      // main held it back before the host's queue toward the tenant reached its cap.
      expect(bad.open).toBe(true);
      expect(bad.error()).toBeUndefined();
      expect(await readLog(d.agentLog(HOST))).not.toContain('over the queue cap');
    } finally {
      if (!growth) {
        rss.stop('valid-record flood (failed)');
        await bystander.stop().catch(() => 0);
      }
    }
    await echoOnce();
  }, 120_000);

  it('junk records in its session: the tenant ends it, main drops and counts the rest, cuts the engine off with ERR_TUNNEL_FLOOD and audits it', async () => {
    expect(bad.open, 'the engine of the previous test is still connected').toBe(true);
    const rss = watchRss();
    const junk = Buffer.concat([Uint8Array.of(RECORD_SEALED), randomBytes(64 * 1024)]);
    const sent = await bad.flood(() => ({ record: junk }), FLOOD_BYTES, 30_000);
    const closed = await Promise.race([bad.conn.closed, sleep(15_000).then(() => undefined)]);
    const growth = rss.stop('junk flood');
    console.log(`junk flood: ${(sent / MiB).toFixed(0)} MiB sent`);
    expect(closed?.code, 'main closed the connection (policy)').toBe(1008);
    expect(bad.error()).toMatchObject({ code: 'ERR_TUNNEL_FLOOD' });
    expect(bad.error()?.message).toMatch(/could not relay/);
    expect(sent, 'cut off long before the flood ended').toBeLessThan(FLOOD_BYTES);
    expect(growth.main).toBeLessThan(RSS_GROWTH_LIMIT_MiB);
    expect(growth.host).toBeLessThan(RSS_GROWTH_LIMIT_MiB);

    const audit = await until('the engine.flood audit entry', async () => (await floodAudits('fa-bad'))[0], 10_000);
    expect(audit).toMatchObject({
      actor: 'engine:fa-bad',
      action: 'engine.flood',
      outcome: 'denied',
      detail: { tenant: FLOODED, code: 'ERR_TUNNEL_FLOOD' },
    });
    expect(audit.remote).toMatch(/^127\.0\.0\.1:\d+$/);
    const row = await engineRow('fa-bad');
    expect(row.relay.droppedRecords).toBeGreaterThan(0);
    expect(row.relay.floodDisconnects).toBe(1);
    // The drops are summarised, not logged one per record; that they had no session shows the tenant ended
    // it (its first junk record failed to open) and told main, which then passed nothing more.
    const summaries = (await mainLines('tunnel records dropped')).filter((l) => l.agent === 'fa-bad');
    expect(summaries.length).toBeGreaterThan(0);
    expect(summaries.length).toBeLessThan(10);
    expect(summaries.some((l) => ((l.reasons as Record<string, number>)['no relayed session'] ?? 0) > 0)).toBe(true);
    await echoOnce();
  }, 120_000);

  it('records for no session, for another tenant and hellos past the rate, at full speed: dropped, counted, cut off again; audited once a minute', async () => {
    const before = await engineRow('fa-bad');
    bad = await HostileEngine.connect('fa-bad');
    const rss = watchRss();
    const bystander = bystanderLoop();
    let n = 0;
    const noSession = Buffer.concat([Uint8Array.of(RECORD_SEALED), randomBytes(16 * 1024)]);
    const hello = Buffer.concat([Uint8Array.of(RECORD_HANDSHAKE), randomBytes(200)]);
    const sent = await bad.flood(
      () => {
        n++;
        if (n % 50 === 0) return { record: hello };
        if (n % 7 === 0) return { record: noSession, tenant: BYSTANDER };
        return { record: n % 3 === 0 ? randomBytes(64) : noSession };
      },
      FLOOD_BYTES,
      30_000,
    );
    const closed = await Promise.race([bad.conn.closed, sleep(15_000).then(() => undefined)]);
    let growth: { main: number; host: number } | undefined;
    const ok = await bystander.stop().finally(() => {
      growth = rss.stop('no-session flood');
    });
    console.log(`no-session flood: ${(sent / MiB).toFixed(0)} MiB sent in ${n} records`);
    expect(closed?.code).toBe(1008);
    expect(bad.error()).toMatchObject({ code: 'ERR_TUNNEL_FLOOD' });
    expect(ok).toBeGreaterThanOrEqual(1);
    expect(growth!.main).toBeLessThan(RSS_GROWTH_LIMIT_MiB);
    expect(growth!.host).toBeLessThan(RSS_GROWTH_LIMIT_MiB);
    const row = await engineRow('fa-bad');
    expect(row.relay.droppedRecords).toBeGreaterThan(before.relay.droppedRecords + 1000);
    expect(row.relay.droppedBytes).toBeGreaterThan(before.relay.droppedBytes);
    expect(row.relay.floodDisconnects).toBe(2);
    // One audit entry per engine per minute, however often it comes back.
    expect(await floodAudits('fa-bad')).toHaveLength(1);
    // The tenant saw at most the hellos main let through (30 a minute; the flood may span two), not the flood.
    const tenantLog = await readLog(join(d.agents.get(HOST)!.dir, 'tenants', FLOODED, 'logs', 'tenant.log'));
    expect(
      tenantLog.split('\n').filter((l) => l.includes('engine session refused or broken')).length,
    ).toBeLessThanOrEqual(1 + 2 * 30);
    await echoOnce();
  }, 120_000);

  it('renewal requests for its direct-path statement nonstop, reading nothing: main signs a burst, drops and counts the rest, cuts it off with ERR_TUNNEL_FLOOD and audits it', async () => {
    const asker = await HostileEngine.connect('fa-renew');
    const from = asker.conn.frames.length;
    const renew = encodeEnvelope({ tenant: FLOODED, tunnel: { directRenew: true } });
    const rss = watchRss();
    asker.ws.pause();
    const t0 = Date.now();
    let sent = 0;
    // Unread, main's Error frame and close wait in the socket: the flood goes on until the audit log shows the cut-off.
    while (Date.now() - t0 < RENEW_FLOOD_MS && asker.ws.readyState === WebSocket.OPEN) {
      if (asker.ws.bufferedAmount > MiB) {
        await sleep(2);
        continue;
      }
      asker.ws.send(renew);
      if (++sent % 4096 === 0 && (await floodAudits('fa-renew')).length) break;
      if (sent % 256 === 0) await tick();
    }
    const growth = rss.stop('renewal flood');
    asker.ws.resume();
    const closed = await Promise.race([asker.conn.closed, sleep(15_000).then(() => undefined)]);
    const statements = asker.conn.frames.slice(from).filter((f) => f.tunnel?.direct).length;
    console.log(`renewal flood: ${sent} requests in ${Date.now() - t0} ms, ${statements} statements signed`);
    expect(growth.main, 'main RSS growth (MiB)').toBeLessThan(RSS_GROWTH_LIMIT_MiB);
    expect(closed?.code, 'main closed the connection (policy)').toBe(1008);
    expect(asker.error()).toMatchObject({ code: 'ERR_TUNNEL_FLOOD' });
    // Answered as a real engine is (a fresh statement each), up to the burst; the cut-off came long before the flood's
    // end.
    expect(statements).toBeGreaterThanOrEqual(1);
    expect(statements).toBeLessThanOrEqual(RENEWAL_BURST + 1);
    const audit = await until('the engine.flood audit entry', async () => (await floodAudits('fa-renew'))[0], 10_000);
    expect(audit).toMatchObject({
      actor: 'engine:fa-renew',
      action: 'engine.flood',
      outcome: 'denied',
      detail: { tenant: FLOODED, code: 'ERR_TUNNEL_FLOOD' },
    });
    const row = await engineRow('fa-renew');
    expect(row.relay.floodDisconnects).toBe(1);
    expect(row.relay.droppedRecords).toBeGreaterThan(FLOOD_RECORDS);
    const summaries = (await mainLines('tunnel records dropped')).filter((l) => l.agent === 'fa-renew');
    expect(summaries.some((l) => ((l.reasons as Record<string, number>)['renewals over the rate'] ?? 0) > 0)).toBe(
      true,
    );
    await echoOnce();
  }, 120_000);

  it('an engine that grants credit and stops reading: main cuts it off past its backlog bound (ERR_TUNNEL_BACKLOG) instead of buffering', async () => {
    const deaf = await HostileEngine.connect('fa-deaf');
    await deaf.handshake();
    const t = await d.api<{ listen: string }>('POST', `/tenants/${FLOODED}/api/tunnels`, {
      to: '127.0.0.1:9',
      listen: '127.0.0.1:0',
      engine: 'fa-deaf',
    });
    expect(t.status, t.raw).toBe(201);
    const client = connect(Number(t.body.listen.split(':').pop()), '127.0.0.1');
    client.on('error', () => undefined);
    await new Promise((r) => client.once('connect', r));
    // The tenant opens a stream to us; we grant it 4 GiB of credit, then read nothing more.
    const open = await until(
      'the tenant opening a stream',
      () => deaf.opened().find((e) => e.streamOpen)?.streamOpen,
      10_000,
    );
    deaf.send(deaf.sealed(encodeEnvelope({ streamWindow: { streamId: open.streamId, credit: 0xffffffff } })));
    await sleep(200);
    deaf.ws.pause();
    const rss = watchRss();
    const block = randomBytes(MiB);
    const drained = () =>
      new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          client.off('drain', done);
          client.off('close', done);
          resolve();
        };
        const timer = setTimeout(done, 5_000);
        client.on('drain', done);
        client.on('close', done);
      });
    let written = 0;
    try {
      while (written < 1024 * MiB && !client.destroyed) {
        if (!client.write(block)) await drained();
        written += MiB;
        if (written % (16 * MiB) === 0 && (await floodAudits('fa-deaf')).length) break;
      }
      const audit = await until('the engine.flood audit entry', async () => (await floodAudits('fa-deaf'))[0], 30_000);
      expect(audit).toMatchObject({ actor: 'engine:fa-deaf', detail: { code: 'ERR_TUNNEL_BACKLOG' } });
    } finally {
      const growth = rss.stop('engine not reading');
      console.log(`not-reading engine: client wrote ${written / MiB} MiB into the tunnel`);
      expect(growth.main, 'main RSS growth (MiB)').toBeLessThan(RSS_GROWTH_LIMIT_MiB);
      client.destroy();
      deaf.ws.terminate();
    }
    expect((await engineRow('fa-deaf')).relay.floodDisconnects).toBe(1);
    await until('the tenant to drop the session', async () => !(await engines(FLOODED)).includes('fa-deaf'), 15_000);
    await echoOnce();
  }, 180_000);
});
