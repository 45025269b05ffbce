/**
 * Node HTTP and HTTPS agents whose every connection goes through the engine's allow-list: what an integration
 * call on an engine (integration-run.ts) gives the AWS SDK and the http integration as their transport, so the
 * libraries the tenant uses run unchanged and still cannot reach what a tunnel stream could not. Each new
 * socket's (host, port) is resolved by AllowList.resolve and dialled at the address it approved (no second DNS
 * answer); TLS still verifies the certificate against the name asked for (`servername`). A refused destination
 * fails that request with the allow-list's error, is reported once per destination (main's audit), and is kept
 * as the call's `refusal`, which the caller answers with rather than the library's wrapping of it.
 * One pair per call, destroyed after it. Not the allow-list's rules (allow-list.ts).
 */
import { Agent as HttpAgent, type ClientRequestArgs } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { formatHostPort } from '#common/address.js';
import type { PalisadeError } from '#common/errors.js';
import type { AllowList } from './allow-list.js';

type Created = (err: Error | null, stream: Duplex) => void;
type Connect = (options: ClientRequestArgs, cb: Created, dial: (o: ClientRequestArgs) => Duplex) => void;
/** Reports a refusal (for main's audit): the destination as `host:port`, and the allow-list's error. */
export type RefusalReport = (target: string, e: unknown) => void;

export class AllowListAgents {
  readonly httpAgent: HttpAgent;
  readonly httpsAgent: HttpsAgent;
  /** The first refusal of this call, if any: the reason the call failed, whatever the library made of it. */
  refusal?: PalisadeError;
  private readonly reported = new Set<string>();

  constructor(
    private readonly allow: AllowList,
    private readonly report: RefusalReport,
  ) {
    const connect: Connect = (options, cb, dial) => this.connect(options, cb, dial);
    this.httpAgent = new GatedHttpAgent(connect);
    this.httpsAgent = new GatedHttpsAgent(connect);
  }

  /**
   * Checks a destination against the allow-list as these agents do, reporting a refusal the same way; answers the
   * address to use. For a destination dialled by something else (the SDK's instance metadata client).
   */
  async check(host: string, port: number): Promise<string> {
    const target = formatHostPort(host.replace(/^\[|\]$/g, ''), port);
    try {
      return (await this.allow.resolve(target)).address;
    } catch (e) {
      const err = e as PalisadeError;
      // A name that does not resolve is the destination's problem, as it is on a tenant (the SDK's ENOTFOUND).
      if (err.code === 'ERR_TUNNEL_DNS')
        throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host });
      this.refusal ??= err;
      if (!this.reported.has(target)) {
        this.reported.add(target);
        this.report(target, e);
      }
      throw e;
    }
  }

  destroy(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private connect(options: ClientRequestArgs, cb: Created, dial: (o: ClientRequestArgs) => Duplex): void {
    const host = String(options.host ?? options.hostname ?? 'localhost');
    const port = Number(options.port);
    // Node's callback takes an error alone; its type insists on a stream.
    const fail = cb as unknown as (err: Error) => void;
    this.check(host, port).then((address) => {
      let sock: Duplex;
      try {
        // The name stays the TLS name (SNI and the certificate check); an IP literal has none to keep.
        const asked = (options as { servername?: string }).servername;
        const servername = isIP(host) ? undefined : asked || host;
        sock = dial({ ...options, host: address, ...(servername ? { servername } : {}) } as ClientRequestArgs);
      } catch (e) {
        return fail(e as Error);
      }
      cb(null, sock);
    }, fail);
  }
}

/*
 * Agents that create each socket asynchronously, through `connect` (Node's documented callback form of
 * createConnection). keepAlive: the requests of one call (AssumeRole, then the service) share a socket.
 */
class GatedHttpAgent extends HttpAgent {
  constructor(private readonly gate: Connect) {
    super({ keepAlive: true });
  }
  override createConnection(options: ClientRequestArgs, cb?: Created): undefined {
    this.gate(options, cb!, (o) => super.createConnection(o)!);
    return undefined;
  }
}

class GatedHttpsAgent extends HttpsAgent {
  constructor(private readonly gate: Connect) {
    super({ keepAlive: true });
  }
  override createConnection(options: ClientRequestArgs, cb?: Created): undefined {
    this.gate(options, cb!, (o) => super.createConnection(o)!);
    return undefined;
  }
}
