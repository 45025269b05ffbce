/**
 * Long-lived connections through a tenant's outbound tunnel, for tests that end an engine's session while
 * a user is connected: an echo server inside "the customer network", a tunnel to it, a connection held
 * open through it (that answers, until it ends), and a check that a new connection gets nowhere.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Deployment } from './deployment.js';

/** An echo server on loopback; engines are allowed to dial it. */
export async function echoServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

/** Opens an outbound tunnel of `tenant` to 127.0.0.1:`to`; returns the port it listens on. */
export async function openTunnel(d: Deployment, tenant: string, to: number): Promise<number> {
  const r = await d.api<{ listen: string }>('POST', `/tenants/${tenant}/api/tunnels`, {
    to: `127.0.0.1:${to}`,
    listen: '127.0.0.1:0',
  });
  if (r.status !== 201) throw new Error(`tunnel open: ${r.status} ${r.raw}`);
  return Number(r.body.listen.split(':').pop());
}

export interface Held {
  sock: Socket;
  closed: Promise<number>;
  readonly open: boolean;
}

/**
 * A connection through the tunnel listening on `port` that has carried one echo; `closed` resolves with when it ended
 * (ms epoch).
 */
export function holdThrough(port: number): Promise<Held> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => sock.write('ping'));
    let open = true;
    const closed = new Promise<number>((r) =>
      sock.once('close', () => {
        open = false;
        r(Date.now());
      }),
    );
    sock.on('error', () => undefined);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('no echo through the tunnel within 10 s'));
    }, 10_000);
    sock.once('data', (c: Buffer) => {
      clearTimeout(timer);
      if (c.toString() !== 'ping') reject(new Error(`unexpected echo "${c.toString()}"`));
      resolve({
        sock,
        closed,
        get open() {
          return open;
        },
      });
    });
    void closed.then(() => {
      clearTimeout(timer);
      reject(new Error('the tunnel connection closed before its echo'));
    });
  });
}

/**
 * A fresh connection through the tunnel on `port`: true if it was closed (within 5 s) without carrying anything back.
 */
export function refusedThrough(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1', () => sock.write('ping'));
    let got = 0;
    sock.on('data', (c: Buffer) => {
      got += c.length;
    });
    sock.on('error', () => undefined);
    sock.on('close', () => resolve(got === 0));
    sock.setTimeout(5_000, () => {
      resolve(false);
      sock.destroy();
    });
  });
}

/** Resolves with `p`'s value, or throws if it takes longer than `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e as Error);
      },
    );
  });
}
