/**
 * First start of an agent: make a key pair, send a CSR with the one-time key to main's enrolment
 * endpoint (TLS pinned to the bundle's CA), store the certificate, delete the one-time key.
 * Every refusal from main is permanent (a key is single-use), so it is reported, not retried.
 */
import { readFile, rm, access } from 'node:fs/promises';
import WebSocket from 'ws';
import nacl from 'tweetnacl';
import { createCsr, generateRsaKeyPem, certInfo } from '#common/pki.js';
import { decodeEnvelope, encodeEnvelope, kindFromName } from '#common/codec.js';
import { AccessDeniedError, ConnectionError, PalisadeError, ProtocolError, BadParameterError } from '#common/errors.js';
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
  log.info({ mainUrl: config.mainUrl }, 'enrolling');
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
  const certPem = await exchange(config, ca, token, csrPem, box?.publicKey);
  await writeFileAtomic(paths.key, keyPem, 0o600);
  await writeFileAtomic(paths.cert, certPem);
  const agentId = certInfo(certPem).subjectCn;
  await writeFileAtomic(paths.identity, JSON.stringify({ agentId, enrolledAt: new Date().toISOString() }) + '\n');
  await rm(paths.enrolKey, { force: true });
  log.info({ agentId }, 'enrolled');
  return agentId;
}

function exchange(
  config: AgentConfig,
  ca: string,
  token: string,
  csrPem: string,
  boxPublicKey?: Uint8Array,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(new URL('/enrol/v1', config.mainUrl), {
      ca,
      ...tlsProfile(),
      perMessageDeflate: false,
      handshakeTimeout: ENROL_TIMEOUT_MS,
      maxPayload: 1024 * 1024,
    });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(
        new ConnectionError('ERR_ENROL_TIMEOUT', `main at ${config.mainUrl} did not answer the enrolment within 30 s`),
      );
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
            : new ConnectionError('ERR_ENROL_CONNECT', `cannot reach main at ${config.mainUrl}: ${e.message}`, {
                cause: e,
              }),
        ),
      ),
    );
    ws.on('close', () =>
      done(() =>
        reject(new ConnectionError('ERR_ENROL_CLOSED', 'main closed the enrolment connection without an answer')),
      ),
    );
  });
}
