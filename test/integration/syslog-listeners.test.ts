/**
 * The engine's syslog sockets (agent/engine/syslog/syslog-listeners.ts) on real loopback sockets: UDP datagrams,
 * TCP with both framings, TLS with the engine's certificate; the sender's address and transport on each record; a
 * message over the limit cut; a malformed octet count closing that one connection while the others go on; an idle
 * connection closed after the (short, configured) idle timeout; a 17th open connection from one address refused
 * (TCP and TLS alike) while another address still connects.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { silentLogger } from '#common/logging.js';
import { createCa, generateRsaKeyPem, createCsr, signAgentCsr } from '#common/pki.js';
import { MAX_SYSLOG_MESSAGE_BYTES, type SyslogRecord } from '#common/syslog-record.js';
import { SyslogListeners } from '../../agent/engine/syslog/syslog-listeners.js';
import { until } from '../harness/processes.js';

const got: SyslogRecord[] = [];
let listeners: SyslogListeners;
const port = (t: string) => listeners.listening.find((l) => l.transport === t)!.port;
const raws = () => got.map((r) => r.raw);

beforeAll(async () => {
  // An engine's certificate as main issues it (signAgentCsr): what the TLS listener serves.
  const ca = await createCa('test CA');
  const key = await generateRsaKeyPem();
  const { certPem } = signAgentCsr(ca, createCsr(key, 'eng1'), 'eng_0123456789abcdef');
  listeners = new SyslogListeners((r) => got.push(r), silentLogger(), { cert: certPem, key }, { idleTimeoutMs: 1_500 });
  await listeners.start([
    { transport: 'udp', host: '127.0.0.1', port: 0 },
    { transport: 'tcp', host: '127.0.0.1', port: 0 },
    { transport: 'tls', host: '127.0.0.1', port: 0 },
  ]);
}, 60_000);
afterAll(async () => {
  await listeners?.close();
});

const tcp = async (localAddress?: string): Promise<Socket> => {
  const s = connect({ port: port('tcp'), host: '127.0.0.1', localAddress });
  await new Promise((r) => s.once('connect', r));
  s.on('error', () => undefined);
  return s;
};
/** Resolves true when the listener closes the socket within `ms`, false when it is still open then. */
const closedWithin = (s: Socket, ms: number) =>
  new Promise<boolean>((resolve) => {
    if (s.closed) return resolve(true);
    const t = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });

describe('syslog listeners', () => {
  it('takes UDP datagrams, one message each, with the sender and transport', async () => {
    const u = createSocket('udp4');
    await new Promise<void>((r) => u.send('<13>udp one', port('udp'), '127.0.0.1', () => r()));
    const r = await until('the UDP record', async () => got.find((x) => x.raw === '<13>udp one'), 5_000);
    expect(r).toMatchObject({ sender: '127.0.0.1', transport: 'udp' });
    // A datagram's closing newline (printf, some devices) is not part of its message.
    for (const d of ['<13>udp two\n', '<13>udp three\r\n'])
      await new Promise<void>((res) => u.send(d, port('udp'), '127.0.0.1', () => res()));
    for (const m of ['<13>udp two', '<13>udp three'])
      expect(await until(m, async () => got.find((x) => x.raw === m), 5_000)).toMatchObject({ transport: 'udp' });
    u.close();
    expect(Math.abs(r.receivedAt - Date.now())).toBeLessThan(5_000);
  });

  it('takes TCP in both framings, cuts an oversized message, and closes only a connection with a bad count', async () => {
    const good = await tcp();
    const bad = await tcp();
    const big = '<13>' + 'z'.repeat(MAX_SYSLOG_MESSAGE_BYTES + 500);
    good.write(`<13>line one\n11 <13>counted${big}\n`);
    bad.write('<13>before\n05 <13>bad');
    await until('the bad connection closed', () => bad.closed || bad.readableEnded, 5_000, 20);
    good.write('<13>after the bad one\n');
    await until('the good connection still delivers', async () => raws().includes('<13>after the bad one'), 5_000);
    expect(raws()).toEqual(expect.arrayContaining(['<13>line one', '<13>counted', '<13>before']));
    const cut = got.find((x) => x.raw.startsWith('<13>zzz'))!;
    expect(Buffer.byteLength(cut.raw)).toBe(MAX_SYSLOG_MESSAGE_BYTES);
    expect(listeners.counts).toMatchObject({ framingErrors: 1, cut: 1 });
    expect(raws().some((r) => r.startsWith('<13>bad') || r.startsWith('05'))).toBe(false);
    good.destroy();
  });

  it("takes TLS with the engine's certificate", async () => {
    const s = tlsConnect({ host: '127.0.0.1', port: port('tls'), rejectUnauthorized: false });
    await new Promise((r) => s.once('secureConnect', r));
    expect(s.getPeerCertificate().subject.CN).toBe('eng_0123456789abcdef');
    s.end('17 <13>over tls here');
    const r = await until('the TLS record', async () => got.find((x) => x.raw === '<13>over tls here'), 5_000);
    expect(r.transport).toBe('tls');
  });

  it('closes a connection idle for the configured timeout, while one that keeps sending stays open', async () => {
    const idle = await tcp();
    const busy = await tcp();
    const before = listeners.counts.idleClosed;
    const keepAlive = setInterval(() => busy.write('<13>still here\n'), 300);
    try {
      expect(await closedWithin(idle, 5_000)).toBe(true);
      expect(busy.closed).toBe(false);
      expect(listeners.counts.idleClosed).toBeGreaterThan(before);
    } finally {
      clearInterval(keepAlive);
      busy.destroy();
    }
  });

  it('refuses a 17th connection from one address, TCP and TLS alike, while another address still connects', async () => {
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 16; i++) held.push(await tcp());
      const refused = listeners.counts.refusedPerSource;
      const seventeenth = await tcp();
      expect(await closedWithin(seventeenth, 3_000)).toBe(true);
      const tls = tlsConnect({ host: '127.0.0.1', port: port('tls'), rejectUnauthorized: false });
      tls.on('error', () => undefined);
      expect(await closedWithin(tls, 3_000)).toBe(true);
      expect(listeners.counts.refusedPerSource).toBe(refused + 2);
      // The 16 held ones still deliver, and another sender address connects and delivers.
      held[0]!.write('<13>from a held one\n');
      const other = await tcp('127.0.0.2');
      other.write('<13>from another address\n');
      const r = await until(
        'the other address delivers',
        async () => got.find((x) => x.raw === '<13>from another address'),
        5_000,
      );
      expect(r.sender).toBe('127.0.0.2');
      expect(raws()).toContain('<13>from a held one');
      expect(other.closed).toBe(false);
      other.destroy();
      // Once one closes, the address has room again.
      held.pop()!.destroy();
      await new Promise((r) => setTimeout(r, 200));
      const again = await tcp();
      again.write('<13>room again\n');
      await until('a new connection delivers', async () => raws().includes('<13>room again'), 5_000);
      held.push(again);
    } finally {
      for (const s of held) s.destroy();
    }
  });
});
