/**
 * What an engine does for its tenant over a session: dials allow-listed destinations for the streams the
 * tenant opens (outbound tunnels), listens for inbound tunnels and turns each connection into a stream to
 * the tenant, and runs integration commands: the older per-destination ones (`http.request`, `tcp.check`) and
 * integration instances' calls (`integration.run`, integration-run.ts). Every refusal closes that stream (or fails
 * that command) with a reason, and is reported to main's audit log. Not the session itself, nor how it is carried
 * (engine-role.ts).
 */
import { connect, createServer, type Server } from 'node:net';
import { jsonBytes, type EnvelopeInit } from '#common/codec.js';
import { BadParameterError, UnavailableError, errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { formatHostPort, parseHostPort } from '#common/address.js';
import type { TunnelSession } from '../tunnel/tunnel-session.js';
import type { MuxStream } from '../tunnel/mux-stream.js';
import { spliceSocket } from '../tunnel/socket-splice.js';
import type { AllowList } from './allow-list.js';
import { runHttpRequest, runTcpCheck } from './integration-commands.js';
import { runIntegrationCall } from './integration-run.js';
import { INTEGRATION_RUN } from '../integrations/engine-call.js';

const DIAL_TIMEOUT_MS = 10_000;
const LISTENER_ID = /^tun_[0-9a-f]{12}$/;

export class EngineServices {
  /** Inbound tunnel listeners the tenant asked for; they live as long as the session that asked. */
  private readonly listeners = new Map<string, Server>();

  constructor(
    /** Where this engine may connect (its config's `allow`): tunnel streams and integration commands. */
    private readonly allow: AllowList,
    private readonly log: Logger,
    /** Sends an event to main (refusals, for its audit log); a no-op while not connected. */
    private readonly report: (env: EnvelopeInit) => void,
    /** The live session, which inbound connections become streams of. */
    private readonly session: () => TunnelSession | undefined,
  ) {}

  /** The tenant opened a stream to `target`: dialled if the allow-list lets it, else closed with the reason. */
  dial(stream: MuxStream, target: string): true {
    stream.on('error', () => undefined);
    this.allow.resolve(target).then(
      ({ address, port }) => {
        const sock = connect({ host: address, port, allowHalfOpen: true });
        // A destination that never answers (filtered port) fails the stream in bounded time, not the OS's minutes.
        sock.setTimeout(DIAL_TIMEOUT_MS, () =>
          sock.destroy(
            Object.assign(new Error(`no answer within ${DIAL_TIMEOUT_MS} ms`), { code: 'ERR_TUNNEL_DIAL_TIMEOUT' }),
          ),
        );
        sock.once('connect', () => sock.setTimeout(0));
        sock.on('error', (e) =>
          stream.destroy(
            Object.assign(new Error(`dial ${target}: ${e.message}`), {
              code:
                (e as { code?: string }).code === 'ERR_TUNNEL_DIAL_TIMEOUT'
                  ? 'ERR_TUNNEL_DIAL_TIMEOUT'
                  : 'ERR_TUNNEL_DIAL',
            }),
          ),
        );
        spliceSocket(sock, stream);
        this.log.info({ target, address }, 'tunnel stream opened');
      },
      (e: unknown) => {
        this.refused('tunnel.dial', target, e);
        stream.destroy(e as Error);
      },
    );
    return true;
  }

  async command(name: string, args: unknown): Promise<unknown> {
    const target = describeTarget(args);
    try {
      switch (name) {
        case 'http.request':
          return await runHttpRequest(this.allow, args);
        case 'tcp.check':
          return await runTcpCheck(this.allow, args);
        case INTEGRATION_RUN:
          return await runIntegrationCall(this.allow, args, (to, e) => this.refused(name, to, e));
        case 'tunnel.listen':
          return await this.listen(args);
        case 'tunnel.unlisten':
          return this.unlisten(args);
        default:
          throw new BadParameterError(
            'ERR_COMMAND_UNKNOWN',
            `engines run http.request, tcp.check, ${INTEGRATION_RUN}, tunnel.listen, tunnel.unlisten; not "${name}"`,
            { field: 'command' },
          );
      }
    } catch (e) {
      // An integration call reports its own refusals, by destination; its other denials are the service's
      // (AWS refusing a role), not this engine's.
      if ((e as { category?: string }).category === 'access-denied' && name !== INTEGRATION_RUN)
        this.refused(name, target, e);
      throw e;
    }
  }

  /** The session that asked for the inbound listeners ended: so do they. */
  closeListeners(): void {
    for (const [id, server] of this.listeners) {
      server.close();
      this.listeners.delete(id);
    }
  }

  /** A refusal goes to main's audit log (main names the engine from its certificate) and our own log. */
  private refused(action: string, target: string, e: unknown): void {
    const code = (e as { code?: string }).code;
    this.log.warn({ audit: { action, target, outcome: 'denied', code } }, `${action} refused`);
    this.report({ event: { type: 'audit', data: jsonBytes({ action, target, code, reason: errorMessage(e) }) } });
  }

  /** An inbound tunnel: each connection accepted here becomes a stream to the tenant's side of listener `id`. */
  private async listen(args: unknown): Promise<{ id: string; listen: string }> {
    const a = (args ?? {}) as { id?: unknown; listen?: unknown };
    if (typeof a.id !== 'string' || !LISTENER_ID.test(a.id))
      throw new BadParameterError('ERR_BAD_ARGS', 'args.id must be a tunnel id', { field: 'args.id' });
    const at = parseHostPort(typeof a.listen === 'string' ? a.listen : '', 'listen', {
      code: 'ERR_BAD_LISTEN',
      field: 'args.listen',
    });
    this.listeners.get(a.id)?.close();
    const id = a.id;
    const server = createServer({ allowHalfOpen: true }, (sock) => {
      const session = this.session();
      if (!session) {
        sock.destroy();
        return;
      }
      let stream: MuxStream;
      try {
        stream = session.mux.open(`listener:${id}`);
      } catch (e) {
        this.log.warn({ err: errorMessage(e) }, 'inbound connection dropped');
        sock.destroy();
        return;
      }
      spliceSocket(sock, stream, (e) =>
        this.log.info({ id, code: (e as { code?: string }).code }, 'inbound stream ended with an error'),
      );
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(new UnavailableError('ERR_LISTEN', `engine cannot listen on ${a.listen as string}: ${e.message}`)),
      );
      server.listen(at.port, at.host, () => resolve());
    });
    this.listeners.set(id, server);
    const port = (server.address() as { port: number }).port;
    this.log.info({ id, port }, 'inbound tunnel listening');
    return { id, listen: formatHostPort(at.host, port) };
  }

  private unlisten(args: unknown): { id: string; closed: boolean } {
    const id = (args as { id?: unknown } | null)?.id;
    if (typeof id !== 'string') throw new BadParameterError('ERR_BAD_ARGS', 'args.id is required');
    const s = this.listeners.get(id);
    s?.close();
    this.listeners.delete(id);
    return { id, closed: s !== undefined };
  }
}

function describeTarget(args: unknown): string {
  const a = (args ?? {}) as Record<string, unknown>;
  if (typeof a.url === 'string') {
    // Only the origin: a URL's path, query or userinfo may carry credentials, which never reach a log.
    try {
      return new URL(a.url).origin;
    } catch {
      return '(bad url)';
    }
  }
  if (typeof a.host === 'string') return `${a.host}:${String(a.port)}`;
  return typeof a.listen === 'string' ? a.listen : '';
}
