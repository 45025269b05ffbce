/**
 * Connections authored on main as content (type `connection`, docs/connections.md#scoped-connections): the body of
 * such an item, its scope, and which tenants a scope reaches. Pure; main (publish check, share targets, per-tenant
 * pushes), the tenant (what it keeps, resolution) and the CLI (which tenants to seal to) all read bodies with it.
 *
 *   {"type": "aws|http", "fields": {…settings of common/connections.ts…},
 *    "scope": {"kind": "global|region|tenant|site", "region"?, "tenant"?, "site"?},
 *    "sealed"?: {"TENANT": "v1.…"}}
 *
 * The item's name is the connection's name; several items may share it with different scopes, and the tenant picks
 * the most specific valid one at run time (site, then tenant, then region, then global). `sealed` holds the secret
 * once per tenant in scope, each sealed (common/sealed-secret.ts) to that tenant's public key under the name
 * `sealedName(name)`, so main and the hosts carry ciphertext only and each tenant is sent only its own copy. No
 * `sealed` at all: the connection has no secret (authType none, an AWS instance role); `sealed: {}`: it has one,
 * sealed to no tenant yet (authored before any tenant was in its scope).
 */
import { createHash } from 'node:crypto';
import { BadParameterError } from './errors.js';
import {
  checkConnection,
  checkConnectionType,
  sealedDestination,
  type ConnectionSettings,
  type ConnectionType,
} from './connections.js';
import { NAME_PATTERN } from './names.js';

export const SCOPE_KINDS = ['site', 'tenant', 'region', 'global'] as const;
export type ScopeKind = (typeof SCOPE_KINDS)[number];
export interface ConnectionScope {
  kind: ScopeKind;
  region?: string;
  tenant?: string;
  site?: string;
}
export interface ConnectionContentBody {
  type: ConnectionType;
  fields: ConnectionSettings;
  scope: ConnectionScope;
  sealed?: Record<string, string>;
}
/** What a tenant is told of its own region with each connection pushed to it (null: it has none). */
export interface TenantPlace {
  name: string;
  region: string | null;
}

const NAME = new RegExp(NAME_PATTERN);
const bad = (field: string, why: string) =>
  new BadParameterError('ERR_CONNECTION_CONTENT', `body.${field}: ${why}`, { field: `body.${field}` });
const badScope = (why: string) =>
  new BadParameterError('ERR_CONNECTION_SCOPE', `scope: ${why} (global, region:R, tenant:T or site:T/S)`, {
    field: 'scope',
  });

/**
 * The name a content connection's secret is sealed under: `content:NAME:DIGEST`. The colon no connection name may
 * hold, so a copy lifted from a shared item never opens as the secret of a tenant's own connection (whose name is the
 * plain name); DIGEST (sha256, hex) of the type and the settings that say where the secret goes
 * (connections.ts SEALED_DESTINATION, defaults filled in), so a copy kept in a version that sends it elsewhere (another
 * baseUrl, endpoint, auth type…) does not open either.
 */
export function sealedName(name: string, type: ConnectionType, fields: Record<string, unknown>): string {
  const digest = createHash('sha256')
    .update(JSON.stringify([type, sealedDestination(type, fields)]))
    .digest('hex');
  return `content:${name}:${digest}`;
}

/** `global`, `region:R`, `tenant:T` or `site:T/S` (the CLI's form) as a scope. */
export function parseScope(text: string): ConnectionScope {
  if (text === 'global') return { kind: 'global' };
  const m = /^(region|tenant|site):(.+)$/.exec(text);
  if (!m) throw badScope(`"${text}" is not a scope`);
  if (m[1] === 'site') {
    const [tenant, site, ...rest] = m[2].split('/');
    if (rest.length || !NAME.test(tenant ?? '') || !NAME.test(site ?? '')) throw badScope(`"${text}" is not site:T/S`);
    return { kind: 'site', tenant, site };
  }
  if (!NAME.test(m[2])) throw badScope(`"${m[2]}" is not a name`);
  return m[1] === 'region' ? { kind: 'region', region: m[2] } : { kind: 'tenant', tenant: m[2] };
}

/** A scope as one word: what status lines, resolve answers and the CLI show. */
export function scopeText(s: ConnectionScope): string {
  if (s.kind === 'global') return 'global';
  if (s.kind === 'region') return `region:${s.region}`;
  if (s.kind === 'tenant') return `tenant:${s.tenant}`;
  return `site:${s.tenant}/${s.site}`;
}

function checkScope(v: unknown): ConnectionScope {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw badScope('must be an object with kind');
  const o = v as Record<string, unknown>;
  const want: Record<ScopeKind, string[]> = {
    global: [],
    region: ['region'],
    tenant: ['tenant'],
    site: ['tenant', 'site'],
  };
  const kind = o.kind as ScopeKind;
  if (!Object.hasOwn(want, kind)) throw badScope(`kind must be one of ${SCOPE_KINDS.join(', ')}`);
  for (const k of Object.keys(o)) if (k !== 'kind' && !want[kind].includes(k)) throw badScope(`${kind} takes no ${k}`);
  for (const k of want[kind])
    if (typeof o[k] !== 'string' || !NAME.test(o[k] as string)) throw badScope(`${kind} needs ${k}, a name`);
  return parseScope(kind === 'global' ? 'global' : `${kind}:${want[kind].map((k) => o[k]).join('/')}`);
}

/**
 * The body of a connection item, checked whole (type, fields with their defaults, scope, sealed copies), or a 400
 * naming the field. A body with sealed copies is a connection with a secret; its fields must want one.
 */
export function parseConnectionBody(text: string): ConnectionContentBody {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad('', 'is not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('', 'must be a JSON object');
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!['type', 'fields', 'scope', 'sealed'].includes(k))
      throw bad(k, 'is not a field (type, fields, scope, sealed)');
  const type = checkConnectionType(o.type);
  if (typeof o.fields !== 'object' || o.fields === null || Array.isArray(o.fields))
    throw bad('fields', 'must be an object');
  const scope = checkScope(o.scope);
  let sealed: Record<string, string> | undefined;
  if (o.sealed !== undefined) {
    if (typeof o.sealed !== 'object' || o.sealed === null || Array.isArray(o.sealed))
      throw bad('sealed', 'must be an object of tenant → sealed secret');
    sealed = {};
    for (const [t, v] of Object.entries(o.sealed)) {
      if (!NAME.test(t) || typeof v !== 'string' || !v.startsWith('v1.') || v.length > 64 * 1024)
        throw bad(`sealed.${t}`, 'must be a sealed secret (v1.…) keyed by a tenant name');
      sealed[t] = v;
    }
  }
  const fields = checkConnection(type, o.fields as Record<string, unknown>, sealed !== undefined);
  return { type, fields, scope, ...(sealed ? { sealed } : {}) };
}

/** Whether a scope reaches this tenant (a site's scope reaches its tenant; which site applies is the tenant's call). */
export function scopeReaches(s: ConnectionScope, t: TenantPlace): boolean {
  if (s.kind === 'global') return true;
  if (s.kind === 'region') return t.region !== null && s.region === t.region;
  return s.tenant === t.name;
}

/**
 * What one tenant is sent of a connection body: only its own sealed copy. `missing` when the connection has a
 * secret but none was sealed for this tenant (it joined the scope after the secret was sealed).
 */
export function bodyForTenant(
  b: ConnectionContentBody,
  tenant: string,
): { body: ConnectionContentBody } | { missing: true } {
  if (!b.sealed) return { body: { type: b.type, fields: b.fields, scope: b.scope } };
  const own = Object.hasOwn(b.sealed, tenant) ? b.sealed[tenant] : undefined;
  if (own === undefined) return { missing: true };
  return { body: { type: b.type, fields: b.fields, scope: b.scope, sealed: { [tenant]: own } } };
}
