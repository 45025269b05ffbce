/**
 * Where an integration run on the MSSP's side (in a tenant process on a host) may not connect: cloud instance
 * metadata, link-local and unspecified addresses (common/ip-address.ts). A customer's http connection, or an AWS
 * endpoint setting, pointed there would read the MSSP host's own instance credentials. Judged on the URL's host and
 * on every address its name resolves to (a lookup for Node's sockets), so no DNS name leads there either. Not the
 * engine's allow-list (work run on an engine goes through its own rules), and not yet the host's own loopback ports.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { AccessDeniedError } from '#common/errors.js';
import { isSensitiveHostSide } from '#common/ip-address.js';

const refused = (host: string, address?: string, field = 'baseUrl') =>
  new AccessDeniedError(
    'ERR_INTEGRATION_TARGET_REFUSED',
    `${host}${address && address !== host ? ` (${address})` : ''} is instance metadata, link-local or unspecified: ` +
      "an integration never connects there from the MSSP's side",
    { field },
  );

/** Refuses a URL host that is such an address itself (an IP literal Node would connect to without a lookup). */
export function checkTargetHost(host: string, field = 'baseUrl'): void {
  const bare = host.replace(/^\[|\]$/g, '');
  if (isSensitiveHostSide(bare)) throw refused(bare, undefined, field);
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A `lookup` for sockets: resolves as Node would, and fails the connection if any answer is such an address. */
export function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const bad = addresses.find((a) => isSensitiveHostSide(a.address));
    if (bad) return callback(refused(hostname, bad.address) as unknown as NodeJS.ErrnoException, []);
    if (options.all) return callback(null, addresses);
    const [first] = addresses;
    callback(null, first?.address ?? '', first?.family);
  });
}
