/**
 * REST client for main's admin API, used by the CLI, and the flags every admin command takes to reach
 * it. Reads PALISADE_URL, PALISADE_API_KEY and PALISADE_CA_CERT (or flags). Maps `{error:{code,message}}`
 * replies back to typed errors.
 */
import type { Command } from 'commander';
import { request as httpsRequest } from 'node:https';
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import {
  AccessDeniedError,
  BadParameterError,
  ConflictError,
  ConnectionError,
  NotFoundError,
  PalisadeError,
  RateLimitedError,
  DependencyError,
  RunFailedError,
  TooLargeError,
  UnauthenticatedError,
  UnavailableError,
} from '#common/errors.js';
import { peerCode } from '#common/error-codes.js';

export interface ClientOptions {
  url?: string;
  apiKey?: string;
  apiKeyFile?: string;
  caCert?: string;
}
/** The options every admin verb takes: where main is, how to authenticate, and `--json`. */
export type Common = ClientOptions & { json?: boolean };

/** Printed when a key comes on the command line: argv is readable by every user of the machine (`ps`). */
const ARGV_KEY_WARNING =
  'palisade: warning: --api-key shows the key to other users of this machine (ps); use --api-key-file FILE or PALISADE_API_KEY\n';

/** The flags of every admin command (`--json` too); `--api-key` given in argv warns once on stderr. */
export function withClientOptions(cmd: Command): Command {
  return (
    cmd
      .option('--url <url>', 'main URL (env PALISADE_URL)')
      .option('--api-key <key>', 'API key (env PALISADE_API_KEY); visible to other users in ps: prefer --api-key-file')
      .option('--api-key-file <file>', 'read the API key from this file (e.g. mode 0600)')
      .option('--ca-cert <file>', "main's CA certificate (env PALISADE_CA_CERT)")
      .option('--json', 'machine-readable output')
      // commander emits this only for the flag in argv (no .env() here), never for PALISADE_API_KEY.
      .on('option:api-key', () => {
        process.stderr.write(ARGV_KEY_WARNING);
      })
  );
}

/** Longer than any key we issue; a bigger file is not a key file (and /dev/zero must not hang the CLI). */
const MAX_KEY_FILE_BYTES = 4096;

function readKeyFile(path: string): string {
  const bad = (why: string) =>
    new BadParameterError('ERR_CLI_BAD_API_KEY_FILE', `--api-key-file ${path}: ${why}`, { field: 'apiKeyFile' });
  const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
  let n: number;
  try {
    const fd = openSync(path, 'r');
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw bad(`cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (n > MAX_KEY_FILE_BYTES) throw bad(`larger than ${MAX_KEY_FILE_BYTES} bytes: not an API key file`);
  const key = buf.subarray(0, n).toString('utf8').trim();
  if (!key) throw bad('the file is empty');
  if (/\s/.test(key)) throw bad('expected one key on one line');
  return key;
}

export interface AdminClient {
  request<T>(method: string, path: string, body?: unknown): Promise<T>;
  /** A body sent as these exact bytes with this media type (e.g. NDJSON batches). */
  requestBytes<T>(method: string, path: string, payload: Buffer, contentType: string): Promise<T>;
}

export function adminClient(opts: ClientOptions = {}): AdminClient {
  if (opts.apiKey !== undefined && opts.apiKeyFile !== undefined) {
    throw new BadParameterError('ERR_CLI_API_KEY_TWICE', 'give --api-key or --api-key-file, not both', {
      field: 'apiKeyFile',
    });
  }
  const url = opts.url ?? process.env.PALISADE_URL;
  const apiKey =
    opts.apiKey ?? (opts.apiKeyFile !== undefined ? readKeyFile(opts.apiKeyFile) : process.env.PALISADE_API_KEY);
  const caPath = opts.caCert ?? process.env.PALISADE_CA_CERT;
  if (!url)
    throw new BadParameterError(
      'ERR_CLI_NO_URL',
      'main URL unknown: set PALISADE_URL or pass --url https://HOST:8443',
      { field: 'url' },
    );
  if (!apiKey)
    throw new BadParameterError(
      'ERR_CLI_NO_API_KEY',
      'API key unknown: set PALISADE_API_KEY or pass --api-key-file FILE',
      { field: 'apiKey' },
    );
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new BadParameterError('ERR_CLI_BAD_URL', `"${url}" is not a URL; expected https://HOST:PORT`, {
      field: 'url',
    });
  }
  let ca: string | undefined;
  if (caPath) {
    try {
      ca = readFileSync(caPath, 'utf8');
    } catch {
      throw new BadParameterError('ERR_CLI_BAD_CA', `cannot read CA certificate ${caPath}`, { field: 'caCert' });
    }
  }
  const send = <T>(method: string, path: string, payload: Buffer | undefined, contentType: string) =>
    new Promise<T>((resolve, reject) => {
      const req = httpsRequest(
        new URL(`/api/v1${path}`, base),
        {
          method,
          ca,
          headers: {
            authorization: `Bearer ${apiKey}`,
            accept: 'application/json',
            ...(payload ? { 'content-type': contentType, 'content-length': payload.length } : {}),
          },
          timeout: 120_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown = undefined;
            try {
              json = text ? JSON.parse(text) : undefined;
            } catch {
              /* non-JSON reply handled below */
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve(json as T);
            else reject(errorFromReply(status, json, text));
          });
        },
      );
      req.on('timeout', () =>
        req.destroy(new ConnectionError('ERR_CLI_TIMEOUT', `no answer from ${base.origin} within 120 s`)),
      );
      req.on('error', (e) =>
        reject(
          e instanceof PalisadeError
            ? e
            : new ConnectionError('ERR_CLI_CONNECT', `cannot reach main at ${base.origin}: ${e.message}`, { cause: e }),
        ),
      );
      if (payload) req.write(payload);
      req.end();
    });
  return {
    request: <T>(method: string, path: string, body?: unknown) =>
      send<T>(method, path, body === undefined ? undefined : Buffer.from(JSON.stringify(body)), 'application/json'),
    requestBytes: <T>(method: string, path: string, payload: Buffer, contentType: string) =>
      send<T>(method, path, payload, contentType),
  };
}

function errorFromReply(status: number, json: unknown, text: string): PalisadeError {
  const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
  const code = peerCode(err?.code ?? `ERR_HTTP_${status}`);
  const message = err?.message ?? (text.slice(0, 200) || `HTTP ${status}`);
  switch (status) {
    case 400:
      return new BadParameterError(code, message);
    case 401:
      return new UnauthenticatedError(code, message);
    case 403:
      return new AccessDeniedError(code, message);
    case 404:
      return new NotFoundError(code, message);
    case 409:
      return new ConflictError(code, message);
    case 413:
      return new TooLargeError(code, message);
    case 422:
      return new RunFailedError(code, message);
    case 424:
      return new DependencyError(code, message);
    case 429:
      return new RateLimitedError(code, message);
    case 503:
      return new UnavailableError(code, message);
    default:
      return new PalisadeError('internal', code, message);
  }
}
