/**
 * Where the tenant's tunnels may listen and lead on the MSSP host's side, as pure judgements: the fields a
 * listener's and a destination's address is read from (common/address.ts) and the refusal of one that leads into a
 * port reserved on this host. Destinations never allowed (metadata, link-local, unspecified) are
 * common/ip-address.ts's isSensitiveHostSide, shared with integrations. Not the checks against live state
 * (inbound-dials.ts, tunnel-listeners.ts), which use these.
 */
import { AccessDeniedError } from '#common/errors.js';

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
