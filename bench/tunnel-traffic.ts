/**
 * The traffic of the tunnel benchmark (bench/tunnel.ts): the target servers on the "customer network" side
 * (a sink that acknowledges the last byte of an upload, a source that pours a requested length, an echo) and
 * the clients that time them through a path (upload and download MB/s, 64-byte round trips). Every path
 * measured — raw TCP, ssh -L, the Palisade tunnel — ends at these same servers. Not the rounds or the CPU
 * accounting (bench/tunnel-rounds.ts), and nothing here knows which path it goes through.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

export interface Ports {
  sink: number;
  source: number;
  echo: number;
}

export const PING_SIZE = 64;
/** Random, so no layer could profit from compression; one buffer reused for every write. */
const CHUNK = randomBytes(1024 * 1024);

// ── target servers (the "customer network" side) ─────────────────────────────────────────────────────

/** Resolves on 'drain', or on 'close' so a writer never waits for a peer that is gone; leaves no listener behind. */
const drained = (s: Socket) =>
  new Promise<void>((r) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      r();
    };
    s.once('drain', done).once('close', done);
  });

/** Every client starts with an 8-byte length: how much the sink expects, or the source must send. */
const header = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};

function onHeader(sock: Socket, then: (n: number, rest: Buffer) => void): void {
  let head = Buffer.alloc(0);
  const onData = (c: Buffer) => {
    head = Buffer.concat([head, c]);
    if (head.length < 8) return;
    sock.off('data', onData);
    then(Number(head.readBigUInt64BE(0)), head.subarray(8));
  };
  sock.on('data', onData);
}

async function pour(sock: Socket, n: number): Promise<void> {
  for (let sent = 0; sent < n && !sock.destroyed; sent += CHUNK.length) {
    if (!sock.write(n - sent >= CHUNK.length ? CHUNK : CHUNK.subarray(0, n - sent))) await drained(sock);
  }
  sock.end();
}

function listen(onConn: (s: Socket) => void): Promise<Server> {
  const server = createServer((s) => {
    s.setNoDelay(true);
    s.on('error', () => undefined);
    onConn(s);
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

export async function startTargets(): Promise<{ ports: Ports; close(): void }> {
  const servers = await Promise.all([
    // The sink answers one byte once it holds everything: the upload's clock stops at the far end.
    listen((s) =>
      onHeader(s, (n, rest) => {
        let got = rest.length;
        const check = () => {
          if (got >= n) s.write('k');
        };
        s.on('data', (c: Buffer) => {
          got += c.length;
          check();
        });
        check();
      }),
    ),
    listen((s) => onHeader(s, (n) => void pour(s, n))),
    listen((s) => s.pipe(s)),
  ]);
  const [sink, source, echo] = servers.map((s) => (s.address() as { port: number }).port);
  return { ports: { sink, source, echo }, close: () => servers.forEach((s) => s.close()) };
}

// ── clients ─────────────────────────────────────────────────────────────────────────────────────────

/** Connects with Nagle off; `closed` rejects when the connection ends, so no wait outlives it. */
async function dial(port: number, what: string): Promise<{ sock: Socket; closed: Promise<never> }> {
  const sock = connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  let err: Error | undefined;
  sock.on('error', (e) => {
    err = e;
  });
  const closed = new Promise<never>((_, reject) =>
    sock.once('close', () => reject(new Error(`${what}: connection closed${err ? `: ${err.message}` : ''}`))),
  );
  closed.catch(() => undefined);
  await Promise.race([new Promise((r) => sock.once('connect', r)), closed]);
  return { sock, closed };
}

/** MB/s from connect to the sink's acknowledgement of the last byte. */
export async function upload(port: number, n: number): Promise<number> {
  const t0 = performance.now();
  const { sock, closed } = await dial(port, 'upload');
  try {
    const acked = new Promise((r) => sock.once('data', r));
    sock.write(header(n));
    for (let sent = 0; sent < n; sent += CHUNK.length) {
      if (!sock.write(n - sent >= CHUNK.length ? CHUNK : CHUNK.subarray(0, n - sent)))
        await Promise.race([drained(sock), closed]);
    }
    await Promise.race([acked, closed]);
    return n / 1e3 / (performance.now() - t0);
  } finally {
    sock.destroy();
  }
}

/** MB/s from connect to the last byte in. */
export async function download(port: number, n: number): Promise<number> {
  const t0 = performance.now();
  const { sock, closed } = await dial(port, 'download');
  try {
    const all = new Promise<void>((resolve) => {
      let got = 0;
      sock.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= n) resolve();
      });
    });
    sock.write(header(n));
    await Promise.race([all, closed]);
    return n / 1e3 / (performance.now() - t0);
  } finally {
    sock.destroy();
  }
}

/** n sequential 64-byte round trips on one connection (ms each); the next ping leaves on the last reply byte. */
export async function pingPong(port: number, n: number): Promise<number[]> {
  const { sock, closed } = await dial(port, 'ping-pong');
  const msg = Buffer.alloc(PING_SIZE, 0x70);
  const times: number[] = [];
  try {
    await Promise.race([
      closed,
      new Promise<void>((resolve) => {
        let got = 0,
          t0 = 0;
        const send = () => {
          got = 0;
          t0 = performance.now();
          sock.write(msg);
        };
        sock.on('data', (c: Buffer) => {
          got += c.length;
          if (got < PING_SIZE) return;
          times.push(performance.now() - t0);
          if (times.length === n) resolve();
          else send();
        });
        send();
      }),
    ]);
    return times;
  } finally {
    sock.destroy();
  }
}
