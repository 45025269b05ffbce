/**
 * The ExternalId a tenant sends with every AssumeRole, and that the customer writes into the role's trust
 * policy (`"Condition": {"StringEquals": {"sts:ExternalId": "…"}}`). It is what stops the confused deputy:
 * Palisade assumes roles for every tenant with the same AWS identity, so without it tenant B could name
 * tenant A's role ARN and be let in.
 *
 * Derived, not stored: HMAC-SHA256 of the tenant's name under a key only that tenant holds (its own secret
 * key material, which moves with the tenant and is new when a tenant of the same name is created again).
 * So it is stable for a tenant across restarts and moves, differs between tenants, and cannot be computed
 * by another tenant, which lacks the key; knowing it grants nothing (it is not a secret, AWS says so too),
 * and it is displayed for the customer to copy. Not the choice of that key: the caller passes it in.
 */
import { createHmac } from 'node:crypto';

/** Versioned, so a change of derivation is a new label and never silently a new id for every tenant. */
const LABEL = 'palisade aws external-id v1';
/** 128 bits: collisions between tenants are out of reach; 32 hex characters copy cleanly into JSON. */
const DIGEST_HEX_CHARS = 32;
const MIN_KEY_BYTES = 16;

/** `palisade-<tenant>-<32 hex>`: the tenant's name first, so a customer sees whose id it is. */
export function deriveExternalId(tenantKey: Uint8Array, tenant: string): string {
  if (tenantKey.length < MIN_KEY_BYTES)
    throw new RangeError(`the key an ExternalId derives from needs ${MIN_KEY_BYTES}+ bytes`);
  const mac = createHmac('sha256', tenantKey).update(`${LABEL}\0${tenant}`, 'utf8').digest('hex');
  return `palisade-${tenant}-${mac.slice(0, DIGEST_HEX_CHARS)}`;
}
