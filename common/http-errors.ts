/**
 * The REST edge's error answers, shared by main's API and each tenant's API: PalisadeError → the status of
 * its code in error-codes.ts; fastify's own errors (validation, body parsing, size) → 4xx with
 * `{error:{code,message}}` naming the field (a body error keeps fastify's status); anything else → 500
 * without internals.
 */
import { STATUS_CODES } from 'node:http';
import type { FastifyError, FastifyInstance } from 'fastify';
import { ERROR_CODES, httpStatusOf, type ErrorCode } from './error-codes.js';
import { isPalisadeError } from './errors.js';
import { describePattern } from './pattern-text.js';

export function classifyHttpError(err: FastifyError): { status: number; code: string; message: string } {
  if (isPalisadeError(err)) return { status: httpStatusOf(err), code: err.code, message: err.message };
  if (err.validation) {
    const v = err.validation[0];
    const where = `${err.validationContext ?? 'request'}${v?.instancePath ?? ''}`;
    const missing = (v?.params as { missingProperty?: string } | undefined)?.missingProperty;
    const extra = (v?.params as { additionalProperty?: string } | undefined)?.additionalProperty;
    const field = missing ? `${where}/${missing}` : extra ? `${where}/${extra}` : where;
    const what = extra
      ? 'is not a known field'
      : missing
        ? 'is required'
        : (anyOfText(err.validation) ?? validationText(v));
    return {
      status: ERROR_CODES.ERR_BAD_REQUEST.status,
      code: 'ERR_BAD_REQUEST',
      message: `${field.replace(/^(\w+)\//, '$1.').replace(/\//g, '.')} ${what}`,
    };
  }
  const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
  if (status === 500) return { status, code: 'ERR_INTERNAL', message: 'internal error' };
  const code =
    err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
      ? 'ERR_BODY_TOO_LARGE'
      : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
        ? 'ERR_UNSUPPORTED_MEDIA_TYPE'
        : err.code?.startsWith('FST_ERR_CTP')
          ? 'ERR_BAD_BODY'
          : (err.code ?? `ERR_HTTP_${status}`);
  return { status, code, message: err.message };
}

/**
 * A schema check's message, with the allowed values where it is one of a list (else the reader must guess them),
 * and a pattern said in words (common/pattern-text.ts) rather than AJV's quoted regex.
 */
export function validationText(v: NonNullable<FastifyError['validation']>[number] | undefined): string {
  const allowed = (v?.params as { allowedValues?: unknown[] } | undefined)?.allowedValues;
  if (v?.keyword === 'enum' && Array.isArray(allowed))
    return `must be one of ${allowed.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(', ')}`;
  const pattern = (v?.params as { pattern?: unknown } | undefined)?.pattern;
  if (v?.keyword === 'pattern' && typeof pattern === 'string') return `must be ${describePattern(pattern)}`;
  return v?.message ?? 'is invalid';
}

type SchemaProblem = NonNullable<FastifyError['validation']>[number];

/**
 * Where the first problem is one branch of an `anyOf` (a command that is one of a list or of a pattern), what each
 * branch wants, so the reader sees every accepted form: `must be one of a, b; or integration:INSTANCE.COMMAND (…)`.
 * Undefined when it is not, or a branch failed deeper than the value itself (its own text says more then).
 */
export function anyOfText(problems: readonly SchemaProblem[]): string | undefined {
  const first = problems[0];
  const any = problems.find((p) => p.keyword === 'anyOf' && first?.schemaPath.startsWith(`${p.schemaPath}/`));
  if (!first || !any) return undefined;
  const branches = problems.filter((p) => p.schemaPath.startsWith(`${any.schemaPath}/`));
  if (branches.some((b) => b.instancePath !== any.instancePath)) return undefined;
  return branches
    .map((b, i) => (i === 0 ? validationText(b) : validationText(b).replace(/^must be /, '')))
    .join('; or ');
}

/** Installs the not-found and error handlers that answer in the shared error shape. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((req, reply) => {
    void reply.code(ERROR_CODES.ERR_NOT_FOUND.status).send({
      error: { code: 'ERR_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0].slice(0, 200)}` },
    });
  });
  app.setErrorHandler((err: FastifyError, req, reply) => {
    const { status, code, message } = classifyHttpError(err);
    if (status >= 500) req.log.error({ err, url: req.url }, 'request failed');
    const retryAfterMs = isPalisadeError(err) ? err.retryAfterMs : undefined;
    if (retryAfterMs !== undefined && (status === 429 || status === 503))
      void reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
    void reply.code(status).send({ error: { code, message } });
  });
}

/** fastify's frameworkErrors option: a malformed URL is the client's fault. */
export function frameworkErrors(err: Error, _req: unknown, reply: unknown): void {
  void (reply as { code(n: number): { send(b: unknown): void } })
    .code(ERROR_CODES.ERR_BAD_URL.status)
    .send({ error: { code: 'ERR_BAD_URL', message: `malformed request: ${err.message}` } });
}

/**
 * fastify's clientErrorHandler: what Node's parser rejects before any route (headers too large, bad
 * request line, headers not finished in time) still answers in the shared `{error:{code,message}}` shape,
 * then the socket is closed whatever the peer does. Anything else that reaches here is no HTTP at all — a
 * TLS handshake that timed out or failed, a reset — and is closed without an answer: an HTTP reply
 * written into an unfinished TLS handshake is never sent, and the socket would stay open forever.
 */
export function clientErrorHandler(err: Error & { code?: string }, socket: import('node:net').Socket): void {
  const http = err.code?.startsWith('HPE_') || err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  if (!http || !socket.writable) return void socket.destroy();
  const [code, message]: [ErrorCode, string] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? ['ERR_HEADERS_TOO_LARGE', 'request line or headers exceed 16 KiB']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? ['ERR_REQUEST_TIMEOUT', 'request line and headers not received in time']
        : ['ERR_BAD_HTTP', 'malformed HTTP request'];
  const { status } = ERROR_CODES[code];
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    () => socket.destroy(),
  );
}
