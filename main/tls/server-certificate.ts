/**
 * Main's TLS server certificate over time. One that main's CA issued lives SERVER_DAYS (397, pki.ts) and
 * is renewed from that CA once less than a third of its life is left — checked at start and every
 * `serverCertCheckMs` — written atomically and handed to the running server (server.ts swaps it in with
 * setSecureContext), so nobody ever meets an expired certificate and main never restarts for it. Agents
 * pin main's CA, not the certificate, so a renewal is invisible to them. A certificate the admin brought
 * (`main init --cert`, not issued by main's CA) is never touched: main warns as it nears its end.
 * Not the CA (ten years; replacing it means new bundles) and not the ticket keys (ticket-keys.ts).
 */
import { readFile } from 'node:fs/promises';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { issueServerCert, type KeyAndCert } from '#common/pki.js';
import { writeFileAtomic } from '#common/atomic-file.js';
import { errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import type { MainPaths } from '../data-dir.js';

/** The names main's own certificate carries: the configured hostname and the loopback names. */
export function serverCertNames(hostname: string): string[] {
  return [hostname, 'localhost', '127.0.0.1', '::1'];
}

/** Less than a third of the certificate's life left (or past its end). */
export function renewalDue(cert: X509Certificate, now: number): boolean {
  const from = Date.parse(cert.validFrom),
    to = Date.parse(cert.validTo);
  return to - now < (to - from) / 3;
}

/** Whether `cert` was signed by `ca` (not merely names it as issuer). */
export function issuedBy(cert: X509Certificate, ca: X509Certificate): boolean {
  return cert.checkIssued(ca) && cert.verify(ca.publicKey);
}

export class ServerCertificate {
  private pair?: KeyAndCert;
  private timer?: NodeJS.Timeout;
  private checking = false;
  private readonly caCert: X509Certificate;

  constructor(
    private readonly paths: Pick<MainPaths, 'serverCert' | 'serverKey'>,
    private readonly ca: KeyAndCert,
    private readonly names: readonly string[],
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.caCert = new X509Certificate(ca.certPem);
  }

  /** Reads the certificate and key, renewing them first if they are main's own and due. */
  async load(): Promise<KeyAndCert> {
    const [certPem, keyPem] = await Promise.all([
      readFile(this.paths.serverCert, 'utf8'),
      readFile(this.paths.serverKey, 'utf8'),
    ]);
    this.pair = { certPem, keyPem };
    await this.check();
    return this.pair;
  }

  /** Checks every `everyMs`; `apply` gets each renewed pair (to swap into the server). */
  start(everyMs: number, apply: (pair: KeyAndCert) => void): void {
    this.timer = setInterval(() => {
      // A check outlasting the interval (key generation on a loaded machine) must not be overtaken by the
      // next: both would see the old certificate and renew, serving one pair and leaving the other on disk.
      if (this.checking) return;
      this.checking = true;
      this.check()
        .then((renewed) => {
          if (renewed) apply(this.pair!);
        })
        .catch((e: unknown) =>
          this.log.error({ err: errorMessage(e) }, 'server certificate check failed; trying again at the next check'),
        )
        .finally(() => (this.checking = false));
    }, everyMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Renews main's own certificate if due; true when it did. */
  async check(): Promise<boolean> {
    const current = new X509Certificate(this.pair!.certPem);
    if (!issuedBy(current, this.caCert)) {
      if (renewalDue(current, this.now())) {
        this.log.warn(
          { notAfter: current.validTo, subject: current.subject },
          'the server certificate brought by the admin expires soon: replace pki/server.pem and pki/server-key.pem',
        );
      }
      return false;
    }
    // A key that does not match is what a crash between the two writes below leaves: renew.
    if (!renewalDue(current, this.now()) && current.checkPrivateKey(createPrivateKey(this.pair!.keyPem))) return false;
    const next = await issueServerCert(this.ca, this.names);
    await writeFileAtomic(this.paths.serverKey, next.keyPem, 0o600);
    await writeFileAtomic(this.paths.serverCert, next.certPem);
    this.pair = next;
    const x = new X509Certificate(next.certPem);
    this.log.info(
      { serial: x.serialNumber, notAfter: x.validTo, previousNotAfter: current.validTo },
      'server certificate renewed',
    );
    return true;
  }
}
