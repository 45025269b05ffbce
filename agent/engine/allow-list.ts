/**
 * The engine's allow-list: an engine is not an open proxy. Entries are CIDR[:PORT|PORT-PORT] or
 * HOST[:PORT|PORT-PORT] (common/address.ts reads them); no entry, no dial. A hostname is resolved once per connection
 * and the
 * connection goes to that address (no DNS rebinding between check and dial). Loopback, link-local and
 * cloud metadata addresses are refused unless an entry names that exact address or hostname.
 * An IPv6 address that carries an IPv4 one (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64
 * 64:ff9b::a.b.c.d) is judged as that IPv4 address too: it is where the packets end up.
 */
import { BlockList, isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { AccessDeniedError } from '#common/errors.js';
import { parseAllowRule, readHostPort, type AllowRule } from '#common/address.js';
import { addressForms, sensitiveAddresses } from '#common/ip-address.js';

const SENSITIVE = sensitiveAddresses(true);

export class AllowList {
  private readonly entries: AllowRule[];
  constructor(texts: readonly string[]) {
    this.entries = texts
      .map((t) => parseAllowRule(t, { code: 'ERR_BAD_ALLOW', field: 'allow' }))
      .map((e) => (e.host ? { ...e, host: nameKey(e.host) } : e));
  }

  /** Resolves and checks a target; returns the address to dial, or throws a refusal that says why. */
  async resolve(target: string): Promise<{ address: string; port: number }> {
    const t = readHostPort(target, 'dial');
    if ('problem' in t)
      throw new AccessDeniedError('ERR_TUNNEL_TARGET', `target "${target}" is not HOST:PORT: ${t.problem}`);
    const host = nameKey(t.host),
      port = t.port;
    const address = isIP(host)
      ? host
      : (
          await lookup(host).catch(() => {
            throw new AccessDeniedError('ERR_TUNNEL_DNS', `cannot resolve ${host}`);
          })
        ).address;
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

/** A name as the allow-list compares it: case-insensitively, as DNS does, and `mail.corp.` as `mail.corp`. */
function nameKey(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}
