/**
 * Security profiles and obfuscation end to end with real processes (main, host h1, tenant ds) through the CLI and
 * main's relay: `profiles create|list|remove` (items with id and name; bad input exits 2 and changes nothing),
 * `users create … --tenant T --profile P` on main puts the profile in the claim main signs, so the tenant limits
 * that customer user's incidents to the profile's domains; `obfuscation create --json` answers the key once and
 * `obfuscation list` never shows it; `events search --reveal-key-file F` sends it and refuses a file that holds no key.
 * A correlation rule (content type `rule`) authored on main is refused at publish when its body does not check, and
 * reaches the tenant when shared. The per-route matrix and the store scan are test/integration/profiles.test.ts and
 * obfuscation.test.ts. Last, syslog through a real engine: the same source address in two domains gives two
 * incidents, and a profiled customer user sees only its domain's incident and events.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSocket } from 'node:dgram';
import { Deployment } from '../harness/deployment.js';
import { freePort, until } from '../harness/processes.js';
import type { CliResult } from '../harness/processes.js';

let d: Deployment;
let dir: string;
const cli = (...args: string[]): Promise<CliResult> => d.cli([...args, '--json']);
type Items<T> = { items: T[] };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'e3-'));
  d = await Deployment.create();
  await d.install('host', 'h1');
  await d.startAgent('h1');
  await d.createTenant('ds', 'h1', { labels: ['all'] });
  await d.tenantRunning('ds');
  for (const name of ['A', 'B']) expect((await cli('domains', 'create', name, '--tenant', 'ds')).code).toBe(0);
}, 180_000);
afterAll(async () => {
  await d?.stop();
  await rm(dir, { recursive: true, force: true });
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('security profiles through the CLI and the relay', () => {
  it('creates, lists and removes profiles; bad input exits 2 and changes nothing', async () => {
    const made = await cli('profiles', 'create', 'pa', '--tenant', 'ds', '--domains', 'A');
    expect(made.code, made.stdout + made.stderr).toBe(0);
    expect(made.json).toMatchObject({ name: 'pa', domains: ['A'] });
    expect((await cli('profiles', 'create', 'pdef', '--tenant', 'ds', '--domains', 'Default Domain,A')).code).toBe(0);
    expect((await cli('profiles', 'create', 'bad name!', '--tenant', 'ds', '--domains', 'A')).code).toBe(2);
    expect((await cli('profiles', 'create', 'px', '--tenant', 'ds', '--domains', '')).code).toBe(2);
    const missing = await cli('profiles', 'create', 'px', '--tenant', 'ds', '--domains', 'Nope');
    expect(missing.code).not.toBe(0);
    const list = (await cli('profiles', 'list', '--tenant', 'ds')).json as Items<{ id: string; name: string }>;
    expect(list.items.map((p) => p.name)).toEqual(['pa', 'pdef']);
    expect(list.items.every((p) => /^prf_/.test(p.id))).toBe(true);
    const other = await d.api<Items<unknown>>('GET', '/tenants/ds/api/profiles');
    expect(other.body.items).toHaveLength(2);
  });

  it('limits a profiled customer user of main to its domains on the tenant', async () => {
    for (const name of ['i-default-1', 'i-default-2'])
      expect((await d.api('POST', '/tenants/ds/api/incidents', { name, type: 'Phishing', severity: 2 })).status).toBe(
        201,
      );
    const made = await cli('users', 'create', 'cust-a', '--tenant', 'ds', '--roles', 'read-only', '--profile', 'pa');
    expect(made.code, made.stdout + made.stderr).toBe(0);
    expect(made.json).toMatchObject({ name: 'cust-a', tenant: 'ds', profile: 'pa' });
    // A profile the tenant does not hold (a typo) is refused: the user would see nothing, with nothing said.
    const typo = await cli('users', 'create', 'cust-typo', '--tenant', 'ds', '--roles', 'read-only', '--profile', 'pz');
    expect([typo.code, typo.stdout + typo.stderr]).toEqual([2, expect.stringMatching(/ERR_PROFILE_NOT_FOUND.*pz/)]);
    expect(((await cli('users', 'list')).json as { name: string }[]).map((u) => u.name)).not.toContain('cust-typo');
    // A profile belongs to a customer user: staff with one is refused, naming the field.
    const staff = await d.api<{ error: { message: string } }>('POST', '/users', {
      name: 'staff-p',
      roles: ['viewer'],
      profile: 'pa',
    });
    expect(staff.status).toBe(400);
    expect(staff.body.error.message).toMatch(/^profile: /);
    const asA = await d.createKey((made.json as { id: string }).id);
    const u2 = await d.createUser({ name: 'cust-def', tenant: 'ds', roles: ['read-only'], profile: 'pdef' });
    const asDef = await d.createKey(u2.id);
    type Inc = { id: string; name: string };
    const incidents = async (key?: string) =>
      d.api<Items<Inc>>('GET', '/tenants/ds/api/incidents', undefined, key ? { key } : undefined);
    const all = await incidents();
    expect(all.body.items.map((i) => i.name).sort()).toEqual(['i-default-1', 'i-default-2']);
    const a = await incidents(asA);
    expect(a.status).toBe(200);
    expect(a.body.items).toEqual([]); // hand-made incidents are the Default Domain's, outside profile pa
    expect(
      (await d.api('GET', `/tenants/ds/api/incidents/${all.body.items[0].id}`, undefined, { key: asA })).status,
    ).toBe(404);
    expect((await incidents(asDef)).body.items).toHaveLength(2);
    // Main's search reaches their own tenant only, which answers with their identity: the profile applies there too.
    const searched = await d.api<Items<Inc>>('GET', '/search/incidents', undefined, { key: asA });
    expect(searched.status).toBe(200);
    expect(searched.body.items).toEqual([]);
    expect((await d.api<Items<Inc>>('GET', '/search/incidents', undefined, { key: asDef })).body.items).toHaveLength(2);
    const elsewhere = await d.api('GET', '/search/incidents?tenants=nope', undefined, { key: asA });
    expect(elsewhere.status).toBeGreaterThanOrEqual(400);
    expect((await cli('profiles', 'remove', 'pa', '--tenant', 'ds')).code).toBe(0); // main's users are not the tenant's
    expect((await incidents(asA)).body.items).toEqual([]); // and a profile the tenant no longer holds grants nothing
  });
});

describe('obfuscation through the CLI', () => {
  it('prints the key once, never lists it, and reveals with a key file', async () => {
    const made = await cli('obfuscation', 'create', 'users', '--tenant', 'ds', '--field', 'username');
    expect(made.code, made.stdout + made.stderr).toBe(0);
    const key = (made.json as { key: string }).key;
    expect(Buffer.from(key, 'base64')).toHaveLength(32);
    const list = await cli('obfuscation', 'list', '--tenant', 'ds');
    expect((list.json as Items<{ name: string }>).items.map((r) => r.name)).toEqual(['users']);
    expect(list.stdout).not.toContain(key);
    expect((await cli('obfuscation', 'create', 'x', '--tenant', 'ds')).code).toBe(2);
    expect((await cli('obfuscation', 'create', 'x', '--tenant', 'ds', '--field', 'u', '--regex', 'a')).code).toBe(2);
    const typo = await cli('obfuscation', 'create', 'x', '--tenant', 'ds', '--field', 'usernme');
    expect(typo.code, typo.stdout + typo.stderr).toBe(2); // a field it cannot act on would seal nothing
    expect((typo.json as { error: { message: string } }).error.message).toMatch(/^field: "usernme" is no field /);
    const file = join(dir, 'users.key');
    await writeFile(file, `${key}\n`, { mode: 0o600 });
    const shown = await cli('events', 'search', '--tenant', 'ds', '--reveal-key-file', file);
    expect(shown.code, shown.stdout + shown.stderr).toBe(0);
    expect(shown.json).toMatchObject({ items: [], revealed: 'users' });
    await writeFile(join(dir, 'bad.key'), 'not a key');
    expect((await cli('events', 'search', '--tenant', 'ds', '--reveal-key-file', join(dir, 'bad.key'))).code).toBe(2);
    const wrong = join(dir, 'wrong.key');
    await writeFile(wrong, Buffer.alloc(32, 9).toString('base64'));
    expect((await cli('events', 'search', '--tenant', 'ds', '--reveal-key-file', wrong)).code).toBe(2);
    const logs = d.logs();
    expect(logs).not.toContain(key);
  });
});

describe('correlation rules authored on main', () => {
  const RULE = {
    match: { q: 'failed password' },
    count: 5,
    within: '5m',
    by: 'sourceAddress',
    incident: { name: 'SSH brute force', type: 'Brute Force', severity: 3 },
  };
  it('refuses a bad body at publish naming the field, and shares a good one to the tenant', async () => {
    const bad = await cli(
      'content',
      'create',
      '--type',
      'rule',
      '--name',
      'bad',
      '--body',
      JSON.stringify({ ...RULE, within: 'soon' }),
    );
    expect(bad.code, bad.stdout + bad.stderr).toBe(0); // drafts are text
    const refused = await d.api<{ error: { code: string; message: string } }>(
      'POST',
      `/content/${(bad.json as { id: string }).id}/publish`,
      {},
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe('ERR_CORRELATION_RULE_INVALID');
    expect(refused.body.error.message).toMatch(/^within: /);
    const made = await cli(
      'content',
      'create',
      '--type',
      'rule',
      '--name',
      'ssh',
      '--labels',
      'all',
      '--body',
      JSON.stringify(RULE),
    );
    const id = (made.json as { id: string }).id;
    expect((await cli('content', 'publish', id)).code).toBe(0);
    expect((await cli('content', 'share', id)).code).toBe(0);
    let shared = false;
    for (let i = 0; i < 100 && !shared; i++) {
      const r = await d.api<{ id: string; type: string }[]>('GET', '/tenants/ds/api/content?type=rule');
      shared = r.status === 200 && r.body.some((x) => x.id === id && x.type === 'rule');
      if (!shared) await new Promise((res) => setTimeout(res, 200));
    }
    expect(shared).toBe(true);
  });
});

describe('syslog through an engine, correlated per domain', () => {
  it('gives two incidents for one address in two domains; a profiled user sees its own only', async () => {
    const port = await freePort();
    await d.startEngine('e3eng', 'ds', { flags: ['--syslog', `udp:127.0.0.1:${port}`] });
    expect((await cli('properties', 'create', 'cust', '--tenant', 'ds', '--regex', 'cust=(\\w+)')).code).toBe(0);
    for (const [dom, value] of [
      ['A', 'cust=a'],
      ['B', 'cust=b'],
    ])
      expect((await cli('domains', 'map', dom, '--tenant', 'ds', '--property', value)).code).toBe(0);
    const sock = createSocket('udp4');
    const send = (m: string) =>
      new Promise<void>((res, rej) => sock.send(m, port, '127.0.0.1', (e) => (e ? rej(e) : res())));
    for (let i = 0; i < 5; i++)
      for (const c of ['a', 'b'])
        await send(`<38>Dec  6 23:26:15 web1 sshd: Failed password cust=${c} src=192.168.2.1`);
    sock.close();
    type Inc = { id: string; domain?: string; labels?: Record<string, string> };
    const incs = await until('two correlated incidents', async () => {
      const r = await d.api<Items<Inc>>('GET', '/tenants/ds/api/incidents');
      const c = r.body.items.filter((i) => i.labels?.correlationRule);
      return c.length >= 2 && c;
    });
    expect(incs.map((i) => i.domain).sort()).toEqual(['A', 'B']);
    expect(incs.every((i) => i.labels?.sourceAddress === '192.168.2.1')).toBe(true);
    expect((await cli('profiles', 'create', 'only-b', '--tenant', 'ds', '--domains', 'B')).code).toBe(0);
    const u = await d.createUser({ name: 'cust-b', tenant: 'ds', roles: ['read-only'], profile: 'only-b' });
    const key = await d.createKey(u.id);
    const mine = await d.api<Items<Inc>>('GET', '/tenants/ds/api/incidents', undefined, { key });
    expect(mine.body.items.map((i) => i.domain)).toEqual(['B']);
    const ev = await d.api<Items<{ domain: string }>>('GET', '/tenants/ds/api/events?q=192.168.2.1', undefined, {
      key,
    });
    expect(ev.body.items).toHaveLength(5);
    expect(ev.body.items.every((e) => e.domain === 'B')).toBe(true);
    // Through main's cross-tenant search too: only its domain's events and incident.
    const viaMain = await d.api<Items<{ tenant: string; domain: string }>>(
      'GET',
      '/search/events?q=192.168.2.1',
      undefined,
      { key },
    );
    expect(viaMain.status).toBe(200);
    expect(viaMain.body.items).toHaveLength(5);
    expect(viaMain.body.items.every((e) => e.domain === 'B' && e.tenant === 'ds')).toBe(true);
    const incViaMain = await d.api<Items<Inc>>('GET', '/search/incidents', undefined, { key });
    expect(incViaMain.body.items.filter((i) => i.labels?.correlationRule).map((i) => i.domain)).toEqual(['B']);
    const other = incs.find((i) => i.domain === 'A')!;
    expect((await d.api('GET', `/tenants/ds/api/incidents/${other.id}`, undefined, { key })).status).toBe(404);
  });
});
