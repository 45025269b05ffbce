/**
 * The engine's allow-list: an engine is not an open proxy. Entries are CIDR[:PORT|PORT-PORT] or
 * HOST[:PORT|PORT-PORT]; no entry, no dial. A hostname is resolved once per connection and the
 * connection goes to that address (no DNS rebinding between check and dial). Loopback, link-local and
 * cloud metadata addresses are refused unless an entry names that exact address or hostname.
 */
import { BlockList, isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { AccessDeniedError } from '#common/errors.js';

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
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    const sensitive = SENSITIVE.check(address, family);
    for (const e of this.entries) {
      if (port < e.from || port > e.to) continue;
      // A hostname entry does not vouch for a sensitive address its DNS happens to answer with.
      if (e.host && e.host === host && !(sensitive && host !== 'localhost')) return { address, port };
      if (e.cidr && e.cidr.family === family) {
        const exact = e.cidr.bits === (family === 'ipv4' ? 32 : 128);
        if (sensitive && !exact) continue;
        const bl = new BlockList();
        bl.addSubnet(e.cidr.addr, e.cidr.bits, e.cidr.family);
        if (bl.check(address, family)) return { address, port };
      }
    }
    throw new AccessDeniedError('ERR_TUNNEL_NOT_ALLOWED', `destination ${target} is not in this engine's allow-list`);
  }
}
