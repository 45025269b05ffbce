/**
 * How `palisade main backup` gets a consistent snapshot from a running main. LevelDB allows one process per store
 * and main holds the lock, and copying its files under it is not consistent; so main itself answers: it listens on
 * a Unix socket in its data directory (`backup.sock`, 0600, in the 0700 directory) and streams the snapshot
 * (snapshot.ts) to whoever connects and asks. Reaching the socket takes main's own account, which can read the CA
 * key in the same directory anyway, so it grants nothing new; a REST route instead would hand the CA key to any
 * holder of an admin API key, over the network. The plaintext never leaves the machine: the CLI encrypts it.
 *
 * Request: one line of JSON, `{"op":"snapshot","actor":"os:USER","target":"OUT"}`; answer: the entries, then
 * the socket ends (cut short when main fails or stops: the CLI sees no END entry). Not the encryption or the CLI.
 */
import { chmod, unlink } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage, UnavailableError } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import type { Registry } from '../registry.js';
import type { AuditLog } from '../access/audit.js';
import { mainPaths } from '../data-dir.js';
import { snapshotEntries } from './snapshot.js';

export interface SnapshotRequest {
  op: 'snapshot';
  /** Who asked, as the CLI says (`os:` and the account name): for the audit log. */
  actor: string;
  /** The backup file being written, for the audit log. */
  target?: string;
}

const MAX_REQUEST_BYTES = 4096;
/** Longest path a Unix socket address holds on Linux (sun_path is 108 bytes with its NUL). */
const MAX_SOCKET_PATH = 107;

export class BackupSocket {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private readonly path: string;

  constructor(
    private readonly dir: string,
    private readonly registry: Registry,
    private readonly audit: AuditLog,
    private readonly log: Logger,
  ) {
    this.path = mainPaths(dir).backupSocket;
  }

  /**
   * Listens; a socket file left by a main that died is removed first (this main holds the registry's lock). Never
   * throws: main without its backup socket still serves.
   */
  async start(): Promise<void> {
    if (Buffer.byteLength(this.path) > MAX_SOCKET_PATH) {
      this.log.warn(
        { path: this.path },
        'data directory path too long for the backup socket: main backup needs main stopped',
      );
      return;
    }
    await unlink(this.path).catch(() => undefined);
    const server = createServer((s) => this.serve(s));
    try {
      await new Promise<void>((res, rej) => {
        server.once('error', rej);
        server.listen(this.path, () => res());
      });
      await chmod(this.path, 0o600);
      this.server = server;
    } catch (e) {
      // Main serves without it: only a backup while it runs is lost, and the log says why.
      server.close();
      this.log.warn(
        { path: this.path, err: errorMessage(e) },
        'backup socket unavailable: main backup needs main stopped',
      );
    }
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((res) => server.close(() => res()));
    await unlink(this.path).catch(() => undefined);
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let line = '';
    const onData = (b: Buffer) => {
      line += b.toString('utf8');
      const nl = line.indexOf('\n');
      if (nl < 0 && line.length <= MAX_REQUEST_BYTES) return;
      socket.off('data', onData);
      socket.pause();
      const req = parseRequest(line.slice(0, nl < 0 ? 0 : nl));
      if (!req) return void socket.destroy();
      void this.stream(socket, req);
    };
    socket.on('data', onData);
  }

  private async stream(socket: Socket, req: SnapshotRequest): Promise<void> {
    const entry = { actor: req.actor, action: 'main.backup', target: req.target, detail: { from: 'running main' } };
    this.log.info({ actor: req.actor }, 'backup snapshot started');
    try {
      await pipeline(Readable.from(snapshotEntries(this.dir, this.registry, 'running')), socket);
      await this.audit.record({ ...entry, outcome: 'ok' });
      this.log.info({ actor: req.actor }, 'backup snapshot sent');
    } catch (e) {
      this.log.warn({ actor: req.actor, err: errorMessage(e) }, 'backup snapshot cut short');
      await this.audit.record({ ...entry, outcome: 'failed' }).catch(() => undefined);
    }
  }
}

function parseRequest(line: string): SnapshotRequest | undefined {
  try {
    const r = JSON.parse(line) as Partial<SnapshotRequest>;
    if (r.op !== 'snapshot' || typeof r.actor !== 'string') return undefined;
    return { op: 'snapshot', actor: r.actor, target: typeof r.target === 'string' ? r.target : undefined };
  } catch {
    return undefined;
  }
}

/** A snapshot main is sending: its bytes, and how to hang up. */
export interface SnapshotStream {
  /** Fails with ERR_BACKUP_INCOMPLETE when the connection breaks (main stopped or failed while sending). */
  bytes: AsyncIterable<Buffer>;
  close(): void;
}

/** Asks the main running on `dir` for a snapshot; undefined when no main listens there. */
export async function requestSnapshot(dir: string, req: SnapshotRequest): Promise<SnapshotStream | undefined> {
  const path = mainPaths(dir).backupSocket;
  const socket = await new Promise<Socket | undefined>((res, rej) => {
    const s = connect(path);
    s.once('connect', () => res(s));
    s.once('error', (e: NodeJS.ErrnoException) =>
      e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
        ? res(undefined)
        : rej(new UnavailableError('ERR_BACKUP_MAIN_UNREACHABLE', `cannot reach main on ${path}: ${e.message}`)),
    );
  });
  if (!socket) return undefined;
  socket.write(JSON.stringify(req) + '\n');
  return { bytes: received(socket), close: () => socket.destroy() };
}

async function* received(socket: Socket): AsyncGenerator<Buffer> {
  try {
    for await (const b of socket) yield b as Buffer;
  } catch (e) {
    throw new UnavailableError('ERR_BACKUP_INCOMPLETE', `main broke off the snapshot: ${errorMessage(e)}`, {
      cause: e,
    });
  }
}
