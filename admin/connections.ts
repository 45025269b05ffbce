/**
 * CLI verbs for a tenant's connections: `connections create|list|show|update|remove NAME --tenant T`.
 * Settings are checked here with the tenant's own rules (common/connections.ts) before anything is sent, so a
 * bad one exits 2 naming it and changes nothing. A secret is read from a file or stdin (never argv: `ps` shows
 * it) and sealed here to the tenant's public key (common/sealed-secret.ts): main and the host relay only
 * ciphertext. Not the tenant's API: agent/tenant/connection-routes.ts.
 */
import type { Command } from 'commander';
import { closeSync, openSync, readSync } from 'node:fs';
import { adminClient, withClientOptions, type AdminClient, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { AccessDeniedError, BadParameterError, isPalisadeError } from '#common/errors.js';
import { checkName } from '#common/names.js';
import {
  CONNECTION_TYPES,
  MAX_SECRET_BYTES,
  checkConnection,
  checkConnectionType,
  checkSecret,
  checkSettingName,
  parseSetting,
  type ConnectionType,
  type ConnectionView,
  type SettingValue,
} from '#common/connections.js';
import { sealSecretFor } from '#common/sealed-secret.js';
import { registerConnectionAuthoring } from './connection-authoring.js';

export type SecretOpts = { secretFile?: string; secretStdin?: boolean; clearSecret?: boolean };
type Opts = Common & SecretOpts & { tenant: string; set: string[]; unset?: string[] };

const collect = (v: string, prev: string[]) => [...prev, v];
const at = (tenant: string, rest = '') => `/tenants/${checkName(tenant, 'tenant')}/api/connections${rest}`;
const named = (tenant: string, name: string) => at(tenant, `/${encodeURIComponent(name)}`);

/** `--set key=value …` as typed settings of `type`, or exit 2 naming the first bad one. */
export function settingsOf(type: ConnectionType, pairs: string[]): Record<string, SettingValue> {
  const out: Record<string, SettingValue> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq <= 0)
      throw new BadParameterError('ERR_CONNECTION_SETTING', `--set ${p}: expected key=value`, { field: 'set' });
    out[p.slice(0, eq)] = parseSetting(type, p.slice(0, eq), p.slice(eq + 1));
  }
  return out;
}

/** Up to MAX_SECRET_BYTES + 1 bytes of a file or stdin: enough to tell "too large" (and /dev/zero ends). */
function readBounded(fd: number): Buffer {
  const buf = Buffer.alloc(MAX_SECRET_BYTES + 1);
  let n = 0;
  for (;;) {
    let got: number;
    try {
      got = readSync(fd, buf, n, buf.length - n, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue; // a non-blocking stdin pipe not yet written
      throw e;
    }
    if (got === 0 || (n += got) === buf.length) return buf.subarray(0, n);
  }
}

/** The secret from --secret-file or --secret-stdin (one trailing newline dropped), or undefined. */
export function readSecret(o: SecretOpts): string | undefined {
  const given = [o.secretFile !== undefined, o.secretStdin, o.clearSecret].filter(Boolean).length;
  if (given > 1)
    throw new BadParameterError(
      'ERR_CONNECTION_SECRET',
      'secret: give one of --secret-file, --secret-stdin, --clear-secret',
      {
        field: 'secret',
      },
    );
  if (o.secretFile === undefined && !o.secretStdin) return undefined;
  let raw: Buffer;
  try {
    const fd = o.secretStdin ? 0 : openSync(o.secretFile!, 'r');
    try {
      raw = readBounded(fd);
    } finally {
      if (fd !== 0) closeSync(fd);
    }
  } catch (e) {
    const where = o.secretStdin ? '--secret-stdin' : `--secret-file ${o.secretFile}`;
    throw new BadParameterError(
      'ERR_CLI_SECRET_FILE',
      `${where}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      {
        field: 'secret',
      },
    );
  }
  return checkSecret(raw.toString('utf8').replace(/\r?\n$/, ''));
}

/**
 * The secret sealed to the tenant's key. The key is main's record of the tenant where the caller may read it: the
 * tenant's own answer comes through its host, which a secret must not have to trust. A caller of the tenant only
 * (a customer's key holds no `tenants:read` on main) gets the tenant's answer, checked against main's when both come.
 */
async function sealed(c: AdminClient, tenant: string, name: string, secret: string): Promise<string> {
  const t = checkName(tenant, 'tenant');
  const fromMain = await c
    .request<{ publicKey?: string }>('GET', `/tenants/${t}`)
    .then((r) => r.publicKey)
    .catch((e: unknown) => {
      if (isPalisadeError(e) && ['access-denied', 'not-found'].includes(e.category)) return undefined;
      throw e;
    });
  const fromTenant = (await c.request<{ publicKey?: string }>('GET', `/tenants/${t}/api/info`)).publicKey;
  if (fromMain && fromTenant !== fromMain)
    throw new AccessDeniedError(
      'ERR_CONNECTION_TENANT_KEY',
      `the key tenant ${t} answered with is not main's record of it: the secret was not sent`,
    );
  return sealSecretFor(fromMain ?? fromTenant ?? '', tenant, name, secret);
}

const summary = (c: ConnectionView, done: string, tenant: string) =>
  `connection ${c.name} (${c.type}) ${done} in tenant ${tenant}: settings ${Object.keys(c.settings).join(', ') || 'none'}, ${c.hasSecret ? 'secret set' : 'no secret'}`;

/** `connections show` for a person: what it is, each setting on a line, the secret's presence, who changed it last. */
function showLines(c: ConnectionView): string[] {
  const width = Math.max(0, ...Object.keys(c.settings).map((k) => k.length));
  return [
    `connection ${c.name} (${c.type}), ${c.hasSecret ? 'secret set' : 'no secret'}`,
    ...Object.entries(c.settings).map(
      ([k, v]) => `  ${k.padEnd(width)}  ${typeof v === 'string' ? v : JSON.stringify(v)}`,
    ),
    `updated ${c.updatedAt} by ${c.updatedBy} (created ${c.createdAt} by ${c.createdBy})`,
  ];
}

export function registerConnectionCommands(program: Command): void {
  const conn = program
    .command('connections')
    .description("a tenant's connections: credentials and settings for AWS or an HTTP service (secrets write-only)");
  const base = (cmd: Command) =>
    withClientOptions(cmd).requiredOption('--tenant <tenant>', 'the tenant whose connection it is');
  const secretFlags = (cmd: Command) =>
    cmd
      .option('--secret-file <file>', 'read the secret from this file (one trailing newline dropped)')
      .option('--secret-stdin', 'read the secret from stdin');

  secretFlags(
    base(conn.command('create <name>').description('create a connection; its secret is sealed to the tenant'))
      .requiredOption('--type <type>', CONNECTION_TYPES.join(' or '))
      .option('--set <key=value>', 'a setting (repeatable), e.g. region=eu-west-1', collect, []),
  ).action((name: string, o: Opts & { type: string }) => runAction(o, () => create(checkName(name), o)));

  base(conn.command('list').description('list connections (never their secrets)')).action((o: Opts) =>
    runAction(o, async () => {
      const rows = await adminClient(o).request<ConnectionView[]>('GET', at(o.tenant));
      printResult(rows, o, () =>
        table(
          rows.map((r) => ({ ...r, secret: r.hasSecret ? 'set' : '-' })),
          ['name', 'type', 'secret', 'updatedAt', 'updatedBy'],
        ),
      );
    }),
  );

  base(conn.command('show <name>').description('one connection: settings and whether it has a secret')).action(
    (name: string, o: Opts) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<ConnectionView>('GET', named(o.tenant, checkName(name)));
        printResult(r, o, () => showLines(r));
      }),
  );

  secretFlags(
    base(conn.command('update <name>').description('set or unset settings, replace or clear the secret'))
      .option('--set <key=value>', 'a setting to set (repeatable)', collect, [])
      .option('--unset <key>', 'a setting to remove (repeatable)', collect, [])
      .option('--clear-secret', 'remove the secret'),
  ).action((name: string, o: Opts) => runAction(o, () => update(checkName(name), o)));

  base(conn.command('remove <name>').description('delete a connection and its secret')).action(
    (name: string, o: Opts) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<{ name: string }>('DELETE', named(o.tenant, checkName(name)));
        printResult(r, o, () => `connection ${r.name} removed from tenant ${o.tenant}`);
      }),
  );
  registerConnectionAuthoring(conn, base, secretFlags);
}

async function create(name: string, o: Opts & { type: string }): Promise<void> {
  const type = checkConnectionType(o.type);
  const settings = settingsOf(type, o.set);
  const secret = readSecret(o);
  checkConnection(type, settings, secret !== undefined);
  const c = adminClient(o);
  const body = {
    name,
    type,
    settings,
    ...(secret !== undefined ? { sealedSecret: await sealed(c, o.tenant, name, secret) } : {}),
  };
  const r = await c.request<ConnectionView>('POST', at(o.tenant), body);
  printResult(r, o, () => summary(r, 'created', o.tenant));
}

async function update(name: string, o: Opts): Promise<void> {
  const secret = readSecret(o);
  if (!o.set.length && !o.unset?.length && secret === undefined && !o.clearSecret)
    throw new BadParameterError(
      'ERR_CLI_NOTHING',
      'give at least one of --set, --unset, --secret-file, --secret-stdin, --clear-secret',
      {
        field: 'set',
      },
    );
  const c = adminClient(o);
  // The type decides each setting's form; the tenant checks the whole once merged.
  const cur = await c.request<ConnectionView>('GET', named(o.tenant, name));
  const settings = settingsOf(cur.type, o.set);
  for (const k of o.unset ?? []) checkSettingName(cur.type, k);
  const body = {
    ...(o.set.length ? { settings } : {}),
    ...(o.unset?.length ? { unset: o.unset } : {}),
    ...(secret !== undefined ? { sealedSecret: await sealed(c, o.tenant, name, secret) } : {}),
    ...(o.clearSecret ? { clearSecret: true } : {}),
  };
  const r = await c.request<ConnectionView>('PATCH', named(o.tenant, name), body);
  printResult(r, o, () => summary(r, 'updated', o.tenant));
}
