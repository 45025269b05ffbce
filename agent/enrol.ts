/**
 * First start of an agent: make a key pair, send a CSR with the one-time key to main's enrolment
 * endpoint (TLS pinned to the bundle's CA), store the certificate, delete the one-time key.
 * Every refusal from main is permanent (a key is single-use), so it is reported, not retried. Main's URLs
 * are tried in order, once each: a URL that cannot be reached (or does not answer as main) gives way to
 * the next, but a refusal holds at every URL and ends the enrolment.
 */
import { readFile, rm, access } from 'node:fs/promises';
import WebSocket from 'ws';
import nacl from 'tweetnacl';
import { createCsr, generateRsaKeyPem, certInfo } from '#common/pki.js';
import { decodeEnvelope, encodeEnvelope, kindFromName } from '#common/codec.js';
import {
  AccessDeniedError,
  BadParameterError,
  ConnectionError,
  errorMessage,
  PalisadeError,
  ProtocolError,
} from '#common/errors.js';
import { peerCode } from '#common/error-codes.js';
import { tlsProfile } from '#common/tls-profile.js';
import { writeFileAtomic } from '#common/atomic-file.js';
import { PROTOCOL_MAJOR, PROTOCOL_MINOR } from '#common/protocol-version.js';
import type { AgentConfig, AgentPaths } from '#common/agent-dir.js';
import type { Logger } from '#common/logging.js';

const ENROL_TIMEOUT_MS = 30_000;

export async function isEnrolled(paths: AgentPaths): Promise<boolean> {
  return access(paths.cert).then(
    () => true,
    () => false,
  );
}

export async function enrol(paths: AgentPaths, config: AgentConfig, log: Logger): Promise<string> {
  const token = (
    await readFile(paths.enrolKey, 'utf8').catch(() => {
      throw new BadParameterError(
        'ERR_ENROL_NO_KEY',
        `no enrolment key in ${paths.enrolKey}: re-install with a new bundle`,
      );
    })
  ).trim();
  const ca = await readFile(paths.caCert, 'utf8');
  const keyPem = await generateRsaKeyPem();
  const csrPem = createCsr(keyPem, `${config.kind}:${config.name}`);
  // Engines also make the NaCl key pair their tenant will know them by (the end-to-end tunnel, docs/tunnels.md).
  const box = config.kind === 'engine' ? nacl.box.keyPair() : undefined;
  if (box)
    await writeFileAtomic(
      paths.boxKey,
      JSON.stringify({
        publicKey: Buffer.from(box.publicKey).toString('base64'),
        secretKey: Buffer.from(box.secretKey).toString('base64'),
      }),
      0o600,
    );
  const certPem = await exchangeAtAnyUrl(config, log, (url) =>
    exchange(url, config, ca, token, csrPem, box?.publicKey),
  );
  await writeFileAtomic(paths.key, keyPem, 0o600);
  await writeFileAtomic(paths.cert, certPem);
  const agentId = certInfo(certPem).subjectCn;
  await writeFileAtomic(paths.identity, JSON.stringify({ agentId, enrolledAt: new Date().toISOString() }) + '\n');
  await rm(paths.enrolKey, { force: true });
  log.info({ agentId }, 'enrolled');
  return agentId;
}

/** The certificate from the first of main's URLs that answers; a refusal is final, whichever URL gave it. */
async function exchangeAtAnyUrl(
  config: AgentConfig,
  log: Logger,
  exchangeAt: (url: string) => Promise<string>,
): Promise<string> {
  const failures: string[] = [];
  for (const url of config.mainUrls) {
    log.info({ url }, 'enrolling');
    try {
      return await exchangeAt(url);
    } catch (e) {
      if (e instanceof AccessDeniedError || config.mainUrls.length === 1) throw e;
      log.warn({ url, err: errorMessage(e) }, 'enrolment at this main URL failed; trying the next');
      failures.push(errorMessage(e));
    }
  }
  throw new ConnectionError('ERR_ENROL_CONNECT', `cannot enrol at any of main's URLs: ${failures.join('; ')}`);
}

function exchange(
  url: string,
  config: AgentConfig,
  ca: string,
  token: string,
  csrPem: string,
  boxPublicKey?: Uint8Array,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(new URL('/enrol/v1', url), {
      ca,
      ...tlsProfile(),
      perMessageDeflate: false,
      handshakeTimeout: ENROL_TIMEOUT_MS,
      maxPayload: 1024 * 1024,
    });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new ConnectionError('ERR_ENROL_TIMEOUT', `main at ${url} did not answer the enrolment within 30 s`));
    }, ENROL_TIMEOUT_MS);
    const done = (fn: () => void) => {
      clearTimeout(timer);
      fn();
    };
    ws.on('open', () =>
      ws.send(
        encodeEnvelope({
          id: 1,
          enroll: {
            enrolKey: token,
            csrPem,
            kind: kindFromName(config.kind),
            name: config.name,
            protocolMajor: PROTOCOL_MAJOR,
            protocolMinor: PROTOCOL_MINOR,
            boxPublicKey,
          },
        }),
      ),
    );
    ws.on('message', (data) =>
      done(() => {
        try {
          const env = decodeEnvelope(data as Buffer);
          if (env.enrollOk?.certPem) resolve(env.enrollOk.certPem);
          else if (env.error)
            reject(
              new AccessDeniedError(
                env.error.code ? peerCode(env.error.code) : 'ERR_ENROL_REFUSED',
                `main refused enrolment: ${env.error.message}`,
              ),
            );
          else reject(new ProtocolError('ERR_WIRE_UNEXPECTED', 'unexpected answer to Enroll'));
        } catch (e) {
          reject(e);
        }
        ws.close();
      }),
    );
    ws.on('error', (e) =>
      done(() =>
        reject(
          e instanceof PalisadeError
            ? e
            : new ConnectionError('ERR_ENROL_CONNECT', `cannot reach main at ${url}: ${e.message}`, {
                cause: e,
              }),
        ),
      ),
    );
    ws.on('close', () =>
      done(() =>
        reject(
          new ConnectionError('ERR_ENROL_CLOSED', `main at ${url} closed the enrolment connection without an answer`),
        ),
      ),
    );
  });
}
