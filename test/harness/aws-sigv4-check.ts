/**
 * What a fake AWS service does with a request's signature: parse the Authorization header, look the access
 * key up, and recompute the SigV4 signature with the secret the fake was given, using AWS's own signer
 * (@smithy/signature-v4) — not our code under test, which only configures the SDK. A request passes only
 * if its signature matches over the same signed headers, so a wrong secret, region, service or session
 * token fails here as it would at AWS. Not the services' answers (aws-fake.ts).
 */
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import type { IncomingMessage } from 'node:http';

export interface SigningKey {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** What the credential scope and headers of a request said. */
export interface SignedRequestInfo {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  securityToken?: string;
}

export type SignatureCheck =
  | { ok: true; info: SignedRequestInfo; key: SigningKey }
  | { ok: false; info?: SignedRequestInfo; why: 'missing' | 'unknown-key' | 'bad-signature' | 'bad-token' };

const AUTH =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/;

export function signedRequestInfo(req: IncomingMessage): { info: SignedRequestInfo; signature: string } | undefined {
  const m = AUTH.exec(String(req.headers.authorization ?? ''));
  if (!m) return undefined;
  const token = req.headers['x-amz-security-token'];
  return {
    info: {
      accessKeyId: m[1],
      date: m[2],
      region: m[3],
      service: m[4],
      signedHeaders: m[5].split(';'),
      securityToken: typeof token === 'string' ? token : undefined,
    },
    signature: m[6],
  };
}

/** Checks a request's SigV4 signature against the keys the fake knows. */
export async function checkSignature(
  req: IncomingMessage,
  body: Buffer,
  keyOf: (accessKeyId: string) => SigningKey | undefined,
): Promise<SignatureCheck> {
  const parsed = signedRequestInfo(req);
  if (!parsed) return { ok: false, why: 'missing' };
  const { info, signature } = parsed;
  const key = keyOf(info.accessKeyId);
  if (!key) return { ok: false, info, why: 'unknown-key' };
  if (key.sessionToken !== info.securityToken) return { ok: false, info, why: 'bad-token' };
  const expected = await recompute(req, body, info, key);
  return expected === signature ? { ok: true, info, key } : { ok: false, info, why: 'bad-signature' };
}

async function recompute(
  req: IncomingMessage,
  body: Buffer,
  info: SignedRequestInfo,
  key: SigningKey,
): Promise<string> {
  const url = new URL(req.url ?? '/', 'http://fake');
  const query: Record<string, string | string[]> = {};
  for (const [k, v] of url.searchParams) {
    const prev = query[k];
    query[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [prev]), v];
  }
  const headers: Record<string, string> = {};
  for (const h of info.signedHeaders) headers[h] = String(req.headers[h] ?? '');
  const amzDate = String(req.headers['x-amz-date'] ?? '');
  const signingDate = new Date(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'));
  const signer = new SignatureV4({
    service: info.service,
    region: info.region,
    credentials: key,
    sha256: Sha256,
    // S3 signs the path as sent; every other service double-escapes it (the SDK's clients do the same).
    uriEscapePath: info.service !== 's3',
    // The signer adds x-amz-content-sha256 when asked to; only S3's clients sign it.
    applyChecksum: info.signedHeaders.includes('x-amz-content-sha256'),
  });
  const signed = await signer.sign(
    {
      method: req.method ?? 'GET',
      protocol: 'https:',
      hostname: String(req.headers.host ?? '').replace(/:\d+$/, ''),
      path: decodeURIComponent(url.pathname),
      query,
      headers,
      body: body.length > 0 ? body : undefined,
    },
    { signingDate, signingRegion: info.region, signingService: info.service },
  );
  const m = /Signature=([0-9a-f]{64})/.exec(String(signed.headers.authorization ?? signed.headers.Authorization));
  return m ? m[1] : '';
}
