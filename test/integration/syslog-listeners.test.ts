/**
 * The engine's syslog sockets (agent/engine/syslog/syslog-listeners.ts) on real loopback sockets: UDP datagrams,
 * TCP with both framings, TLS with the engine's certificate; the sender's address and transport on each record; a
 * message over the limit cut; a malformed octet count closing that one connection while the others go on.
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
  listeners = new SyslogListeners((r) => got.push(r), silentLogger(), { cert: certPem, key });
  await listeners.start([
    { transport: 'udp', host: '127.0.0.1', port: 0 },
    { transport: 'tcp', host: '127.0.0.1', port: 0 },
    { transport: 'tls', host: '127.0.0.1', port: 0 },
  ]);
}, 60_000);
afterAll(async () => {
  await listeners?.close();
});

const tcp = async (): Promise<Socket> => {
  const s = connect(port('tcp'), '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  return s;
};

describe('syslog listeners', () => {
  it('takes UDP datagrams, one message each, with the sender and transport', async () => {
    const u = createSocket('udp4');
    await new Promise<void>((r) => u.send('<13>udp one', port('udp'), '127.0.0.1', () => r()));
    u.close();
    const r = await until('the UDP record', async () => got.find((x) => x.raw === '<13>udp one'), 5_000);
    expect(r).toMatchObject({ sender: '127.0.0.1', transport: 'udp' });
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
});
