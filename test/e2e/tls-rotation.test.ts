/**
 * Main's TLS credentials over time, with a real main over real TLS: a server certificate near its end is
 * renewed from main's CA and served without a restart (a client connecting afterwards sees the new serial
 * and a notAfter 397 days out), and the session-ticket key rotates on its period — in the server (a
 * ticket from before no longer resumes, a new one does) and in its file (a restart right after still
 * resumes). The periods are shortened through main.json (serverCertCheckMs, ticketKeyRotationMs); the
 * renewal threshold is the real one (a third of the certificate's life), on a certificate made short-lived.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { connect, type PeerCertificate } from 'node:tls';
import { join } from 'node:path';
import { issueServerCert } from '#common/pki.js';
import { writeFileAtomic } from '#common/atomic-file.js';
import { serverCertNames } from '../../main/tls/server-certificate.js';
import { Deployment } from '../harness/deployment.js';
import { readLog, until } from '../harness/processes.js';

const ROTATION_MS = 30_000;
/** Half the short certificate's life: renewal is due once less than a third is left, LIFE_HALF / 3 after it is made. */
const LIFE_HALF_MS = 120_000;
let d: Deployment;
let ca: string;

beforeAll(async () => {
  d = await Deployment.create({ mainConfig: { serverCertCheckMs: 1000, ticketKeyRotationMs: ROTATION_MS } });
  ca = readFileSync(d.caCertPath, 'utf8');
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

interface Handshake {
  cert: PeerCertificate;
  reused: boolean;
  session?: Buffer;
}

/** One TLS connection to main (resuming `session` if given); waits briefly for a ticket to keep. */
function handshake(session?: Buffer): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: d.port, ca, servername: 'localhost', session });
    let ticket: Buffer | undefined;
    s.on('session', (t: Buffer) => {
      ticket = t;
    });
    s.once('error', reject);
    s.once('secureConnect', () => {
      const done = () => {
        s.end();
        resolve({ cert: s.getPeerCertificate(), reused: s.isSessionReused(), session: ticket });
      };
      // TLS 1.3 sends its tickets just after the handshake.
      const wait = setInterval(() => {
        if (ticket) {
          clearInterval(wait);
          done();
        }
      }, 10);
      setTimeout(() => {
        clearInterval(wait);
        done();
      }, 2000);
    });
  });
}

describe('the server certificate', () => {
  it('is renewed in place when less than a third of its life is left: new serial and notAfter, same process', async () => {
    // A certificate from main's own CA that started LIFE_HALF ago and ends LIFE_HALF from now.
    await d.main!.stop();
    const pki = join(d.mainDir, 'pki');
    const now = Date.now();
    const short = await issueServerCert(
      { certPem: ca, keyPem: await readFile(join(pki, 'ca-key.pem'), 'utf8') },
      serverCertNames('127.0.0.1'),
      { notBefore: new Date(now - LIFE_HALF_MS), notAfter: new Date(now + LIFE_HALF_MS) },
    );
    await writeFileAtomic(join(pki, 'server-key.pem'), short.keyPem, 0o600);
    await writeFileAtomic(join(pki, 'server.pem'), short.certPem);
    const main = await d.startMain();
    const old = new X509Certificate(short.certPem);

    const first = await handshake();
    expect(first.cert.serialNumber).toBe(old.serialNumber);
    const renewed = await until(
      'a renewed certificate served',
      async () => {
        const h = await handshake();
        return h.cert.serialNumber !== old.serialNumber ? h : undefined;
      },
      LIFE_HALF_MS,
      500,
    );
    const days = (Date.parse(renewed.cert.valid_to) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(396);
    expect(days).toBeLessThanOrEqual(398);
    // Written where a restart reads it, and the same main process serves it.
    const onDisk = new X509Certificate(await readFile(join(pki, 'server.pem'), 'utf8'));
    expect(onDisk.serialNumber).toBe(renewed.cert.serialNumber);
    expect(onDisk.checkPrivateKey(createPrivateKey(await readFile(join(pki, 'server-key.pem'), 'utf8')))).toBe(true);
    expect(main.running).toBe(true);
    expect(d.main).toBe(main);
    expect(await readLog(d.mainLog)).toContain('server certificate renewed');
    expect((await d.api('GET', '/health')).status).toBe(200);
  }, 300_000);
});

describe('the session-ticket key', () => {
  it(`rotates every ${ROTATION_MS / 1000} s in the server and in its file, so a restart right after still resumes`, async () => {
    const keyFile = join(d.mainDir, 'pki', 'tls-ticket-keys');
    const before = await readFile(keyFile);
    const a = await handshake();
    expect(a.session).toBeDefined();
    expect((await handshake(a.session)).reused).toBe(true);

    await until(
      'the ticket key rotated',
      async () => !(await readFile(keyFile)).equals(before),
      ROTATION_MS + 15_000,
      250,
    );
    // The server uses the new key: the old ticket costs a full handshake, a new one resumes.
    expect((await handshake(a.session)).reused).toBe(false);
    const b = await handshake();
    expect((await handshake(b.session)).reused).toBe(true);

    // The file is the key in use: after a restart, b's ticket still resumes.
    await d.main!.stop();
    await d.startMain();
    expect((await handshake(b.session)).reused).toBe(true);
  }, 300_000);
});
