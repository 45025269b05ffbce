/**
 * What an IP address is: the one IPv6 group parser, the key by which a limit counts a source address, the
 * IPv4 address an IPv6 form carries, and the addresses no broad rule may reach. Used by main's limits, the
 * engine's allow-list and the tenant's tunnel checks alike. Pure work on addresses Node already accepted
 * (`net.isIP`); how addresses are written (HOST:PORT, CIDR) is address.ts's, and there is no DNS here.
 *
 * Why an IPv6 source counts by its /64: a host (a customer line, a VM) is usually given a whole /64 and
 * may send from any address in it, so counting each address apart lets one host rotate past every
 * per-address limit; counting by /64 makes it one source again, at the cost of lumping together the rare
 * hosts that share a /64.
 */
import { BlockList, isIP } from 'node:net';

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
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff)
    return `${g[6] >> 8}.${g[6] & 0xff}.${g[7] >> 8}.${g[7] & 0xff}`;
  return `${g
    .slice(0, 4)
    .map((x) => x.toString(16))
    .join(':')}::/64`;
}

/** The unspecified address (0.0.0.0, or :: however written): bound, it listens on every interface. */
export function isUnspecified(ip: string): boolean {
  if (isIP(ip) === 4) return ip === '0.0.0.0';
  return isIP(ip) === 6 && ipv6Groups(ip).every((g) => g === 0);
}

/**
 * Addresses no broad rule may cover: link-local, cloud metadata and "this host" (0.0.0.0/8, ::), and with
 * `loopback` also loopback. The engine's allow-list and the tenant's inbound destinations both use it.
 */
export function sensitiveAddresses(loopback: boolean): BlockList {
  const b = new BlockList();
  b.addSubnet('169.254.0.0', 16, 'ipv4');
  b.addSubnet('fe80::', 10, 'ipv6');
  b.addAddress('fd00:ec2::254', 'ipv6');
  // Alibaba Cloud's metadata service sits in the shared (CGNAT) range a customer's network may use: the one address.
  b.addAddress('100.100.100.200', 'ipv4');
  b.addSubnet('0.0.0.0', 8, 'ipv4');
  b.addAddress('::', 'ipv6');
  if (loopback) {
    b.addSubnet('127.0.0.0', 8, 'ipv4');
    b.addAddress('::1', 'ipv6');
  }
  return b;
}

/**
 * How an address is judged: as itself, plus the IPv4 address inside it when it is an IPv6 form of one —
 * IPv4-mapped (::ffff:0:0/96), IPv4-compatible (::/96 but :: and ::1, IPv6's own) or NAT64's well-known
 * prefix (64:ff9b::/96, RFC 6052), which a NAT64 gateway turns into that IPv4 address. `opaque` marks the
 * local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215): where the IPv4 sits depends on the prefix length the
 * operator chose (/48 to /96), so it may reach any IPv4 address and only an entry naming it exactly allows it.
 */
export function addressForms(address: string): { ipv4?: string; opaque: boolean } {
  if (isIP(address) !== 6) return { opaque: false };
  const g = ipv6Groups(address);
  const zero = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  const v4 = () => `${g[6] >> 8}.${g[6] & 0xff}.${g[7] >> 8}.${g[7] & 0xff}`;
  if (zero(0, 5) && g[5] === 0xffff) return { ipv4: v4(), opaque: false };
  if (zero(0, 6) && (g[6] !== 0 || g[7] > 1)) return { ipv4: v4(), opaque: false };
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) return { ipv4: v4(), opaque: false };
  return { opaque: g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1 };
}

/** What the MSSP host's side never lets a tenant reach: metadata, link-local, unspecified (loopback allowed). */
const HOST_SIDE_BLOCKED = sensitiveAddresses(false);

/**
 * Whether `host` (an IP literal, or a name) is an address the MSSP host's side must never connect to for a tenant:
 * cloud instance metadata, link-local and unspecified addresses, also in their NAT64 or IPv4-compatible forms (the
 * allow-list's judgement), and names starting `metadata`. A name is judged by what it resolves to, by the caller.
 */
export function isSensitiveHostSide(host: string): boolean {
  const fam = isIP(host);
  if (!fam) return /^metadata(\.|$)/i.test(host);
  const inside = addressForms(host);
  return (
    inside.opaque ||
    HOST_SIDE_BLOCKED.check(host, fam === 6 ? 'ipv6' : 'ipv4') ||
    (inside.ipv4 !== undefined && HOST_SIDE_BLOCKED.check(inside.ipv4, 'ipv4'))
  );
}
