/**
 * The direct engine ⇄ host path itself, with real processes: an engine that cannot reach the endpoint
 * main offers (refused, or a black hole) relays through main instead; a lost direct connection is
 * replaced; and the host's engine port, which anyone on the network may reach, refuses strangers,
 * slow or oversized preambles, forged statements, replayed openings and oversized records — each by
 * closing that one connection, while the host, the tenant and the live session carry on. Its per-address
 * rate limit is exercised from other loopback addresses than the engines' 127.0.0.1.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { freePort, readLog, until } from '../harness/processes.js';
import { TcpTap, directRecords } from '../harness/tcp-tap.js';
import { engineHandshake } from '../../agent/tunnel/tunnel-crypto.js';
import { engineHelloRecord } from '../../agent/tunnel/tunnel-records.js';
import { encodeOpening, encodePreamble, framedRecord, parsePreamble } from '../../agent/tunnel/tunnel-direct.js';

let d: Deployment;
let web: HttpServer;
let webPort = 0;
let hostPort = 0;
let tap: TcpTap;
/** What the fallback host advertises: closed (refused) or accepting and holding (a black hole). */
let holePort = 0;
let hole: Server | undefined;
const held: Socket[] = [];
const BODY = 'behind-the-engine';

const sessions = (tenant: string) => d.engineSessions(tenant);

/** An HTTP GET through a fresh outbound tunnel of `tenant`. */
async function throughTunnel(tenant: string): Promise<string> {
  const r = await d.api<{ listen: string }>('POST', `/tenants/${tenant}/api/tunnels`, {
    to: `127.0.0.1:${webPort}`,
    listen: '127.0.0.1:0',
  });
  expect(r.status, r.raw).toBe(201);
  const port = Number(r.body.listen.split(':').pop());
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    let raw = '';
    s.on('data', (c: Buffer) => {
      raw += c.toString();
    });
    s.on('end', () => resolve(raw.split('\r\n\r\n').slice(1).join('')));
    s.on('error', reject);
    s.setTimeout(10_000, () => s.destroy(new Error('timeout')));
  });
}

/** Connects to the host's engine port, sends `bytes`, and reports how the host ended it (and how fast). */
function probe(bytes: Buffer | undefined, port = hostPort): Promise<{ closedAfterMs: number; got: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let got = 0;
    const s = connect(port, '127.0.0.1', () => {
      if (bytes) s.write(bytes);
    });
    s.on('data', (c: Buffer) => {
      got += c.length;
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve({ closedAfterMs: Date.now() - t0, got }));
    s.setTimeout(20_000, () => s.destroy());
  });
}

const tenantLog = (host: string, tenant: string) =>
  join(d.agents.get(host)!.dir, 'tenants', tenant, 'logs', 'tenant.log');
const tenantPid = async (name: string) => (await d.tenant(name))!.pid;

beforeAll(async () => {
  web = createHttpServer((_req, res) => res.end(BODY));
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  webPort = (web.address() as { port: number }).port;
  d = await Deployment.create();
  // dh: the direct path, engines dialling a tap in front of the host's engine port.
  hostPort = await freePort();
  tap = new TcpTap(hostPort);
  await d.install('host', 'dh');
  d.configure('dh', { engineListen: `127.0.0.1:${hostPort}`, engineAdvertise: `127.0.0.1:${await tap.start()}` });
  await d.startAgent('dh');
  // fh: advertises an endpoint engines cannot use.
  holePort = await freePort();
  await d.install('host', 'fh');
  d.configure('fh', { engineAdvertise: `127.0.0.1:${holePort}` });
  await d.startAgent('fh');
  for (const [tenant, host] of [
    ['dt', 'dh'],
    ['ft', 'fh'],
  ])
    await d.createTenant(tenant, host);
  await d.startEngine('de', 'dt', { allow: [`127.0.0.1:${webPort}`], transport: 'direct' });
});
afterAll(async () => {
  await d?.stop();
  web?.close();
  tap?.close();
  hole?.close();
  for (const s of held) s.destroy();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('falling back to the relayed path', () => {
  it('an engine refused at the advertised endpoint relays through main, and its tunnels work', async () => {
    const s = await d.startEngine('fe', 'ft', { allow: [`127.0.0.1:${webPort}`] });
    expect(s.transport).toBe('relay');
    const log = await readLog(d.agentLog('fe'));
    expect(log).toContain('direct tunnel path failed; relaying through main');
    expect(await throughTunnel('ft')).toBe(BODY);
  });

  it('an endpoint that accepts but never answers (a black hole) is given up after the set-up deadline', async () => {
    await d.agents.get('fe')!.proc!.stop();
    await until('its session ends', async () => (await sessions('ft')).length === 0, 30_000);
    hole = createServer((sock) => {
      held.push(sock);
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => hole!.listen(holePort, '127.0.0.1', r));
    const t0 = Date.now();
    await d.startAgent('fe');
    const s = await until('a relayed session', async () => (await sessions('ft')).find((e) => e.name === 'fe'), 30_000);
    expect(s.transport).toBe('relay');
    expect(held.length).toBeGreaterThan(0); // it did dial the hole first
    expect(Date.now() - t0).toBeGreaterThan(4_000);
    const lines = (await readLog(d.agentLog('fe'))).split('\n').filter((l) => l.includes('direct tunnel path failed'));
    expect(lines.at(-1)).toContain('no session within');
    expect(await throughTunnel('ft')).toBe(BODY);
  });
});

describe('the direct path', () => {
  it('carries the session: main relays only the hello, the bytes cross the engine ⇄ host connection', async () => {
    expect(await throughTunnel('dt')).toBe(BODY);
    const up = Buffer.concat(tap.connections.at(-1)!.toHost);
    expect(up.subarray(0, 4).toString()).toBe('PLSD');
    expect(directRecords(up, true).length).toBeGreaterThan(1);
    expect(up.includes(Buffer.from(BODY))).toBe(false);
    expect(Buffer.concat(tap.connections.at(-1)!.toEngine).includes(Buffer.from(BODY))).toBe(false);
  });

  it('a lost direct connection is replaced: the engine starts a new direct session and tunnels work again', async () => {
    const before = tap.connections.length;
    tap.cutAll();
    await until(
      'a new direct session',
      async () => tap.connections.length > before && (await sessions('dt'))[0]?.transport === 'direct',
      30_000,
    );
    expect(await throughTunnel('dt')).toBe(BODY);
  });
});

describe("the host's engine port before hand-off", () => {
  it('closes a stranger at once, without a word', async () => {
    for (const junk of [
      'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
      '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03',
      'SSH-2.0-OpenSSH_9.6\r\n',
    ]) {
      const r = await probe(Buffer.from(junk, 'latin1'));
      expect(r.got).toBe(0);
      expect(r.closedAfterMs).toBeLessThan(2_000);
    }
  });

  it('closes an oversized preamble at its length field, and a silent connection after the preamble deadline', async () => {
    const big = await probe(Buffer.from('PLSD\x02\xff\xff', 'latin1'));
    expect(big.closedAfterMs).toBeLessThan(2_000);
    const silent = await probe(undefined);
    expect(silent.got).toBe(0);
    expect(silent.closedAfterMs).toBeGreaterThan(4_000);
    expect(silent.closedAfterMs).toBeLessThan(10_000);
  });

  it('refuses a well-formed preamble with a forged statement before the tenant sees it', async () => {
    const logBefore = (await readLog(tenantLog('dh', 'dt'))).length;
    const opening = Buffer.concat(tap.connections.at(-1)!.toHost);
    const { preamble, rest } = parsePreamble(opening)!;
    const forged = encodePreamble(preamble.tenant, { ...preamble, engineName: 'mallory' }); // main's signature no longer matches
    const r = await probe(Buffer.concat([forged, framedRecord(directRecords(rest, false)[0])]));
    expect(r.got).toBe(0);
    await new Promise((res) => setTimeout(res, 300));
    expect((await readLog(tenantLog('dh', 'dt'))).slice(logBefore)).not.toContain('mallory');
    expect((await sessions('dt'))[0]?.transport).toBe('direct');
  });

  it('refuses a replayed opening (captured preamble and hello): the live session stays', async () => {
    const live = (await sessions('dt'))[0];
    const opening = Buffer.concat(tap.connections.at(-1)!.toHost);
    const { preamble, rest } = parsePreamble(opening)!;
    const hello = directRecords(rest, false)[0];
    const r = await probe(Buffer.concat([encodePreamble(preamble.tenant, preamble), framedRecord(hello)]));
    expect(r.got).toBe(0);
    await until(
      'the tenant to refuse the replay',
      async () => (await readLog(tenantLog('dh', 'dt'))).includes('ERR_TUNNEL_HELLO_REPLAY'),
      10_000,
    );
    expect((await sessions('dt'))[0]).toMatchObject({
      id: live.id,
      since: (live as unknown as { since: string }).since,
      transport: 'direct',
    });
    expect(await throughTunnel('dt')).toBe(BODY);
  });

  it('an oversized record after a completed handshake closes that connection only: tenant and host carry on, the engine comes back', async () => {
    const pid = await tenantPid('dt');
    // A client holding the engine's keys and main's (still valid) statement from the capture: a real session.
    const engineDir = d.agents.get('de')!.dir;
    const box = JSON.parse(await readFile(join(engineDir, 'pki', 'tunnel-key.json'), 'utf8')) as {
      publicKey: string;
      secretKey: string;
    };
    const cfg = JSON.parse(await readFile(join(engineDir, 'agent.json'), 'utf8')) as { tenantPublicKey: string };
    const { preamble } = parsePreamble(Buffer.concat(tap.connections.at(-1)!.toHost))!;
    const hs = engineHandshake(
      { publicKey: Buffer.from(box.publicKey, 'base64'), secretKey: Buffer.from(box.secretKey, 'base64') },
      Buffer.from(cfg.tenantPublicKey, 'base64'),
    );
    const closed = await new Promise<{ gotReply: boolean }>((resolve) => {
      let gotReply = false;
      const s = connect(hostPort, '127.0.0.1', () =>
        s.write(encodeOpening(preamble.tenant, preamble, engineHelloRecord(hs.hello))),
      );
      s.on('data', () => {
        if (gotReply) return;
        gotReply = true;
        const huge = Buffer.alloc(8);
        huge.writeUInt32BE(64 * 1024 * 1024, 0); // far over the frame limit
        s.write(huge);
      });
      s.on('error', () => undefined);
      s.on('close', () => resolve({ gotReply }));
      s.setTimeout(15_000, () => s.destroy());
    });
    expect(closed.gotReply).toBe(true); // the handshake completed: the size check is what closed it
    expect(await tenantPid('dt')).toBe(pid);
    expect(d.agents.get('dh')!.proc!.running).toBe(true);
    await until(
      'the engine back on the direct path',
      async () => (await sessions('dt'))[0]?.transport === 'direct',
      30_000,
    );
    expect(await throughTunnel('dt')).toBe(BODY);
  });
});

/** On Linux all of 127.0.0.0/8 is loopback: a flood from these addresses leaves the engines' 127.0.0.1 alone. */
const FLOODER = '127.0.0.9';
const BYSTANDER = '127.0.0.10';

interface Opened {
  sock: Socket;
  got: number;
  closedAfterMs?: number;
}

/** A silent connection to the host's engine port from `localAddress`: did the host close it within `withinMs`? */
function openFrom(localAddress: string, withinMs: number): Promise<Opened> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const r: Opened = { sock: connect({ host: '127.0.0.1', port: hostPort, localAddress }), got: 0 };
    r.sock.on('data', (c: Buffer) => {
      r.got += c.length;
    });
    r.sock.on('error', () => undefined);
    const timer = setTimeout(() => resolve(r), withinMs);
    r.sock.on('close', () => {
      clearTimeout(timer);
      r.closedAfterMs = Date.now() - t0;
      resolve(r);
    });
  });
}

/** The host's "refused before hand-off" summaries (code → count) logged after `from`. */
async function refusalSummaries(from: number): Promise<Record<string, number>[]> {
  return (await readLog(d.agentLog('dh')))
    .slice(from)
    .split('\n')
    .filter((l) => l.includes('engine connections refused before hand-off'))
    .map((l) => (JSON.parse(l) as { refused: Record<string, number> }).refused);
}

describe("the host's engine port rate limit", () => {
  it.skipIf(process.platform !== 'linux')(
    'past its burst one address is closed at once, without a word; another address is still read, and the engine still gets its direct session',
    async () => {
      const logFrom = (await readLog(d.agentLog('dh'))).length;
      // 40 at once, well inside one refill interval: the burst (30) is held for its preamble, the rest refused on
      // accept.
      const flood = Array.from({ length: 40 }, () => openFrom(FLOODER, 1_500));
      const [results, bystander] = await Promise.all([Promise.all(flood), openFrom(BYSTANDER, 1_500)]);
      const held = results.filter((r) => r.closedAfterMs === undefined);
      const refused = results.filter((r) => r.closedAfterMs !== undefined);
      try {
        expect(held.length).toBeGreaterThanOrEqual(30);
        expect(held.length).toBeLessThanOrEqual(32); // a token refills every 2 s
        for (const r of refused) {
          expect(r.got).toBe(0);
          expect(r.closedAfterMs).toBeLessThan(1_000);
        }
        // The bystander was not closed on accept: the host is reading its preamble, and refuses it for a bad one.
        expect(bystander.closedAfterMs).toBeUndefined();
        const closed = new Promise<number>((res) => {
          const t0 = Date.now();
          bystander.sock.on('close', () => res(Date.now() - t0));
        });
        bystander.sock.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
        expect(await closed).toBeLessThan(2_000);
        expect(bystander.got).toBe(0);
      } finally {
        for (const r of held) r.sock.destroy();
      }
      // The log names the reason and counts every refusal: one summary line at most every 10 s, the last
      // one written when its interval ends, though nothing is refused after the flood.
      const summaries = await until(
        'the refusal summaries',
        async () => {
          const found = await refusalSummaries(logFrom);
          return found.reduce((n, r) => n + (r.ERR_DIRECT_RATE ?? 0), 0) >= refused.length ? found : undefined;
        },
        20_000,
      );
      expect(summaries.some((r) => r.ERR_DIRECT_BUSY)).toBe(false); // refused for its rate, not for the pending cap
      // The real engine, dialling from 127.0.0.1 (through the tap), opens a new direct session.
      const before = tap.connections.length;
      tap.cutAll();
      await until(
        'a new direct session',
        async () => tap.connections.length > before && (await sessions('dt'))[0]?.transport === 'direct',
        30_000,
      );
      expect(await throughTunnel('dt')).toBe(BODY);
    },
  );
});
