/**
 * The host's half of "switch to a tenant": main's signed request arrives as a `tenant.request` command
 * carrying a RelayRequest (proto/palisade.proto) and is replayed as HTTP to the tenant's loopback port,
 * headers and body untouched, so the tenant verifies main's signature itself; the answer goes back as a
 * RelayReply. Bodies stay bytes all the way. The host adds no authority of its own.
 */
import { Agent, request } from 'node:http';
import { AUTH_HEADER, SIGNATURE_HEADER } from '#common/signed-request.js';
import { BadParameterError, UnavailableError } from '#common/errors.js';
import type { TenantSupervisor } from './tenant-supervisor.js';
import { isPlainMediaType } from '#common/media-types.js';

/** A relayed request as decoded from main's Command (proto RelayRequest: absent fields are empty). */
export interface RelayRequest {
  method: string;
  path: string;
  auth: string;
  signature: string;
  body: Uint8Array;
  contentType: string;
}
export interface RelayReply {
  status: number;
  contentType: string;
  body: Uint8Array;
}

/** Keep-alive to the tenants: a fresh TCP connection per relayed request doubles the small-GET latency. */
const keepAlive = new Agent({ keepAlive: true, maxSockets: 64 });
const RELAY_TIMEOUT_MS = 30_000;
const MAX_REPLY_BYTES = 768 * 1024;

export function relayToTenant(sup: TenantSupervisor, tenant: string, a: RelayRequest): Promise<RelayReply> {
  if (!a.path.startsWith('/api/v1/'))
    throw new BadParameterError('ERR_RELAY_PATH', 'relayed path must start with /api/v1/');
  const port = sup.portOf(tenant);
  const body = a.body.length ? Buffer.from(a.body.buffer, a.body.byteOffset, a.body.byteLength) : undefined;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: a.method,
        path: a.path,
        agent: keepAlive,
        timeout: RELAY_TIMEOUT_MS,
        headers: {
          [AUTH_HEADER]: a.auth,
          [SIGNATURE_HEADER]: a.signature,
          ...(body ? { 'content-type': mediaType(a.contentType), 'content-length': body.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY_BYTES) {
            req.destroy(
              new UnavailableError(
                'ERR_RELAY_REPLY_TOO_BIG',
                `tenant reply exceeds ${MAX_REPLY_BYTES} bytes; page the request`,
              ),
            );
            return;
          }
          chunks.push(c);
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 502,
            contentType: String(res.headers['content-type'] ?? 'application/json'),
            body: Buffer.concat(chunks),
          }),
        );
      },
    );
    req.on('timeout', () =>
      req.destroy(
        new UnavailableError('ERR_TENANT_TIMEOUT', `tenant "${tenant}" did not answer within ${RELAY_TIMEOUT_MS} ms`),
      ),
    );
    req.on('error', (e) =>
      reject(
        e instanceof UnavailableError
          ? e
          : new UnavailableError('ERR_TENANT_UNREACHABLE', `tenant "${tenant}" is not answering: ${e.message}`),
      ),
    );
    if (body) req.write(body);
    req.end();
  });
}

/** Main names the body's media type; anything that is not a plain `type/subtype` is not put in a header. */
function mediaType(t: string): string {
  return isPlainMediaType(t) ? t : 'application/json';
}
