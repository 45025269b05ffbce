/**
 * What an Enroll frame — the one frame a stranger may send main — may contain, checked field by field
 * before anything of it is stored or logged: protocol version, agent kind, name (common/names.ts), the
 * shape of the one-time key, the CSR's size and PEM shape, and the tunnel key's length. A refusal names
 * the field, never echoes its value. Pure; whether the key is known and unused is enrolment.ts's job.
 */
import type { Envelope } from '#common/codec.js';
import { kindName } from '#common/codec.js';
import { BadParameterError, ProtocolError } from '#common/errors.js';
import { checkName } from '#common/names.js';
import { parseSecret } from '#common/secrets.js';
import { SUPPORTED_MAJORS } from '#common/protocol-version.js';
import { ENROL_KEY_PREFIX, type EnrolRequest } from './enrolment.js';

/** Our RSA-2048 CSRs are ~1 KiB of PEM and an RSA-4096 one ~1.7 KiB: 8 KiB leaves room and bounds the parse. */
export const MAX_CSR_PEM_CHARS = 8 * 1024;
/** nacl.box public keys are 32 bytes. */
export const BOX_PUBLIC_KEY_BYTES = 32;
const CSR_PEM = /^-----BEGIN CERTIFICATE REQUEST-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE REQUEST-----\s*$/;

export type EnrollFields = Omit<EnrolRequest, 'remote'>;

export function checkEnrollFrame(enroll: NonNullable<Envelope['enroll']>): EnrollFields {
  const major = enroll.protocolMajor ?? 0;
  if (!SUPPORTED_MAJORS.includes(major)) {
    throw new ProtocolError(
      'ERR_WIRE_VERSION',
      `protocol ${major}.x is not supported; main speaks ${SUPPORTED_MAJORS.join(', ')}.x`,
    );
  }
  const kind = kindName(enroll.kind);
  if (kind === 'unknown') throw new ProtocolError('ERR_WIRE_BAD_KIND', 'Enroll names no agent kind');
  const name = checkName(enroll.name ?? '', 'name');
  const token = enroll.enrolKey ?? '';
  if (!parseSecret(ENROL_KEY_PREFIX, token)) {
    throw new BadParameterError(
      'ERR_ENROL_KEY_MALFORMED',
      `enrolKey: not an enrolment key (${ENROL_KEY_PREFIX}_ID.SECRET); re-install from the bundle`,
      { field: 'enrolKey' },
    );
  }
  const csrPem = enroll.csrPem ?? '';
  if (csrPem.length > MAX_CSR_PEM_CHARS || !CSR_PEM.test(csrPem)) {
    throw new BadParameterError(
      'ERR_ENROL_BAD_CSR',
      `csr: must be one PEM certificate signing request of at most ${MAX_CSR_PEM_CHARS} characters`,
      { field: 'csr' },
    );
  }
  const box = enroll.boxPublicKey ?? new Uint8Array(0);
  if (kind === 'engine' && box.length !== BOX_PUBLIC_KEY_BYTES) {
    throw new BadParameterError(
      'ERR_ENROL_BOX_KEY',
      `boxPublicKey: an engine must present its ${BOX_PUBLIC_KEY_BYTES}-byte tunnel key when it enrols`,
      { field: 'boxPublicKey' },
    );
  }
  if (kind === 'host' && box.length !== 0) {
    throw new BadParameterError('ERR_ENROL_BOX_KEY', 'boxPublicKey: a host has no tunnel key; leave it empty', {
      field: 'boxPublicKey',
    });
  }
  return { token, csrPem, kind, name, ...(kind === 'engine' ? { boxPublicKey: box } : {}) };
}
