/**
 * IP address literals: the one IPv6 group parser, and the key by which a limit counts a source address.
 * Pure string work on addresses Node already accepted (`net.isIP`); not a validator and no DNS.
 *
 * Why an IPv6 source counts by its /64: a host (a customer line, a VM) is usually given a whole /64 and
 * may send from any address in it, so counting each address apart lets one host rotate past every
 * per-address limit; counting by /64 makes it one source again, at the cost of lumping together the rare
 * hosts that share a /64.
 */
import { isIP } from 'node:net';

/** The eight 16-bit groups of an IPv6 literal (isIP 6; a zone id and a dotted-quad tail allowed). */
export function ipv6Groups(ip: string): number[] {
  let s = ip.replace(/%.*$/, '');
  const quad = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (quad) {
    const [a, b, c, d] = quad.slice(1).map(Number);
    s = `${s.slice(0, quad.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = s.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const gap = tail === undefined ? [] : Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...gap, ...t].map((x) => parseInt(x, 16));
}

/**
 * The source a per-address limit counts `ip` under: IPv4 as itself; IPv4-mapped IPv6 (::ffff:a.b.c.d,
 * how a dual-stack socket reports an IPv4 peer) as that IPv4, so one peer is one source on either
 * stack; any other IPv6 as its /64 (`2001:db8:1:2::/64`, whichever way the address was written).
 * Anything that is not an IP literal is returned as is.
 */
export function addressKey(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  const g = ipv6Groups(ip);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `${g[6] >> 8}.${g[6] & 0xff}.${g[7] >> 8}.${g[7] & 0xff}`;
  return `${g.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`;
}
