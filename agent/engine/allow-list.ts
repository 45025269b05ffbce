/**
 * The engine's allow-list: an engine is not an open proxy. Entries are CIDR[:PORT|PORT-PORT] or
 * HOST[:PORT|PORT-PORT]; no entry, no dial. A hostname is resolved once per connection and the
 * connection goes to that address (no DNS rebinding between check and dial). Loopback, link-local and
 * cloud metadata addresses are refused unless an entry names that exact address or hostname.
 * An IPv6 address that carries an IPv4 one (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64
 * 64:ff9b::a.b.c.d) is judged as that IPv4 address too: it is where the packets end up.
 */
import { BlockList, isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { AccessDeniedError } from '#common/errors.js';
import { ipv6Groups } from '#common/ip-address.js';

interface Entry { text: string; host?: string; cidr?: { addr: string; bits: number; family: 'ipv4' | 'ipv6' }; from: number; to: number }

/**
 * Addresses no broad rule may cover: link-local, cloud metadata and "this host" (0.0.0.0/8, ::), and with
 * `loopback` also loopback. The engine's allow-list and the tenant's inbound destinations both use it.
 */
export function sensitiveAddresses(loopback: boolean): BlockList {
  const b = new BlockList();
  b.addSubnet('169.254.0.0', 16, 'ipv4');
  b.addSubnet('fe80::', 10, 'ipv6');
  b.addAddress('fd00:ec2::254', 'ipv6');
  b.addSubnet('0.0.0.0', 8, 'ipv4');
  b.addAddress('::', 'ipv6');
  if (loopback) {
    b.addSubnet('127.0.0.0', 8, 'ipv4');
    b.addAddress('::1', 'ipv6');
  }
  return b;
}

const SENSITIVE = sensitiveAddresses(true);

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

function parse(text: string): Entry {
  const m = /^(\[[0-9a-fA-F:]+\](?:\/\d{1,3})?|[^:\s/]+(?:\/\d{1,3})?)(?::(\d{1,5})(?:-(\d{1,5}))?)?$/.exec(text.trim());
  if (!m) throw new Error(`bad allow entry ${text}`);
  const [, target, p1, p2] = m;
  const [addr, bits] = target.replace(/^\[|\](?=\/|$)/g, '').split('/');
  const from = p1 ? Number(p1) : 1, to = p2 ? Number(p2) : p1 ? Number(p1) : 65535;
  const fam = isIP(addr);
  if (fam) return { text, cidr: { addr, bits: bits === undefined ? (fam === 4 ? 32 : 128) : Number(bits), family: fam === 4 ? 'ipv4' : 'ipv6' }, from, to };
  return { text, host: addr.toLowerCase(), from, to };
}

export class AllowList {
  private readonly entries: Entry[];
  constructor(texts: readonly string[]) { this.entries = texts.map(parse); }

  /** Resolves and checks a target; returns the address to dial, or throws a refusal that says why. */
  async resolve(target: string): Promise<{ address: string; port: number }> {
    const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(target);
    if (!m) throw new AccessDeniedError('ERR_TUNNEL_TARGET', `target "${target}" is not HOST:PORT`);
    const host = m[1].replace(/^\[|\]$/g, '').toLowerCase(), port = Number(m[2]);
    const address = isIP(host) ? host : (await lookup(host).catch(() => { throw new AccessDeniedError('ERR_TUNNEL_DNS', `cannot resolve ${host}`); })).address;
    const family: 'ipv4' | 'ipv6' = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    const inside = addressForms(address);
    // Each form an entry may match: the address as dialled, and the IPv4 address it carries.
    const forms = [{ addr: address, family }, ...(inside.ipv4 ? [{ addr: inside.ipv4, family: 'ipv4' as const }] : [])];
    const sensitive = inside.opaque || forms.some((f) => SENSITIVE.check(f.addr, f.family));
    for (const e of this.entries) {
      if (port < e.from || port > e.to) continue;
      // A hostname entry does not vouch for a sensitive address its DNS happens to answer with.
      if (e.host && e.host === host && !(sensitive && host !== 'localhost')) return { address, port };
      if (e.cidr) {
        const exact = e.cidr.bits === (e.cidr.family === 'ipv4' ? 32 : 128);
        if (sensitive && !exact) continue;
        const bl = new BlockList();
        bl.addSubnet(e.cidr.addr, e.cidr.bits, e.cidr.family);
        if (forms.some((f) => f.family === e.cidr!.family && bl.check(f.addr, f.family))) return { address, port };
      }
    }
    throw new AccessDeniedError('ERR_TUNNEL_NOT_ALLOWED', `destination ${target} is not in this engine's allow-list`);
  }
}
