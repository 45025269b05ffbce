/**
 * The services "inside the customer network" that the tunnel flow tests reach through a tunnel, and the
 * client ends that talk to them: a stream source that sends each stream a known pattern while respecting
 * backpressure (and records whether it had to wait), a bulk source that sends a fixed amount to every
 * connection, and an upload sink that hashes what arrives until the client half-closes. Every byte sent
 * or received is hashed, so a test compares sha256 on both ends rather than trusting byte counts.
 * Not a benchmark: it measures nothing but whether the data arrived intact and who had to wait.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';

const MiB = 1024 * 1024;
/** The stream source writes in pieces of this size (and waits for 'drain' between them when pushed back). */
const CHUNK = 64 * 1024;
/** A 1 MiB random block; streams are views into it (rotated per stream id), bulk data is it plus a counter. */
const BLOCK = randomBytes(MiB);
const DOUBLE_BLOCK = Buffer.concat([BLOCK, BLOCK]);

const sha256 = () => createHash('sha256');

/** What the stream source knows about one connection: how far it got and whether the kernel/tunnel pushed back. */
export interface Served {
  sock: Socket;
  size: number;
  handed: number;
  sawBackpressure: boolean;
  waitingForDrain: boolean;
  hash?: string;
}

/** Bytes the source's socket really let go of (handed to write() minus what Node still buffers). */
export const accepted = (s: Served) => s.handed - s.sock.writableLength;

/** What a receiver saw: byte count, sha256, and whether the stream ended cleanly (FIN) rather than by error. */
export interface Received {
  bytes: number;
  hash: string;
  ended: boolean;
}

/** Hashes whatever arrives on `sock` until it closes. */
export function hashIncoming(sock: Socket): Promise<Received> {
  return new Promise((resolve) => {
    const hash = sha256();
    let bytes = 0,
      ended = false;
    sock.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
    });
    sock.on('end', () => {
      ended = true;
    });
    sock.on('error', () => undefined);
    sock.on('close', () => resolve({ bytes, hash: hash.digest('hex'), ended }));
  });
}

/**
 * Bulk data: BLOCK with the block counter in its first 8 bytes, a fresh buffer per MiB (write() keeps a reference).
 */
function bulkBlock(i: number, n: number): Buffer {
  const b = Buffer.from(BLOCK.subarray(0, n));
  if (n >= 8) b.writeBigUInt64BE(BigInt(i));
  return b;
}

/** Writes `total` bulk bytes to `sock` with backpressure; resolves with their sha256 once all are handed over. */
export async function sendBulk(sock: Socket, total: number): Promise<string> {
  const hash = sha256();
  for (let i = 0, sent = 0; sent < total; i++) {
    const b = bulkBlock(i, Math.min(MiB, total - sent));
    hash.update(b);
    sent += b.length;
    if (!sock.write(b)) {
      await new Promise<void>((resolve, reject) => {
        const onClose = () => reject(new Error(`socket closed after ${sent} of ${total} bytes`));
        sock.once('close', onClose);
        sock.once('drain', () => {
          sock.off('close', onClose);
          resolve();
        });
      });
    }
  }
  return hash.digest('hex');
}

/**
 * Opens one stream through the tunnel listening on `port`, asking the stream source for `size` bytes of
 * stream `id`; `paused`: the reader reads nothing until resumed.
 */
export function openStream(
  port: number,
  id: number,
  size: number,
  paused = false,
): { sock: Socket; done: Promise<Received> } {
  const sock = connect(port, '127.0.0.1');
  const done = hashIncoming(sock);
  sock.once('connect', () => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(id, 0);
    head.writeUInt32BE(size, 4);
    sock.write(head);
    if (paused) sock.pause();
  });
  return { sock, done };
}

/** The three services on loopback, and what each has served or received so far. */
export class FlowServices {
  /** The stream source's connections, by stream id. */
  readonly served = new Map<number, Served>();
  /** The bulk source's sha256 of what it sent, per connection in connection order. */
  readonly bulkSent: Promise<string>[] = [];
  /** The upload sink's view of each connection, in connection order. */
  readonly sinkReceived: Promise<Received>[] = [];
  private readonly servers: Server[] = [];

  /** `bulkBytes`: what the bulk source sends each connection. */
  constructor(private readonly bulkBytes: number) {}

  /** Starts the services; their ports. */
  async start(): Promise<{ stream: number; bulk: number; sink: number }> {
    return {
      stream: await this.listen(this.streamSource()),
      bulk: await this.listen(this.bulkSource()),
      sink: await this.listen(this.uploadSink()),
    };
  }

  close(): void {
    for (const s of this.servers) s.close();
    for (const s of this.served.values()) s.sock.destroy();
  }

  private listen(server: Server): Promise<number> {
    this.servers.push(server);
    return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)));
  }

  /**
   * The stream source: reads an 8-byte header (u32 stream id, u32 size), then sends `size` bytes of that
   * id's pattern, respecting backpressure (waits for 'drain' whenever write() returns false).
   */
  private streamSource(): Server {
    return createServer((sock) => {
      sock.on('error', () => undefined);
      let head = Buffer.alloc(0);
      const onHead = (c: Buffer) => {
        head = Buffer.concat([head, c]);
        if (head.length < 8) return;
        sock.off('data', onHead);
        const id = head.readUInt32BE(0);
        const s: Served = {
          sock,
          size: head.readUInt32BE(4),
          handed: 0,
          sawBackpressure: false,
          waitingForDrain: false,
        };
        this.served.set(id, s);
        this.pump(s, id);
      };
      sock.on('data', onHead);
    });
  }

  /** Sends stream `id`'s pattern to `s` until its size, pausing whenever the socket pushes back. */
  private pump(s: Served, id: number): void {
    const hash = sha256();
    let pos = (id * 4099) % MiB;
    const more = () => {
      s.waitingForDrain = false;
      while (s.handed < s.size) {
        const n = Math.min(CHUNK, s.size - s.handed);
        const chunk = DOUBLE_BLOCK.subarray(pos, pos + n);
        pos = (pos + n) % MiB;
        hash.update(chunk);
        s.handed += n;
        if (!s.sock.write(chunk)) {
          s.sawBackpressure = true;
          s.waitingForDrain = true;
          s.sock.once('drain', more);
          return;
        }
      }
      s.hash = hash.digest('hex');
      s.sock.end();
    };
    more();
  }

  /** Bulk download source: sends `bulkBytes` to each connection. */
  private bulkSource(): Server {
    return createServer((sock) => {
      sock.on('error', () => undefined);
      this.bulkSent.push(
        sendBulk(sock, this.bulkBytes).then((h) => {
          sock.end();
          return h;
        }),
      );
    });
  }

  /** Upload sink: hashes whatever arrives until the client's end, then closes its side too. */
  private uploadSink(): Server {
    return createServer({ allowHalfOpen: true }, (sock) => {
      this.sinkReceived.push(hashIncoming(sock));
      sock.on('end', () => sock.end());
    });
  }
}
