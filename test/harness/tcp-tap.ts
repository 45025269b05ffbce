/**
 * A TCP forwarder that records every byte it carries, both ways: a wire capture between an engine and
 * its host on the direct tunnel path (the host advertises the tap's port, the tap forwards to the host),
 * so a test sees exactly what a network observer would. Also counts connections, and can refuse them
 * (`refusing`: a network cut, e.g. between an agent and main).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Captured {
  toHost: Buffer[];
  toEngine: Buffer[];
}

export class TcpTap {
  readonly connections: Captured[] = [];
  private readonly sockets = new Set<Socket>();
  private server?: Server;
  port = 0;
  /** While true, new connections are closed at once (and cutAll() ends the carried ones): a partition. */
  refusing = false;

  constructor(private readonly targetPort: number) {}

  async start(): Promise<number> {
    this.server = createServer((client) => {
      if (this.refusing) {
        client.on('error', () => undefined);
        client.destroy();
        return;
      }
      const cap: Captured = { toHost: [], toEngine: [] };
      this.connections.push(cap);
      const up = connect(this.targetPort, '127.0.0.1');
      for (const s of [client, up]) {
        this.sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          this.sockets.delete(s);
          client.destroy();
          up.destroy();
        });
      }
      client.on('data', (c: Buffer) => {
        cap.toHost.push(Buffer.from(c));
        up.write(c);
      });
      up.on('data', (c: Buffer) => {
        cap.toEngine.push(Buffer.from(c));
        client.write(c);
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as { port: number }).port;
    return this.port;
  }

  /** Everything captured in one direction, all connections. */
  bytes(dir: keyof Captured): Buffer {
    return Buffer.concat(this.connections.flatMap((c) => c[dir]));
  }

  /** Cuts every carried connection (the engine and host then see a reset-like close). */
  cutAll(): void {
    for (const s of this.sockets) s.destroy();
  }

  close(): void {
    this.cutAll();
    this.server?.close();
  }
}

/**
 * Parses a direct connection's bytes (engine → host, with `preamble`; host → engine without): length-prefixed records.
 */
export function directRecords(bytes: Buffer, preamble: boolean): Buffer[] {
  let at = preamble ? 7 + bytes.readUInt16BE(5) : 0;
  const out: Buffer[] = [];
  while (at + 4 <= bytes.length) {
    const len = bytes.readUInt32BE(at);
    out.push(bytes.subarray(at + 4, at + 4 + len));
    at += 4 + len;
  }
  return out;
}
