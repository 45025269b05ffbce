/**
 * Runs the built-in `http` integration's one command, `request`: a REST call against the connection's
 * baseUrl with its auth (none, a named header, basic or bearer) and TLS verification setting, answered as
 * plain JSON `{status, headers, body}` — whatever status the service answered is a result, not an error;
 * only not getting an answer is one (ERR_INTEGRATION_HTTP_…, a 424: the service failed, not Palisade).
 * The response is capped (MAX_RESPONSE_BYTES): an answer larger than that is refused, not cut, because half
 * a JSON document is not data; so is a result whose JSON, escaping included, is over MAX_RESULT_BYTES
 * (call-limits.ts: a text body of control characters grows six times). The wait for the service is the call's
 * budget at most (call-limits.ts). Knows neither tenant nor engine: the caller passes the connection with its
 * secret and may pass the Node agent its requests go through (a tunnel's, later). Not the args' schema
 * check: the caller checks args with HTTP_REQUEST_ARGS before calling.
 */
import { request as httpRequest, type Agent as HttpAgent, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import { BadParameterError, DependencyError, isPalisadeError, type PalisadeError } from '#common/errors.js';
import { CALL_BUDGET_MS, cappedJson, clampTimeout, MAX_RESULT_BYTES } from '../call-limits.js';
import { checkTargetHost, guardedLookup } from '../target-guard.js';

/** What a connection of type `http` holds (common/connections.ts checked its form), secret included. */
export interface HttpConnectionInput {
  baseUrl: string;
  authType: 'none' | 'header' | 'basic' | 'bearer';
  headerName?: string;
  username?: string;
  tlsVerify: boolean;
  secret?: string;
}

export interface HttpRequestArgs {
  method: string;
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: unknown;
}

export interface HttpResult {
  status: number;
  headers: Record<string, string>;
  /** Parsed JSON when the service said application/json (or +json), else text. */
  body: unknown;
}

/** The `request` command's args (JSON Schema): the caller's method, a path under baseUrl, query, headers, body. */
export const HTTP_REQUEST_ARGS: Readonly<Record<string, unknown>> = Object.freeze({
  type: 'object',
  additionalProperties: false,
  required: ['method', 'path'],
  properties: {
    method: { enum: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] },
    // Relative to baseUrl's path, never a URL of its own; the query goes in `query`.
    path: { type: 'string', pattern: '^/[^\\s#?]*$', maxLength: 4096 },
    query: { type: 'object', maxProperties: 100, additionalProperties: { type: 'string', maxLength: 4096 } },
    headers: {
      type: 'object',
      maxProperties: 50,
      propertyNames: { pattern: "^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$" },
      // No control characters: Node refuses them when sending (which was a 500), and CR/LF would split the header.
      additionalProperties: { type: 'string', maxLength: 8192, pattern: '^[^\\u0000-\\u001f\\u007f]*$' },
    },
    body: {},
  },
});

/**
 * 256 KiB: the result returns through the tenant relay (1 MiB frames) as JSON, where escaping can grow a
 * text body several times; larger answers are pages a caller should ask for in smaller pieces.
 */
export const MAX_RESPONSE_BYTES = 256 * 1024;
/** The service's time to answer; less when less is left of the call's budget (call-limits.ts). */
export const HTTP_TIMEOUT_MS = 20_000;

/** Where the request goes; both absent means direct. */
export interface HttpTransport {
  readonly httpAgent?: HttpAgent;
  readonly httpsAgent?: HttpsAgent;
}

export async function runHttpRequest(
  connection: HttpConnectionInput,
  args: HttpRequestArgs,
  transport: HttpTransport = {},
  budgetMs = CALL_BUDGET_MS,
): Promise<HttpResult> {
  const url = targetUrl(connection.baseUrl, args);
  // Through a caller's agent (an engine's tunnel) the far side's own rules apply; directly, the MSSP host's.
  const direct = transport.httpAgent === undefined && transport.httpsAgent === undefined;
  const https = url.protocol === 'https:';
  const port = Number(url.port) || (https ? 443 : 80);
  if (direct) checkTargetHost(url.hostname, port);
  const headers = requestHeaders(connection, args);
  const payload = bodyOf(args, headers);
  const send = https ? httpsRequest : httpRequest;
  const timeoutMs = clampTimeout(HTTP_TIMEOUT_MS, budgetMs);
  return new Promise<HttpResult>((resolve, reject) => {
    const req = send(url, {
      method: args.method,
      headers,
      signal: AbortSignal.timeout(timeoutMs),
      ...(direct ? { lookup: guardedLookup(port) } : {}),
      ...(https
        ? { rejectUnauthorized: connection.tlsVerify, agent: transport.httpsAgent }
        : { agent: transport.httpAgent }),
    });
    req.on('error', (e) => reject(failure(e, url, timeoutMs)));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= MAX_RESPONSE_BYTES) return void chunks.push(c);
        req.destroy();
        reject(
          new DependencyError(
            'ERR_INTEGRATION_HTTP_TOO_LARGE',
            `${url.host} answered more than ${MAX_RESPONSE_BYTES} bytes: ask for less (a page, a filter)`,
          ),
        );
      });
      res.on('error', (e) => reject(failure(e, url, timeoutMs)));
      res.on('end', () => {
        try {
          resolve(cappedResult(url, resultOf(res.statusCode ?? 0, res.headers, Buffer.concat(chunks))));
        } catch (e) {
          reject(e as Error);
        }
      });
    });
    req.end(payload);
  });
}

/** baseUrl's path joined with args.path; `..` (or %2e%2e) that would climb out of baseUrl's path is refused. */
function targetUrl(baseUrl: string, args: HttpRequestArgs): URL {
  const base = new URL(baseUrl);
  const prefix = base.pathname.replace(/\/$/, '');
  const url = new URL(base.href);
  url.pathname = `${prefix}${args.path}`;
  for (const [k, v] of Object.entries(args.query ?? {})) url.searchParams.append(k, v);
  if (url.host !== base.host || !(url.pathname === prefix || url.pathname.startsWith(`${prefix}/`)))
    throw new BadParameterError('ERR_INTEGRATION_ARGS', `args.path: must stay under ${base.pathname}`, {
      field: 'args.path',
    });
  return url;
}

/**
 * Headers a caller may not set: Host (the connection's secret would go to whatever origin a shared front end routes
 * that name to) and the framing and hop-by-hop headers Node sets itself (a false length could smuggle a request).
 */
const CALLER_MAY_NOT_SET =
  /^(?:host|content-length|transfer-encoding|connection|keep-alive|upgrade|te|trailer|proxy-.*)$/;

/** Node refuses these in a header (which would be a 500), and CR/LF would split it. */
const hasControlCharacter = (s: string): boolean =>
  [...s].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f);

/** The caller's headers, then the connection's auth, which a caller's header of the same name cannot replace. */
function requestHeaders(c: HttpConnectionInput, args: HttpRequestArgs): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(args.headers ?? {})) {
    if (CALLER_MAY_NOT_SET.test(k.toLowerCase()))
      throw new BadParameterError(
        'ERR_INTEGRATION_ARGS',
        `args.headers.${k}: is set by the integration, not the caller`,
        {
          field: `args.headers.${k}`,
        },
      );
    if (hasControlCharacter(v))
      throw new BadParameterError(
        'ERR_INTEGRATION_ARGS',
        `args.headers.${k}: holds a control character (a line break?)`,
        {
          field: `args.headers.${k}`,
        },
      );
    out[k.toLowerCase()] = v;
  }
  const secret = c.secret ?? '';
  if (hasControlCharacter(secret))
    throw new BadParameterError(
      'ERR_CONNECTION_SECRET',
      'secret: holds control characters (a line break?), so it cannot be sent in a header: set it again',
      { field: 'secret' },
    );
  if (c.authType === 'bearer') out.authorization = `Bearer ${secret}`;
  if (c.authType === 'basic')
    out.authorization = `Basic ${Buffer.from(`${c.username ?? ''}:${secret}`, 'utf8').toString('base64')}`;
  if (c.authType === 'header' && c.headerName) out[c.headerName.toLowerCase()] = secret;
  return out;
}

/** A string body is sent as it is; anything else as JSON (with its content type unless the caller set one). */
function bodyOf(args: HttpRequestArgs, headers: Record<string, string>): string | undefined {
  if (args.body === undefined || args.method === 'GET' || args.method === 'HEAD') return undefined;
  if (typeof args.body === 'string') return args.body;
  headers['content-type'] ??= 'application/json';
  return JSON.stringify(args.body);
}

function resultOf(status: number, headers: IncomingHttpHeaders, raw: Buffer): HttpResult {
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) flat[k] = Array.isArray(v) ? v.join(', ') : v;
  const text = raw.toString('utf8');
  let body: unknown = text;
  if (/^application\/(?:[\w.+-]+\+)?json\b/i.test(flat['content-type'] ?? '') && text !== '') {
    try {
      body = JSON.parse(text);
    } catch {
      body = text; // the service mislabelled it: the text is still the answer
    }
  }
  return { status, headers: flat, body };
}

/** The result as it will travel (JSON), refused over MAX_RESULT_BYTES: a 400 saying to ask for less. */
function cappedResult(url: URL, result: HttpResult): HttpResult {
  return cappedJson(
    result,
    (bytes) =>
      new BadParameterError(
        'ERR_INTEGRATION_RESULT_TOO_LARGE',
        `${url.host}'s answer is ${bytes} bytes as JSON, more than the ${MAX_RESULT_BYTES} a result may hold ` +
          '(control characters and bytes that are not UTF-8 grow when escaped): ask for less (a page, a filter)',
        { field: 'args' },
      ),
  ) as HttpResult;
}

function failure(e: unknown, url: URL, timeoutMs: number): PalisadeError {
  if (isPalisadeError(e)) return e; // the target guard's refusal, from the lookup
  const err = e as { name?: string; code?: string };
  if (err.name === 'TimeoutError' || err.name === 'AbortError')
    return new DependencyError('ERR_INTEGRATION_HTTP_TIMEOUT', `no answer from ${url.host} within ${timeoutMs} ms`, {
      cause: e,
    });
  const code = err.code ?? 'error';
  const tls = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|^ERR_TLS_|^ERR_SSL_/.test(code)
    ? ': the certificate does not verify (fix it, or set tlsVerify=false on the connection for a lab)'
    : '';
  return new DependencyError('ERR_INTEGRATION_HTTP_UNREACHABLE', `cannot reach ${url.host} (${code})${tls}`, {
    cause: e,
  });
}
