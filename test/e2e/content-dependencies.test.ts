/**
 * Playbook dependencies end to end (docs/content.md#dependencies) with a real main, one host and two tenants
 * (emea-a labelled emea, apac-a labelled apac): sharing a playbook that uses a script and a sub-playbook puts all
 * three on the emea tenant and none on the other, and status lists them there; a playbook whose script is not
 * published is held back and status names the script (rollup Incomplete) until it is published and shared again;
 * a new script version reaches the tenant on the next share of the playbook or of the script; a tenant stopped
 * during the push shows the script missing and catches up when it is started; a name two scripts share is refused
 * at publish (and, become so later, named as a problem at the next share); un-sharing the playbook takes what it
 * took along.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Deployment } from '../harness/deployment.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import { until } from '../harness/processes.js';
import type { Item, Status, TenantItem } from './content-fixtures.js';

let d: Deployment;

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'h1');
  await d.startAgent('h1');
  await d.createTenant('emea-a', 'h1', { labels: ['emea'] });
  await d.createTenant('apac-a', 'h1', { labels: ['apac'] });
}, 180_000);
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

async function create(type: string, name: string, body: string, publish = true): Promise<Item> {
  const r = await d.api<Item>('POST', '/content', { type, name, body, labels: ['emea'] });
  if (r.status !== 201) throw new Error(`create ${name}: ${r.status} ${r.raw}`);
  if (publish) await publishOk(r.body.id);
  return r.body;
}
async function publishOk(id: string): Promise<void> {
  const p = await d.api('POST', `/content/${id}/publish`);
  if (p.status !== 200) throw new Error(`publish ${id}: ${p.status} ${p.raw}`);
}
async function share(id: string): Promise<Status> {
  const r = await d.api<Status>('POST', `/content/${id}/share`);
  if (r.status !== 200) throw new Error(`share ${id}: ${r.status} ${r.raw}`);
  return r.body;
}
async function held(tenant: string): Promise<Map<string, TenantItem>> {
  const r = await d.api<TenantItem[]>('GET', `/tenants/${tenant}/api/content`);
  if (r.status !== 200) throw new Error(`content of ${tenant}: ${r.status} ${r.raw}`);
  return new Map(r.body.map((i) => [i.name, i]));
}
const row = (s: Status, tenant: string) => s.tenants.find((t) => t.tenant === tenant)!;

/** A playbook that runs the script `script`, then the sub-playbook `sub` when given. */
const user = (name: string, script: string, sub?: string) =>
  `name: ${name}\nstart: enrich\ntasks:\n  enrich: {type: script, script: ${script}${sub ? ', next: contain' : ''}}\n` +
  (sub ? `  contain: {type: playbook, playbook: ${sub}}\n` : '');
const manual = (name: string) => `name: ${name}\nstart: ask\ntasks:\n  ask: {type: manual, prompt: contain it}\n`;

let triage: Item, enrich: Item, contain: Item;

describe('dependencies travel with a shared playbook', () => {
  it('sharing a playbook puts it, its script and its sub-playbook on the tenant, and status lists them', async () => {
    enrich = await create('script', 'enrich', 'return 1;');
    contain = await create('playbook', 'contain', manual('contain'));
    triage = await create('playbook', 'triage', user('triage', 'enrich', contain.id));
    // The script and the sub-playbook are not shared themselves: only the playbook is.
    const s = await share(triage.id);
    expect(s.rollup).toBe('Successful');
    expect(row(s, 'emea-a')).toMatchObject({ state: 'shared', version: 1, reason: null });
    expect(row(s, 'emea-a').dependencies).toEqual([
      { id: enrich.id, type: 'script', name: 'enrich', version: 1, held: 1, present: true },
      { id: contain.id, type: 'playbook', name: 'contain', version: 1, held: 1, present: true },
    ]);
    expect(row(s, 'apac-a')).toMatchObject({ state: 'not-shared', dependencies: [] });
    const emea = await held('emea-a');
    expect([...emea.values()].filter((i) => i.shared).map((i) => [i.name, i.type, i.version])).toEqual(
      expect.arrayContaining([
        ['enrich', 'script', 1],
        ['contain', 'playbook', 1],
        ['triage', 'playbook', 1],
      ]),
    );
    expect([...(await held('apac-a')).keys()]).not.toContain('enrich');
    // The log says what travelled; each dependency's own log shows its push, made before the playbook's.
    const log = s.log.find((l) => l.action === 'share')!;
    expect(log.reason).toContain(`with script "enrich" v1, playbook "contain" v1`);
    const scriptStatus = (await d.api<Status>('GET', `/content/${enrich.id}/status`)).body;
    expect(row(scriptStatus, 'emea-a')).toMatchObject({ state: 'shared', version: 1 });
    const pushedAt = (st: Status) => st.log.find((l) => l.action === 'push' && l.tenant === 'emea-a')!.at;
    expect(pushedAt(scriptStatus) <= pushedAt(s)).toBe(true);
  });

  it('a script with no published version holds the playbook back: status names it, rollup Incomplete', async () => {
    const notify = await create('script', 'notify', 'return 2;', false);
    const escalate = await create('playbook', 'escalate', user('escalate', 'notify'));
    const s = await share(escalate.id);
    expect(s.rollup).toBe('Incomplete');
    expect(s.problems).toEqual([
      'missing dependency script "notify" (task enrich of playbook "escalate"): it has no published version',
    ]);
    expect(row(s, 'emea-a')).toMatchObject({ state: 'failed', version: null });
    expect(row(s, 'emea-a').reason).toContain('missing dependency script "notify"');
    expect(row(s, 'apac-a').state).toBe('not-shared');
    expect((await held('emea-a')).has('escalate')).toBe(false);
    const cli = await d.cli(['content', 'status', escalate.id]);
    expect(cli.stdout).toContain('problem: missing dependency script "notify"');
    // Published and shared again: both arrive, script first.
    await publishOk(notify.id);
    const again = await share(escalate.id);
    expect(again.rollup).toBe('Successful');
    expect(row(again, 'emea-a').dependencies).toMatchObject([{ name: 'notify', version: 1, present: true }]);
    const emea = await held('emea-a');
    expect(emea.get('escalate')?.version).toBe(1);
    expect(emea.get('notify')?.version).toBe(1);
  });

  it('a new script version reaches the tenant on the next share of the playbook, or of the script', async () => {
    expect((await d.api('PUT', `/content/${enrich.id}`, { body: 'return 3;' })).status).toBe(200);
    await publishOk(enrich.id);
    expect((await held('emea-a')).get('enrich')?.version).toBe(1); // publishing alone pushes nothing
    const s = await share(triage.id);
    expect(s.rollup).toBe('Successful');
    expect(row(s, 'emea-a').dependencies![0]).toMatchObject({ name: 'enrich', version: 2, held: 2, present: true });
    const got = (await held('emea-a')).get('enrich');
    expect(got).toMatchObject({ version: 2, body: 'return 3;', shared: true });

    // Sharing the script itself also reaches the tenants holding playbooks that use it, whatever its own labels.
    expect((await d.api('PUT', `/content/${enrich.id}`, { body: 'return 5;', labels: [] })).status).toBe(200);
    await publishOk(enrich.id);
    const own = await share(enrich.id);
    expect(own.log.find((l) => l.action === 'share' && l.version === 3)?.reason).toBe(
      'no tenant has label (none); to emea-a, whose shared playbooks use it',
    );
    expect(own.rollup).toBe('Successful');
    expect(row(own, 'emea-a')).toMatchObject({ state: 'shared', version: 3 });
    expect(row(own, 'apac-a').state).toBe('not-shared');
    expect((await held('emea-a')).get('enrich')).toMatchObject({ version: 3, body: 'return 5;' });
    const after = (await d.api<Status>('GET', `/content/${triage.id}/status`)).body;
    expect(row(after, 'emea-a').dependencies![0]).toMatchObject({ name: 'enrich', version: 2, held: 3, present: true });
    const cli = await d.cli(['content', 'status', triage.id]);
    expect(cli.stdout).toContain('emea-a: script "enrich" v2 present (tenant holds v3)');
  });

  it('a tenant stopped during the dependency push shows it missing (Incomplete) and catches up when started', async () => {
    expect((await d.api('POST', '/tenants/emea-a/stop', {})).status).toBe(200);
    expect((await d.api('PUT', `/content/${enrich.id}`, { body: 'return 6;' })).status).toBe(200);
    await publishOk(enrich.id);
    const s = await share(triage.id);
    expect(s.rollup).toBe('Incomplete');
    // It keeps the playbook it had; the new script version is what is missing there.
    expect(row(s, 'emea-a')).toMatchObject({ state: 'shared', version: 1 });
    expect(row(s, 'emea-a').reason).toContain('missing dependency script "enrich" v4 (holds v3)');
    expect(row(s, 'emea-a').dependencies![0]).toMatchObject({ name: 'enrich', version: 4, held: 3, present: false });
    expect((await d.api('POST', '/tenants/emea-a/start', {})).status).toBe(200);
    await until(
      'emea-a catches up with the script',
      async () => (await d.api<Status>('GET', `/content/${triage.id}/status`)).body.rollup === 'Successful',
      60_000,
    );
    expect((await held('emea-a')).get('enrich')).toMatchObject({ version: 4, body: 'return 6;' });
  });

  it('refuses at publish a playbook naming a script two library items share', async () => {
    await create('script', 'enrich', 'return 4;');
    const p = await create('playbook', 'twice', user('twice', 'enrich'), false);
    const r = await d.api<ErrorBody>('POST', `/content/${p.id}/publish`);
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('ERR_PLAYBOOK_DEPENDENCY');
    expect(r.body.error.message).toMatch(/^tasks\.enrich\.script: 2 scripts are named "enrich" in the library/);
    // By id it publishes.
    expect((await d.api('PUT', `/content/${p.id}`, { body: user('twice', enrich.id) })).status).toBe(200);
    expect((await d.api('POST', `/content/${p.id}/publish`)).status).toBe(200);
    // A playbook published before the name became ambiguous names it as a problem at its next share.
    const s = await share(triage.id);
    expect(s.rollup).toBe('Incomplete');
    expect(s.problems![0]).toMatch(
      /^ambiguous dependency script "enrich" \(task enrich of playbook "triage"\): 2 scripts/,
    );
    expect(row(s, 'emea-a').reason).toContain('ambiguous dependency script "enrich"');
  });

  it('un-sharing the playbook takes away what it took along', async () => {
    const r = await d.api<Status>('DELETE', `/content/${triage.id}/share`);
    expect(r.status).toBe(200);
    const emea = await held('emea-a');
    expect(emea.has('triage')).toBe(false);
    expect(emea.has('contain')).toBe(false);
    expect(emea.get('enrich')).toBeUndefined();
    expect(emea.has('escalate')).toBe(true); // still shared, with its own script
  });
});
