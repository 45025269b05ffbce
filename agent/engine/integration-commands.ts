/**
 * Integration commands an engine runs where the customer's network is, on behalf of its tenant:
 * `http.request` and `tcp.check`. Every destination goes through the engine's allow-list (resolved once,
 * connected to that address), so a command is no more an open proxy than a tunnel stream is.
 */
import { connect } from 'node:net';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import { BadParameterError, ConnectionError, TimeoutError } from '#common/errors.js';
import type { AllowList } from './allow-list.js';

/** Result bodies travel in one sealed frame (≤ 1 MiB with base64 and headers): keep them well below. */
export const MAX_RESPONSE_BODY = 512 * 1024;
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export interface HttpRequestArgs {
  method?: string;
  url: string;
  headers?: Record<string, string>;
  body?: string;
  verifyTls?: boolean;
  timeoutMs?: number;
  maxBodyBytes?: number;
}
export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  bodyEncoding: 'utf8' | 'base64';
  truncated: boolean;
  bytes: number;
  address: string;
  ms: number;
}
export interface TcpCheckResult {
  reachable: boolean;
  address: string;
  port: number;
  ms: number;
  error?: string;
}

function obj(args: unknown): Record<string, unknown> {
  if (!args || typeof args !== 'object' || Array.isArray(args))
    throw new BadParameterError('ERR_BAD_ARGS', 'args must be a JSON object', { field: 'args' });
  return args as Record<string, unknown>;
}

function timeout(v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 120_000)
    throw new BadParameterError('ERR_BAD_ARGS', 'args.timeoutMs must be an integer from 1 to 120000', {
      field: 'args.timeoutMs',
    });
  return v as number;
}

/** A lookup that always answers with the address the allow-list approved (no second DNS answer). */
function pinned(address: string): LookupFunction {
  const family = address.includes(':') ? 6 : 4;
  return ((_host: string, opts: { all?: boolean }, cb: (...a: unknown[]) => void) => {
    if (opts?.all) cb(null, [{ address, family }]);
    else cb(null, address, family);
  }) as unknown as LookupFunction;
}

export async function runHttpRequest(allow: AllowList, raw: unknown): Promise<HttpResult> {
  const a = obj(raw);
  if (typeof a.url !== 'string')
    throw new BadParameterError('ERR_BAD_ARGS', 'args.url is required (http:// or https:// URL)', {
      field: 'args.url',
    });
  let url: URL;
  try {
    url = new URL(a.url);
  } catch {
    throw new BadParameterError('ERR_BAD_ARGS', `args.url "${a.url.slice(0, 200)}" is not a URL`, {
      field: 'args.url',
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new BadParameterError('ERR_BAD_ARGS', 'args.url must be http:// or https://', { field: 'args.url' });
  const method = typeof a.method === 'string' ? a.method.toUpperCase() : 'GET';
  if (!METHODS.has(method))
    throw new BadParameterError('ERR_BAD_ARGS', `args.method must be one of ${[...METHODS].join(', ')}`, {
      field: 'args.method',
    });
  const headers = a.headers ?? {};
  if (
    typeof headers !== 'object' ||
    Array.isArray(headers) ||
    Object.values(headers as object).some((v) => typeof v !== 'string')
  ) {
    throw new BadParameterError('ERR_BAD_ARGS', 'args.headers must be an object of string values', {
      field: 'args.headers',
    });
  }
  for (const [k, v] of Object.entries(headers as Record<string, string>)) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/.test(k) || /[\r\n\0]/.test(v))
      throw new BadParameterError(
        'ERR_BAD_ARGS',
        `args.headers: "${k.slice(0, 64)}" is not a valid header name/value`,
        { field: 'args.headers' },
      );
    // The connection goes to the allow-listed address of url; another Host (or TLS name) would ask a proxy there for
    // something else.
    if (k.toLowerCase() === 'host')
      throw new BadParameterError('ERR_BAD_ARGS', 'args.headers: Host comes from args.url', { field: 'args.headers' });
  }
  if (a.body !== undefined && typeof a.body !== 'string')
    throw new BadParameterError('ERR_BAD_ARGS', 'args.body must be a string', { field: 'args.body' });
  if (a.verifyTls !== undefined && typeof a.verifyTls !== 'boolean')
    throw new BadParameterError('ERR_BAD_ARGS', 'args.verifyTls must be true or false', { field: 'args.verifyTls' });
  const maxBody = a.maxBodyBytes === undefined ? MAX_RESPONSE_BODY : Number(a.maxBodyBytes);
  if (!Number.isInteger(maxBody) || maxBody < 0 || maxBody > MAX_RESPONSE_BODY)
    throw new BadParameterError('ERR_BAD_ARGS', `args.maxBodyBytes must be 0…${MAX_RESPONSE_BODY}`, {
      field: 'args.maxBodyBytes',
    });
  const ms = timeout(a.timeoutMs, 15_000);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const { address } = await allow.resolve(`${url.hostname}:${port}`); // IPv6 hostnames keep their brackets
  const t0 = performance.now();
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method,
        headers: headers as Record<string, string>,
        lookup: pinned(address),
        timeout: ms,
        rejectUnauthorized: a.verifyTls !== false,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let kept = 0,
          total = 0;
        res.on('data', (c: Buffer) => {
          total += c.length;
          if (kept < maxBody) {
            const part = c.subarray(0, maxBody - kept);
            chunks.push(part);
            kept += part.length;
          }
          // Past the cap nothing more is kept: stop reading rather than let a target trickle forever.
          if (kept >= maxBody && total > kept) res.destroy();
        });
        res.on('close', () => {
          if (!res.complete) res.emit('end');
        });
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          const text = body.toString('utf8');
          const isText = Buffer.from(text, 'utf8').equals(body);
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: isText ? text : body.toString('base64'),
            bodyEncoding: isText ? 'utf8' : 'base64',
            truncated: total > kept,
            bytes: total,
            address,
            ms: Math.round(performance.now() - t0),
          });
        });
        res.on('error', (e) => reject(new ConnectionError('ERR_HTTP_FAILED', `${method} ${url.origin}: ${e.message}`)));
      },
    );
    req.on('timeout', () =>
      req.destroy(new TimeoutError('ERR_HTTP_TIMEOUT', `${method} ${url.origin}: no answer within ${ms} ms`)),
    );
    req.on('error', (e) =>
      reject(
        e instanceof TimeoutError ? e : new ConnectionError('ERR_HTTP_FAILED', `${method} ${url.origin}: ${e.message}`),
      ),
    );
    req.end(a.body as string | undefined);
  });
}

export async function runTcpCheck(allow: AllowList, raw: unknown): Promise<TcpCheckResult> {
  const a = obj(raw);
  if (typeof a.host !== 'string' || !a.host)
    throw new BadParameterError('ERR_BAD_ARGS', 'args.host is required', { field: 'args.host' });
  if (!Number.isInteger(a.port) || (a.port as number) < 1 || (a.port as number) > 65535)
    throw new BadParameterError('ERR_BAD_ARGS', 'args.port must be 1…65535', { field: 'args.port' });
  const ms = timeout(a.timeoutMs, 5_000);
  const host = a.host.includes(':') && !a.host.startsWith('[') ? `[${a.host}]` : a.host;
  const { address, port } = await allow.resolve(`${host}:${a.port as number}`);
  const t0 = performance.now();
  return new Promise((resolve) => {
    const sock = connect({ host: address, port });
    const done = (error?: string) => {
      sock.destroy();
      resolve({
        reachable: !error,
        address,
        port,
        ms: Math.round(performance.now() - t0),
        ...(error ? { error } : {}),
      });
    };
    sock.setTimeout(ms, () => done(`no answer within ${ms} ms`));
    sock.once('connect', () => done());
    sock.once('error', (e) => done(e.message));
  });
}
