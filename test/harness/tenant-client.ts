/**
 * Clients that go around the usual path, for tests of who a tenant trusts: plain HTTP straight to a
 * tenant's loopback port with headers signed like main signs them (or not at all), and HTTPS to main
 * with the request path sent verbatim (Node's URL would normalise `..` and `%2e` before sending).
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { AUTH_HEADER, SIGNATURE_HEADER, bodyHash, signRequest, type CallerIdentity } from '#common/signed-request.js';
import type { ApiReply, Deployment } from './deployment.js';

export const TEST_CALLER: CallerIdentity = { id: 'usr_e2e', name: 'e2e', roles: ['admin'] };

/** Main's real signing key, read the way main loads it (<mainDir>/pki/signing-key.json). */
export async function mainSigningKey(mainDir: string): Promise<KeyObject> {
  const raw = JSON.parse(await readFile(join(mainDir, 'pki', 'signing-key.json'), 'utf8')) as {
    seed: string;
    publicKey: string;
  };
  const jwk = {
    kty: 'OKP',
    crv: 'Ed25519',
    d: Buffer.from(raw.seed, 'base64').toString('base64url'),
    x: Buffer.from(raw.publicKey, 'base64').toString('base64url'),
  };
  return createPrivateKey({ key: jwk, format: 'jwk' });
}

/** The two headers of a request signed with `key` for `tenant`; a negative ttlMs makes it already expired. */
export function signedHeaders(
  key: KeyObject,
  tenant: string,
  method: string,
  path: string,
  body?: string,
  ttlMs?: number,
): Record<string, string> {
  const s = signRequest(key, {
    tenant,
    method,
    path,
    bodySha256: bodyHash(body),
    user: TEST_CALLER,
    ...(ttlMs !== undefined ? { ttlMs } : {}),
  });
  return { [AUTH_HEADER]: s.auth, [SIGNATURE_HEADER]: s.signature };
}

/** One HTTP request straight to 127.0.0.1:port (a tenant), bypassing main and the host. */
export function directRequest<T = unknown>(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<ApiReply<T>> {
  return new Promise((res, rej) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: {
          ...headers,
          ...(body !== undefined
            ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }
            : {}),
        },
      },
      (r) => collect(r, res as (v: ApiReply) => void),
    );
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} 127.0.0.1:${port}${path} timed out`)));
    req.on('error', rej);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Whatever answers HTTP on the port, or false when nothing listens (ECONNREFUSED). */
export async function portAnswers(port: number, headers: Record<string, string>): Promise<ApiReply | false> {
  try {
    return await directRequest(port, 'GET', '/api/v1/info', headers);
  } catch (e) {
    if ((e as { code?: string }).code === 'ECONNREFUSED') return false;
    throw e;
  }
}

/** An authenticated HTTPS request to main with `path` sent exactly as given. */
export function rawMainRequest(d: Deployment, method: string, path: string, body?: string): Promise<ApiReply> {
  return new Promise((res, rej) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: d.port,
        method,
        path,
        ca: readFileSync(d.caCertPath),
        headers: {
          authorization: `Bearer ${d.apiKey}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
      },
      (r) => collect(r, res),
    );
    req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', rej);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

function collect(r: IncomingMessage, done: (v: ApiReply) => void): void {
  let raw = '';
  r.on('data', (c: Buffer) => {
    raw += c;
  });
  r.on('end', () => {
    let parsed: unknown = raw;
    try {
      parsed = JSON.parse(raw);
    } catch {
      /* keep raw */
    }
    done({ status: r.statusCode ?? 0, body: parsed, raw });
  });
}
