/**
 * CLI verbs for connections authored on main as content (docs/connections.md#scoped-connections):
 * `connections author NAME --type T --scope S --set k=v… [--secret-file F|--secret-stdin] [--update ID]` and
 * `connections resolve NAME --tenant T [--site S]`. `author` seals the secret here, once per tenant in the scope, to
 * each tenant's public key as main records it (so main and the hosts carry ciphertext only and each tenant can open
 * only its own copy), then creates the item (or a new version of `--update ID`), publishes and shares it. Re-sealing
 * for a tenant that joined the scope later is `author NAME --update ID --secret-stdin` again. Main refuses a scope
 * naming a tenant or site that does not exist (main/content/scope-places.ts) before anything is stored; what it only
 * warns of (a region no tenant has yet) is printed as `warning:` lines and answered in `warnings`.
 * Not the tenant's resolution: agent/tenant/connection-resolve.ts.
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type AdminClient, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { checkName } from '#common/names.js';
import { checkConnection, checkConnectionType, type SettingValue } from '#common/connections.js';
import {
  parseConnectionBody,
  parseScope,
  scopeReaches,
  scopeText,
  sealedName,
  type ConnectionContentBody,
} from '#common/connection-content.js';
import { sealSecretFor } from '#common/sealed-secret.js';
import { readSecret, settingsOf, type SecretOpts } from './connections.js';

type AuthorOpts = Common &
  SecretOpts & { type?: string; scope?: string; set: string[]; update?: string; labels: string; share: boolean };
interface TenantRow {
  name: string;
  region: string | null;
  publicKey: string;
}
interface ItemView {
  id: string;
  name: string;
  version: number;
  versions?: { version: number; body: string }[];
}

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerConnectionAuthoring(
  conn: Command,
  base: (cmd: Command) => Command,
  secretFlags: (cmd: Command) => Command,
): void {
  secretFlags(
    withClientOptions(conn.command('author <name>'))
      .description('author a connection on main with a scope; its secret is sealed to each tenant in scope')
      .option('--type <type>', 'aws or http (with --update: the current one)')
      .option('--scope <scope>', 'global, region:R, tenant:T or site:T/S (with --update: the current one)')
      .option('--set <key=value>', 'a setting (repeatable; with --update: replaces all settings)', collect, [])
      .option('--update <id>', 'make a new version of this connection item (re-seal, re-scope)')
      .option('--labels <a,b>', 'propagation labels (scope narrows them)', 'all')
      .option('--no-share', 'create and publish only'),
  ).action((name: string, o: AuthorOpts) => runAction(o, () => author(checkName(name), o)));

  base(
    conn
      .command('resolve <name>')
      .description('which connection a call naming NAME (at a site) would use in a tenant, and why')
      .option('--site <site>', 'the site of the call (an incident at that site)'),
  ).action((name: string, o: Common & { tenant: string; site?: string }) =>
    runAction(o, async () => {
      const q = new URLSearchParams({ name: checkName(name), ...(o.site ? { site: checkName(o.site, 'site') } : {}) });
      const r = await adminClient(o).request<{
        chosen: { scope: string; source: string; contentId?: string; version?: number } | null;
        candidates: { scope: string; source: string; contentId?: string; valid: boolean; reason: string }[];
        reason: string;
      }>('GET', `/tenants/${checkName(o.tenant, 'tenant')}/api/connections/resolve?${q}`);
      printResult(r, o, () => [
        r.chosen
          ? `${name} in ${o.tenant}: ${r.chosen.scope} (${r.chosen.source}${r.chosen.contentId ? ` ${r.chosen.contentId} v${r.chosen.version}` : ''}): ${r.reason}`
          : `${name} in ${o.tenant}: none: ${r.reason}`,
        ...table(
          r.candidates.map((c) => ({ ...c, valid: c.valid ? 'yes' : 'no', id: c.contentId ?? '-' })),
          ['scope', 'source', 'id', 'valid', 'reason'],
        ),
      ]);
    }),
  );
}

/** The current body of an item being updated: its latest version's. */
async function current(c: AdminClient, id: string): Promise<{ item: ItemView; body: ConnectionContentBody }> {
  const item = await c.request<ItemView>('GET', `/content/${encodeURIComponent(id)}`);
  const latest = item.versions?.find((v) => v.version === item.version);
  return { item, body: parseConnectionBody(latest?.body ?? '') };
}

async function author(name: string, o: AuthorOpts): Promise<void> {
  const c = adminClient(o);
  const prev = o.update ? await current(c, o.update) : undefined;
  const typeText = o.type ?? prev?.body.type;
  if (!typeText) throw new BadParameterError('ERR_CONNECTION_TYPE', 'type: give --type aws|http', { field: 'type' });
  const type = checkConnectionType(typeText);
  const scope = o.scope ? parseScope(o.scope) : prev?.body.scope;
  if (!scope) throw new BadParameterError('ERR_CONNECTION_SCOPE', 'scope: give --scope', { field: 'scope' });
  const fields: Record<string, SettingValue> =
    o.set.length || !prev ? settingsOf(type, o.set) : { ...prev.body.fields };
  const secret = readSecret(o);
  // Without a new secret, an update keeps the sealed copies it had (only those of tenants still in scope travel).
  const keep = secret === undefined && prev?.body.sealed !== undefined;
  const checked = checkConnection(type, fields, secret !== undefined || keep);
  // Those copies are bound to where the secret goes (sealedName): moving it needs the secret given again.
  if (keep && sealedName(name, type, checked) !== sealedName(prev!.item.name, prev!.body.type, prev!.body.fields))
    throw new BadParameterError(
      'ERR_CONNECTION_SEALED',
      'secret: the type, name or destination settings change, so the secret must be sealed again: give ' +
        '--secret-stdin or --secret-file',
      { field: 'secret' },
    );
  let sealed: Record<string, string> | undefined = keep ? prev!.body.sealed : undefined;
  let tenants: string[] = [];
  if (secret !== undefined) {
    const all = await c.request<TenantRow[]>('GET', '/tenants');
    const inScope = all.filter((t) => scopeReaches(scope, { name: t.name, region: t.region ?? null }));
    sealed = Object.fromEntries(
      inScope.map((t) => [t.name, sealSecretFor(t.publicKey, t.name, sealedName(name, type, checked), secret)]),
    );
    tenants = inScope.map((t) => t.name);
  }
  const body = JSON.stringify({ type, fields, scope, ...(sealed ? { sealed } : {}) });
  parseConnectionBody(body);
  const labels = o.labels
    .split(',')
    .map((l) => l.trim())
    .filter(Boolean);
  const item = o.update
    ? await c.request<ItemView>('PUT', `/content/${encodeURIComponent(o.update)}`, { name, body, labels })
    : await c.request<ItemView>('POST', '/content', { type: 'connection', name, body, labels });
  // Main refuses a tenant or site it does not know (404 naming scope); a region no tenant has yet is only a warning.
  const published = await c.request<{ warnings?: string[] }>('POST', `/content/${item.id}/publish`);
  const status = o.share ? await c.request<{ rollup: string }>('POST', `/content/${item.id}/share`) : undefined;
  const out = {
    id: item.id,
    name,
    version: item.version,
    scope: scopeText(scope),
    sealedFor: secret !== undefined ? tenants : sealed ? Object.keys(sealed) : [],
    rollup: status?.rollup ?? null,
    warnings: published.warnings ?? [],
  };
  const sealedFor = out.sealedFor.length ? `sealed for ${out.sealedFor.join(', ')}` : 'no secret sealed';
  const shared = out.rollup === null ? 'not shared' : `shared: ${out.rollup}`;
  printResult(out, o, () => [
    `connection ${name} ${out.id} v${out.version} (${out.scope}) published, ${sealedFor}, ${shared}`,
    ...out.warnings.map((w) => `warning: ${w}`),
  ]);
}
