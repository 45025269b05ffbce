/**
 * The content rules of items of type `connection` (common/connection-content.ts and
 * docs/connections.md#scoped-connections): the item's name is the connection's name, so it must be one (checked at
 * create and rename); a version is published only when its body is a whole connection (type, fields, scope, sealed
 * copies), refused otherwise with a 400 naming the field, and only when its scope names a tenant and site that exist
 * (scope-places.ts; also checked at create and edit when the draft is a whole connection). Drafts are free text, as
 * for integrations. Also what a share of one records (its scope) and what each tenant is sent of it (its own sealed
 * copy only): propagation.ts asks here.
 */
import { checkName } from '#common/names.js';
import {
  bodyForTenant,
  parseConnectionBody,
  scopeText,
  sealedName,
  type ConnectionContentBody,
  type ConnectionScope,
} from '#common/connection-content.js';
import { BadParameterError } from '#common/errors.js';
import { padId, type ContentItemRecord, type Registry } from '../registry.js';
import type { ContentRules } from './library.js';
import { checkScopePlaces, type ScopePlaces } from './scope-places.js';

export function connectionRules(registry: Registry, places: ScopePlaces): ContentRules {
  return {
    async check(c, prev) {
      if ((prev?.type ?? c.type) !== 'connection') return;
      if (c.name !== undefined) checkName(c.name, 'name');
      // A draft is free text; one that is a whole connection already is refused for an unknown tenant or site, so
      // the author learns it before anything is stored (no draft left behind that could never be published).
      let scope: ConnectionScope | undefined;
      try {
        scope = c.body === undefined ? undefined : parseConnectionBody(c.body).scope;
      } catch {
        return;
      }
      if (scope) await checkScopePlaces(scope, places);
    },
    async publishing(item, body) {
      if (item.type !== 'connection') return;
      const b = parseConnectionBody(body);
      if (b.sealed) await refuseMovedCopies(registry, item, b);
      return checkScopePlaces(b.scope, places);
    },
  };
}

/**
 * A version that keeps an earlier version's sealed copy while changing where the secret goes (type or destination
 * settings, common/connections.ts SEALED_DESTINATION) is refused: 400 naming `sealed`. Tenants would refuse to open it
 * anyway (the copy is bound to those settings); this says so at publish, before any tenant is sent it.
 */
async function refuseMovedCopies(registry: Registry, item: ContentItemRecord, b: ConnectionContentBody) {
  const copies = new Set(Object.values(b.sealed ?? {}));
  const binding = sealedName(item.name, b.type, b.fields);
  for (let v = 1; v < item.latest; v++) {
    const text = (await registry.contentVersions.get(`${item.id}!${padId(v)}`))?.body;
    let old: ConnectionContentBody;
    try {
      old = parseConnectionBody(text ?? '');
    } catch {
      continue; // a draft that was no connection sealed nothing
    }
    if (!Object.values(old.sealed ?? {}).some((c) => copies.has(c))) continue;
    if (sealedName(item.name, old.type, old.fields) !== binding)
      throw new BadParameterError(
        'ERR_CONNECTION_SEALED',
        `sealed: copies of version ${v} are sealed for other connection settings (type or destination changed); ` +
          `re-seal with 'palisade connections author ${item.name} --update ${item.id} --secret-stdin'`,
        { field: 'sealed' },
      );
  }
}

/** The scope a share of this published connection body records. */
export function connectionShareScope(body: string): ConnectionScope {
  return parseConnectionBody(body).scope;
}

/**
 * The body one tenant is pushed, or why it is not: a connection with a secret that was never sealed to this tenant
 * (it joined the scope later) must be re-sealed on main, since main cannot seal a secret it never holds in clear.
 */
export function connectionPushBody(
  name: string,
  contentId: string,
  body: string,
  tenant: string,
): { body: string } | { why: string } {
  const b = parseConnectionBody(body);
  const r = bodyForTenant(b, tenant);
  if ('missing' in r)
    return {
      why:
        `secret not sealed for this tenant; re-seal with 'palisade connections author ${name} --update ${contentId} ` +
        `--secret-stdin' (scope ${scopeText(b.scope)})`,
    };
  return { body: JSON.stringify(r.body) };
}
