/**
 * PKI helpers: a private CA, main's server certificate, agent CSRs and client certificates.
 * node-forge builds and signs (it handles RSA only, so every key here is RSA-2048 made by Node's crypto);
 * Node's crypto/X509Certificate parses and verifies. Not a revocation store: main's registry is.
 */
import { generateKeyPair as generateKeyPairCb, randomBytes, X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import { isIP } from 'node:net';
import forge from 'node-forge';
import { BadParameterError } from './errors.js';

const generateKeyPair = promisify(generateKeyPairCb);

export interface KeyAndCert {
  keyPem: string;
  certPem: string;
}

const CA_DAYS = 3650;
/**
 * 397 days: under the 398 days browsers accept for a TLS server certificate (CA/Browser Forum, Apple)
 * and that scanners check, even with the five minutes of back-dating below. Main renews its own from its
 * CA long before that (main/tls/server-certificate.ts).
 */
export const SERVER_DAYS = 397;
/** Agent certificates are long-lived; revocation, not expiry, is how access ends. */
const AGENT_DAYS = 3650;

export async function generateRsaKeyPem(): Promise<string> {
  const { privateKey } = await generateKeyPair('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  return privateKey;
}

function randomSerialHex(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f; // positive INTEGER
  b[0] |= 0x01; // no leading zero byte, so the hex round-trips unchanged
  return b.toString('hex');
}

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

function validityFor(days: number): Validity {
  const now = Date.now();
  // tolerate small clock skew
  return { notBefore: new Date(now - 5 * 60_000), notAfter: new Date(now + days * 86_400_000) };
}

function validity(cert: forge.pki.Certificate, days: number, given?: Validity): void {
  const v = given ?? validityFor(days);
  cert.validity.notBefore = v.notBefore;
  cert.validity.notAfter = v.notAfter;
}

function publicKeyOf(keyPem: string): forge.pki.PublicKey {
  const priv = forge.pki.privateKeyFromPem(keyPem) as forge.pki.rsa.PrivateKey;
  return forge.pki.setRsaPublicKey(priv.n, priv.e);
}

export async function createCa(commonName = 'Palisade CA'): Promise<KeyAndCert> {
  const keyPem = await generateRsaKeyPem();
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKeyOf(keyPem);
  cert.serialNumber = randomSerialHex();
  validity(cert, CA_DAYS);
  const attrs = [
    { name: 'commonName', value: commonName },
    { name: 'organizationName', value: 'Palisade' },
  ];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
  return { keyPem, certPem: forge.pki.certificateToPem(cert) };
}

/** A server certificate for `names`, SERVER_DAYS long unless a validity is given (tests of renewal give one). */
export async function issueServerCert(ca: KeyAndCert, names: readonly string[], given?: Validity): Promise<KeyAndCert> {
  const keyPem = await generateRsaKeyPem();
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKeyOf(keyPem);
  cert.serialNumber = randomSerialHex();
  validity(cert, SERVER_DAYS, given);
  cert.setSubject([{ name: 'commonName', value: names[0] ?? 'localhost' }]);
  cert.setIssuer(caCert.subject.attributes);
  const altNames = [...new Set(names)].map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n }));
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  return { keyPem, certPem: forge.pki.certificateToPem(cert) };
}

export function createCsr(keyPem: string, commonName: string): string {
  const csr = forge.pki.createCertificationRequest();
  csr.publicKey = publicKeyOf(keyPem);
  csr.setSubject([{ name: 'commonName', value: commonName }]);
  csr.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
  return forge.pki.certificationRequestToPem(csr);
}

export interface IssuedCert {
  certPem: string;
  serial: string;
  fingerprint: string;
}

/**
 * Signs an agent's CSR. The subject is set by main (the agent id), never taken from the CSR. Agents authenticate as
 * clients; `serverAuth` (engines: their syslog TLS listener serves this certificate) adds the server purpose, so a
 * sender that verifies the engine against main's CA accepts it.
 */
export function signAgentCsr(
  ca: KeyAndCert,
  csrPem: string,
  agentId: string,
  opts: { serverAuth?: boolean } = {},
): IssuedCert {
  let csr: ReturnType<typeof forge.pki.certificationRequestFromPem>;
  try {
    csr = forge.pki.certificationRequestFromPem(csrPem);
  } catch (e) {
    throw new BadParameterError('ERR_ENROL_BAD_CSR', 'the certificate signing request is not valid PEM', {
      cause: e,
      field: 'csr',
    });
  }
  if (!csr.verify())
    throw new BadParameterError('ERR_ENROL_BAD_CSR', 'the certificate signing request signature does not verify', {
      field: 'csr',
    });
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const cert = forge.pki.createCertificate();
  cert.publicKey = csr.publicKey as forge.pki.PublicKey;
  cert.serialNumber = randomSerialHex();
  validity(cert, AGENT_DAYS);
  cert.setSubject([
    { name: 'commonName', value: agentId },
    { name: 'organizationName', value: 'Palisade agents' },
  ]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true, ...(opts.serverAuth ? { serverAuth: true } : {}) },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(ca.keyPem), forge.md.sha256.create());
  const certPem = forge.pki.certificateToPem(cert);
  const x = new X509Certificate(certPem);
  return { certPem, serial: normaliseSerial(x.serialNumber), fingerprint: x.fingerprint256 };
}

export function normaliseSerial(serial: string): string {
  return serial.replace(/:/g, '').toLowerCase().replace(/^0+/, '');
}

export function certInfo(certPem: string): { serial: string; fingerprint: string; subjectCn: string; validTo: string } {
  const x = new X509Certificate(certPem);
  const cn = /CN=([^\n,]+)/.exec(x.subject)?.[1] ?? '';
  return { serial: normaliseSerial(x.serialNumber), fingerprint: x.fingerprint256, subjectCn: cn, validTo: x.validTo };
}
