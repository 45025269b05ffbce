/**
 * Which addresses land on this machine itself: loopback, the unspecified addresses (a connect to
 * 0.0.0.0 or :: reaches loopback on Linux) and every address of its interfaces. The tenant uses it to keep
 * an inbound tunnel from leading into another tenant's outbound listener on the same host, and integrations
 * run on the MSSP's side to keep away from the host's own ports (integrations/target-guard.ts). It is not a
 * general address policy: metadata and link-local refusals are common/ip-address.ts's (isSensitiveHostSide).
 */
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';
import { lookup } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import { addressForms } from '#common/ip-address.js';

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addSubnet('0.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addAddress('::', 'ipv6');

/**
 * True if connecting to `address` (an IP) reaches this machine. An IPv6 form of an IPv4 address (mapped,
 * compatible, NAT64) counts as that IPv4 address, as the engine's allow-list judges it.
 */
export function isLocalAddress(address: string): boolean {
  const ip = address.replace(/%.*$/, ''); // a zone id names an interface, not another address
  const fam = isIP(ip);
  if (!fam) return false;
  const inner = addressForms(ip).ipv4;
  if (inner && isLocalAddress(inner)) return true;
  const type = fam === 6 ? 'ipv6' : 'ipv4';
  if (LOOPBACK.check(ip, type)) return true;
  // Read each time: interfaces come and go (DHCP, VPNs); the call is cheap next to a connect.
  const own = new BlockList();
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) own.addAddress(i.address.replace(/%.*$/, ''), i.family === 'IPv6' ? 'ipv6' : 'ipv4');
  }
  return own.check(ip, type);
}

/** Every address `host` (a name or an IP literal) resolves to, in the order a connect would try them. */
export async function resolveAll(host: string): Promise<LookupAddress[]> {
  return lookup(host, { all: true });
}

/**
 * A `lookup` for net.connect that answers with addresses resolved (and checked) before: the dial goes
 * only where the check looked, whatever DNS would say a moment later. Keeps connect's happy eyeballs.
 */
export function pinnedLookup(addresses: LookupAddress[]): LookupFunction {
  return (host, opts, cb) => {
    const fit = opts.family === 4 || opts.family === 6 ? addresses.filter((a) => a.family === opts.family) : addresses;
    if (fit.length === 0)
      cb(Object.assign(new Error(`${host}: no IPv${String(opts.family)} address`), { code: 'ENOTFOUND' }), '');
    else if (opts.all) cb(null, fit);
    else cb(null, fit[0].address, fit[0].family);
  };
}
