/**
 * The content rules of items of type `connection` (common/connection-content.ts and
 * docs/connections.md#scoped-connections): the item's name is the connection's name, so it must be one (checked at
 * create and rename); a version is published only when its body is a whole connection (type, fields, scope, sealed
 * copies), refused otherwise with a 400 naming the field. Drafts are free text, as for integrations. Also what a
 * share of one records (its scope) and what each tenant is sent of it (its own sealed copy only): propagation.ts
 * asks here.
 */
import { checkName } from '#common/names.js';
import { bodyForTenant, parseConnectionBody, scopeText, type ConnectionScope } from '#common/connection-content.js';
import type { ContentRules } from './library.js';

export const connectionRules: ContentRules = {
  async check(c, prev) {
    if ((prev?.type ?? c.type) === 'connection' && c.name !== undefined) checkName(c.name, 'name');
  },
  async publishing(item, body) {
    if (item.type === 'connection') parseConnectionBody(body);
  },
};

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
