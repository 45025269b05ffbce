/**
 * Where an integration run on the MSSP's side (in a tenant process on a host) may not connect:
 *   - cloud instance metadata, link-local and unspecified addresses (common/ip-address.ts): a customer's http
 *     connection, or an AWS endpoint setting, pointed there would read the MSSP host's own instance credentials;
 *   - the host itself: loopback and every address of its interfaces (agent/local-addresses.ts), where main's API,
 *     the other tenants' APIs (18501 up), their tunnel listeners and the host agent's ports listen. A customer's
 *     baseUrl of `http://127.0.0.1:18502` would otherwise call another tenant's API from inside the host.
 * The host's operator may name exact ADDRESS:PORT exceptions to the second rule (agent.json
 * `integrationLoopbackAllow`, e.g. a local proxy or a lab fake); never to the first. The host passes them to its
 * tenant processes in PALISADE_INTEGRATION_LOOPBACK_ALLOW, and the tenant sets them here once at start
 * (`allowLocalTargets`): they are the machine's policy, the same for every call, not an argument of one.
 *
 * Judged on the URL's host when it is an IP literal (Node connects to it without a lookup) and on every address
 * a name resolves to, inside the sockets' own lookup, so no DNS name leads there either. The guarded agents carry
 * the port a socket is for into that judgement (a lookup alone never sees it). Not the engine's allow-list: work
 * run through a caller's agent (an engine's tunnel) follows the far side's rules.
 */
import { Agent as HttpAgent, type AgentOptions as HttpAgentOptions, type ClientRequestArgs } from 'node:http';
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions } from 'node:https';
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import type { Duplex } from 'node:stream';
import { formatHostPort, readHostPort } from '#common/address.js';
import { AccessDeniedError, BadParameterError } from '#common/errors.js';
import { addressForms, ipv6Groups, isSensitiveHostSide } from '#common/ip-address.js';
import { isLocalAddress } from '../local-addresses.js';

/** The environment variable a host passes its agent.json `integrationLoopbackAllow` to tenants in, comma-separated. */
export const LOOPBACK_ALLOW_ENV = 'PALISADE_INTEGRATION_LOOPBACK_ALLOW';

/** Exceptions to the own-address refusal, as `targetKey` makes them; empty unless the host named some. */
let exceptions: ReadonlySet<string> = new Set();

/** An address and port as one key, however the address is written; an IPv6 form of an IPv4 address is that address. */
function targetKey(address: string, port: number): string {
  const ip = address.replace(/%.*$/, '');
  if (isIP(ip) !== 6) return `${ip}:${port}`;
  const v6 =
    addressForms(ip).ipv4 ??
    ipv6Groups(ip)
      .map((g) => g.toString(16))
      .join(':');
  return `${v6}:${port}`;
}

/**
 * Sets the exceptions (IP:PORT or [IPv6]:PORT, each exact) for this process; called once at the tenant's start.
 * A name is refused: what it resolves to may change, and an exception must say exactly which socket it opens.
 */
export function allowLocalTargets(list: readonly string[]): void {
  exceptions = new Set(
    list.map((text) => {
      const at = readHostPort(text, 'dial');
      if ('problem' in at || at.family === 0)
        throw new BadParameterError(
          'ERR_CONFIG_INVALID',
          `integrationLoopbackAllow "${text}": expected IP:PORT, e.g. 127.0.0.1:9000 or [::1]:9000`,
          { field: 'integrationLoopbackAllow' },
        );
      return targetKey(at.host, at.port);
    }),
  );
}

/** The exceptions as the host passes them (LOOPBACK_ALLOW_ENV's value), read back into a list. */
export function loopbackAllowFromEnv(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env[LOOPBACK_ALLOW_ENV] ?? '').split(',').filter((s) => s !== '');
}

/** Why `address:port` is refused, or undefined when an integration may connect there. */
function refusalOf(address: string, port: number): 'metadata' | 'host' | undefined {
  if (isSensitiveHostSide(address)) return 'metadata';
  if (isLocalAddress(address) && !exceptions.has(targetKey(address, port))) return 'host';
  return undefined;
}

/** How an operator would write the exception for `address:port` (an IPv6 form of an IPv4 address as that address). */
function exceptionText(address: string, port: number): string {
  const ip = address.replace(/%.*$/, '');
  const v4 = addressForms(ip).ipv4;
  return formatHostPort(v4 ?? ip, port);
}

function refused(host: string, port: number, address: string, why: 'metadata' | 'host', field: string) {
  const where = `${host}${address !== host ? ` (${address})` : ''}`;
  return new AccessDeniedError(
    'ERR_INTEGRATION_TARGET_REFUSED',
    why === 'metadata'
      ? `${where} is instance metadata, link-local or unspecified: an integration never connects there from the ` +
          "MSSP's side"
      : `${where} port ${port} is the MSSP host itself (loopback or one of its addresses), where Palisade's own ` +
          "services listen: an integration on a tenant does not connect there unless the host's agent.json lists " +
          `"${exceptionText(address, port)}" in integrationLoopbackAllow`,
    { field },
  );
}

/** Refuses a URL host that is such an address itself (an IP literal Node would connect to without a lookup). */
export function checkTargetHost(host: string, port: number, field = 'baseUrl'): void {
  const bare = host.replace(/^\[|\]$/g, '');
  if (!isIP(bare)) {
    if (isSensitiveHostSide(bare)) throw refused(bare, port, bare, 'metadata', field);
    return; // a name: judged by what it resolves to, in the socket's lookup
  }
  const why = refusalOf(bare, port);
  if (why) throw refused(bare, port, bare, why, field);
}

/** A `lookup` for sockets to `port`: resolves as Node would, and fails the connection if any answer is refused. */
export function guardedLookup(port: number, field = 'baseUrl'): LookupFunction {
  return (hostname: string, options: LookupOptions, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, []);
      for (const a of addresses) {
        const why = refusalOf(a.address, port);
        if (why) return callback(refused(hostname, port, a.address, why, field) as NodeJS.ErrnoException, []);
      }
      if (options.all) return callback(null, addresses);
      const [first] = addresses;
      callback(null, first?.address ?? '', first?.family);
    });
  };
}

/**
 * `options` with the guard applied: an IP literal judged now (a refusal throws out of the request's creation, which
 * rejects the caller's promise before anything is sent), a name in the socket's lookup. The agent always sets the
 * port; the protocol's default stands in for safety.
 */
function guarded(options: ClientRequestArgs, defaultPort: number, field: string): ClientRequestArgs {
  const port = Number(options.port ?? defaultPort);
  checkTargetHost(String(options.host ?? options.hostname ?? 'localhost'), port, field);
  return { ...options, lookup: guardedLookup(port, field) };
}

type Created = (err: Error | null, stream: Duplex) => void;

/** An HTTP agent whose every socket passes the guard (for clients that take an agent, such as the AWS SDK). */
export class GuardedHttpAgent extends HttpAgent {
  constructor(
    opts: HttpAgentOptions,
    private readonly field: string,
  ) {
    super(opts);
  }
  override createConnection(options: ClientRequestArgs, callback?: Created): Duplex | null | undefined {
    return super.createConnection(guarded(options, 80, this.field), callback);
  }
}

/** The HTTPS counterpart of GuardedHttpAgent. */
export class GuardedHttpsAgent extends HttpsAgent {
  constructor(
    opts: HttpsAgentOptions,
    private readonly field: string,
  ) {
    super(opts);
  }
  override createConnection(options: ClientRequestArgs, callback?: Created): Duplex | null | undefined {
    return super.createConnection(guarded(options, 443, this.field), callback);
  }
}
