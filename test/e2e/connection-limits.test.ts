/**
 * Main's connection limits against stalled sockets, with a real main and host agent over real TLS: raw
 * TCP that never sends, TLS handshakes left half done, TLS connections that never send a request,
 * requests whose headers never end, and keep-alive connections left idle after a request without a key. Main holds at
 * most `maxUnauthenticated` of them (dropping the oldest
 * for a newcomer), closes the ones past `maxUnauthenticatedPerAddress` at once, closes every one of them
 * within its default timeouts (10 s handshake, 10 s headers), and a real agent enrols, connects and
 * answers a REST call through main while thousands are held open.
 * The stalled sockets come from 127.0.0.2 and up; the harness's agent and CLI from 127.0.0.1.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { HEADERS_TIMEOUT_MS, TLS_HANDSHAKE_TIMEOUT_MS } from '../../main/config.js';
import { Deployment } from '../harness/deployment.js';
import { until } from '../harness/processes.js';

const PER_ADDRESS = 100;
const TOTAL = 1000;
let d: Deployment;
let ca: string;
const sockets: Stalled[] = [];

beforeAll(async () => {
  d = await Deployment.create({ mainConfig: { maxUnauthenticatedPerAddress: PER_ADDRESS, maxUnauthenticated: TOTAL } });
  ca = readFileSync(d.caCertPath, 'utf8');
});
afterAll(async () => {
  for (const s of sockets) s.socket.destroy();
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

interface Stalled {
  socket: Socket;
  kind: Kind;
  openedAt: number;
  closedAt?: number;
}
type Kind = 'tcp-silent' | 'tls-half-handshake' | 'tls-no-request' | 'http-endless-headers' | 'http-idle-after-answer';
const KINDS: readonly Kind[] = [
  'tcp-silent',
  'tls-half-handshake',
  'tls-no-request',
  'http-endless-headers',
  'http-idle-after-answer',
];
/** The start of a TLS ClientHello that announces 508 bytes and never sends them. */
const HALF_CLIENT_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]);

/** Opens one stalled socket from `from`; resolves once it is in its stalled state (or already closed by main). */
function stall(kind: Kind, from: string): Promise<Stalled> {
  const port = Number(new URL(d.url).port);
  return new Promise((resolve) => {
    const tls = kind !== 'tcp-silent' && kind !== 'tls-half-handshake';
    const socket: Socket = tls
      ? tlsConnect({ socket: tcpConnect({ host: '127.0.0.1', port, localAddress: from }), ca, servername: 'localhost' })
      : tcpConnect({ host: '127.0.0.1', port, localAddress: from });
    const s: Stalled = { socket, kind, openedAt: Date.now() };
    sockets.push(s);
    socket.on('error', () => undefined);
    socket.resume(); // read (and drop) what main sends, e.g. a 408, so its close is seen
    socket.once('close', () => {
      s.closedAt = Date.now();
      resolve(s);
    });
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      if (kind === 'tls-half-handshake') socket.write(HALF_CLIENT_HELLO);
      if (kind === 'http-endless-headers') socket.write('GET /api/v1/health HTTP/1.1\r\nHost: main\r\nX-Slow: ');
      // A whole request without a key, asking to keep the connection, then silence.
      if (kind === 'http-idle-after-answer')
        socket.write('GET /api/v1/health HTTP/1.1\r\nHost: main\r\nConnection: keep-alive\r\n\r\n');
      resolve(s);
    });
  });
}

/** Runs `n` stall() calls with at most `parallel` in flight, spread over the kinds and 20 source addresses. */
async function stallMany(n: number, first: number, parallel = 50): Promise<void> {
  let next = first;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < first + n) {
        const i = next++;
        await stall(KINDS[i % KINDS.length], `127.0.0.${2 + (i % 20)}`);
      }
    }),
  );
}

const openCount = () => sockets.filter((s) => s.closedAt === undefined).length;

describe('stalled sockets', () => {
  it('2 000 and more: main holds at most its cap, a real agent connects and REST works, and main closes them all within its timeouts', async () => {
    await stallMany(2000, 0);
    // The oldest are dropped for newcomers: what main holds stays at the cap (a little slack for closes in flight).
    await until('main holds at most its cap', () => openCount() <= TOTAL + 20, 5_000);

    // More keep coming while a real agent enrols and connects from 127.0.0.1.
    let more = true;
    let peak = 0;
    const trickle = (async () => {
      for (let i = 2000; more; i += 10) {
        await stallMany(10, i, 10);
        peak = Math.max(peak, openCount());
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await d.install('host', 'h-real');
    await d.startAgent('h-real');
    const ping = await d.cli(['hosts', 'ping', 'h-real', '--json']);
    expect(ping.json, ping.stdout + ping.stderr).toMatchObject({ state: 'done', result: { pong: true } });
    more = false;
    await trickle;
    const lastOpened = Math.max(...sockets.map((s) => s.openedAt));
    expect(sockets.length).toBeGreaterThanOrEqual(2000);
    expect(peak).toBeLessThanOrEqual(TOTAL + 20);

    // Nobody on this side closes them: every close is main's, within its handshake and header timeouts.
    const bound = Math.max(TLS_HANDSHAKE_TIMEOUT_MS, HEADERS_TIMEOUT_MS) + 5_000;
    await until('main closed every stalled socket', () => openCount() === 0, bound + 10_000, 250).catch((e: Error) => {
      const open = sockets.filter((x) => x.closedAt === undefined);
      throw new Error(
        `${e.message}: ${JSON.stringify(KINDS.map((k) => [k, open.filter((x) => x.kind === k).length]))}, opened ${Date.now() - Math.min(...open.map((x) => x.openedAt))} ms ago`,
      );
    });
    expect(Date.now() - lastOpened).toBeLessThanOrEqual(bound + 1_000);
    for (const kind of KINDS) {
      const longest = Math.max(...sockets.filter((s) => s.kind === kind).map((s) => s.closedAt! - s.openedAt));
      expect(longest, kind).toBeLessThanOrEqual(bound);
    }
    // The agent never noticed.
    expect((await d.cli(['hosts', 'ping', 'h-real', '--json'])).json).toMatchObject({ state: 'done' });
  }, 300_000);

  it(`one address gets ${PER_ADDRESS} unauthenticated sockets; the ones past that are closed at once`, async () => {
    const mine: Stalled[] = [];
    for (let i = 0; i < PER_ADDRESS + 50; i++) mine.push(await stall('tcp-silent', '127.0.0.99'));
    await until(
      'the 50 past the cap closed',
      () => mine.slice(PER_ADDRESS).every((s) => s.closedAt !== undefined),
      5_000,
    );
    // The first ones are within their handshake timeout still, and held.
    expect(mine.slice(0, PER_ADDRESS).filter((s) => s.closedAt === undefined).length).toBe(PER_ADDRESS);
    expect(Math.max(...mine.slice(PER_ADDRESS).map((s) => s.closedAt! - s.openedAt))).toBeLessThan(2_000);
  });
});
