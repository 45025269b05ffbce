/**
 * A browser's view of main's REST API for tests: sign in with name and password (POST /api/v1/session), then
 * call routes with the session cookie (and, for changes, the X-CSRF-Token header) as the console does. No
 * bearer key is ever sent from here. Also reads a few lines of an SSE stream.
 */
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';

export interface Reply<T = unknown> {
  status: number;
  body: T;
  raw: string;
  headers: IncomingHttpHeaders;
}

export interface SessionBody {
  user: { name: string; tenant: string | null; roles: string[]; permissions: string[] };
  csrfToken: string;
  expiresAt: string;
}

/** One HTTPS request to main: `cookie` as the Cookie header, `headers` added; the body as JSON. */
export function call<T = unknown>(
  base: { url: string; caCertPath: string },
  method: string,
  path: string,
  opts: { body?: unknown; cookie?: string; headers?: Record<string, string>; localAddress?: string } = {},
): Promise<Reply<T>> {
  const payload = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path.startsWith('/api/') ? path : `/api/v1${path}`, base.url),
      {
        method,
        ca: readFileSync(base.caCertPath),
        localAddress: opts.localAddress,
        headers: {
          ...(opts.cookie ? { cookie: opts.cookie } : {}),
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        let raw = '';
        res.on('data', (c: Buffer) => {
          raw += c;
        });
        res.on('end', () => {
          let body: unknown = raw;
          try {
            body = JSON.parse(raw);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, body: body as T, raw, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** The `__Host-palisade_session=…` pair of a Set-Cookie answer (for a Cookie header), or undefined. */
export function cookieOf(r: Reply): string | undefined {
  const set = r.headers['set-cookie']?.find((c) => c.startsWith('__Host-palisade_session='));
  return set?.split(';')[0];
}

export class ConsoleSession {
  private constructor(
    private readonly base: { url: string; caCertPath: string },
    readonly cookie: string,
    readonly info: SessionBody,
  ) {}

  /** Signs in; throws unless 200 with a session cookie. */
  static async signIn(
    base: { url: string; caCertPath: string },
    name: string,
    password: string,
    totp?: string,
  ): Promise<ConsoleSession> {
    const r = await call<SessionBody>(base, 'POST', '/session', {
      body: { name, password, ...(totp ? { totp } : {}) },
    });
    const cookie = cookieOf(r);
    if (r.status !== 200 || !cookie) throw new Error(`sign-in as ${name}: ${r.status} ${r.raw}`);
    return new ConsoleSession(base, cookie, r.body);
  }

  /** A request with the cookie; with the CSRF header unless `csrf` is false (or another value to send). */
  request<T = unknown>(method: string, path: string, body?: unknown, csrf: boolean | string = true): Promise<Reply<T>> {
    const token = csrf === true ? this.info.csrfToken : csrf === false ? undefined : csrf;
    return call<T>(this.base, method, path, {
      body,
      cookie: this.cookie,
      headers: token ? { 'x-csrf-token': token } : {},
    });
  }
}

/** An open server-sent-events stream: the events parsed so far, and whether the server ended it. */
export class EventStream {
  readonly events: { event: string; data: unknown }[] = [];
  status = 0;
  headers: IncomingHttpHeaders = {};
  ended = false;
  comments = 0;
  private close: () => void = () => undefined;

  static open(
    base: { url: string; caCertPath: string },
    path: string,
    auth: { cookie?: string; key?: string },
  ): Promise<EventStream> {
    const s = new EventStream();
    return new Promise((resolve, reject) => {
      const req = request(
        new URL(`/api/v1${path}`, base.url),
        {
          ca: readFileSync(base.caCertPath),
          headers: {
            accept: 'text/event-stream',
            ...(auth.cookie ? { cookie: auth.cookie } : {}),
            ...(auth.key ? { authorization: `Bearer ${auth.key}` } : {}),
          },
        },
        (res) => {
          s.status = res.statusCode ?? 0;
          s.headers = res.headers;
          let buf = '';
          res.on('data', (c: Buffer) => {
            buf += c.toString('utf8');
            let i: number;
            while ((i = buf.indexOf('\n\n')) >= 0) {
              s.parse(buf.slice(0, i));
              buf = buf.slice(i + 2);
            }
          });
          res.on('end', () => (s.ended = true));
          res.on('close', () => (s.ended = true));
          resolve(s);
        },
      );
      s.close = () => req.destroy();
      req.on('error', (e) => (s.status ? (s.ended = true) : reject(e)));
      req.end();
    });
  }

  private parse(block: string): void {
    if (block.startsWith(':')) {
      this.comments++;
      return;
    }
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    this.events.push({ event, data: JSON.parse(data.join('\n')) as unknown });
  }

  destroy(): void {
    this.close();
  }
}
