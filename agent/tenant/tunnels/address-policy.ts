/**
 * Where the tenant's tunnels may listen and lead on the MSSP host's side, as pure judgements: the
 * fields a listener's and a destination's address is read from (common/address.ts), destinations that are never allowed
 * (cloud metadata,
 * link-local, unspecified: also in their NAT64 or IPv4-compatible forms), and the refusal of one that
 * leads into a port reserved on this host. Not the checks against live state (inbound-dials.ts,
 * tunnel-listeners.ts), which use these.
 */
import { isIP } from 'node:net';
import { AccessDeniedError } from '#common/errors.js';
import { addressForms, sensitiveAddresses } from '#common/ip-address.js';

/** Inbound destinations are on the MSSP host's side: loopback is allowed, metadata and link-local never. */
const TENANT_SIDE_BLOCKED = sensitiveAddresses(false);

export function isSensitiveTenantSide(host: string): boolean {
  const fam = isIP(host);
  if (!fam) return /^metadata(\.|$)/i.test(host);
  // Also as the IPv4 address a NAT64 or IPv4-compatible form carries (the allow-list's judgement).
  const inside = addressForms(host);
  return (
    inside.opaque ||
    TENANT_SIDE_BLOCKED.check(host, fam === 6 ? 'ipv6' : 'ipv4') ||
    (inside.ipv4 !== undefined && TENANT_SIDE_BLOCKED.check(inside.ipv4, 'ipv4'))
  );
}

/** A tunnel's two addresses: where it listens (an IP address) and where its connections go (HOST:PORT). */
export const LISTEN = { code: 'ERR_BAD_LISTEN', field: 'listen' } as const;
export const TO = { code: 'ERR_BAD_TARGET', field: 'to' } as const;

/**
 * The refusal of an inbound stream into a port reserved on this host: the engine hears "reserved", the audit log why.
 */
export const CROSS_TENANT_REASON =
  "a port reserved on this host: another tenant's outbound tunnel listener or API, or the host's engine port";
export const crossTenant = (view: { id: string; to: string }) =>
  new AccessDeniedError('ERR_TUNNEL_CROSS_TENANT', `inbound tunnel ${view.id}: ${view.to} is reserved on this host`);
