/**
 * Content library and propagation end to end: a real main, two host agents and
 * three tenants (emea-a and apac-a on h1, emea-b on h2). Sharing to label `emea` reaches exactly the
 * emea tenants; edit + publish makes them out-of-date until reshared; a tenant whose host is down
 * during a share shows failed/out-of-date and catches up when it returns; relabelling a tenant brings
 * or takes shared items; shared items are read-only on the tenant even for its admin, and the
 * propagation-only routes refuse every caller but main's propagation; un-sharing removes the item.
 * The content CLI is tested in content-cli.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Deployment } from '../harness/deployment.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import { until } from '../harness/processes.js';
import { directRequest, mainSigningKey, signedHeaders } from '../harness/tenant-client.js';
import { TENANTS, startTenants, type Item, type Status, type TenantItem, type Version } from './content-fixtures.js';

let d: Deployment;

beforeAll(async () => {
  d = await Deployment.create();
  await startTenants(d);
}, 180_000);
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

async function tenantContent(tenant: string): Promise<TenantItem[]> {
  const r = await d.api<TenantItem[]>('GET', `/tenants/${tenant}/api/content`);
  if (r.status !== 200) throw new Error(`content of ${tenant}: ${r.status} ${r.raw}`);
  return r.body;
}

async function status(id: string): Promise<Status> {
  return (await d.api<Status>('GET', `/content/${id}/status`)).body;
}

const row = (s: Status, tenant: string) => s.tenants.find((t) => t.tenant === tenant)!;
/** A playbook's body: only a whole playbook is published (docs/playbooks.md); `v` tells versions apart. */
const triage = (v: string) => `name: triage ${v}\nstart: ask\ntasks:\n  ask: {type: manual, prompt: ${v}}\n`;

let item: Item;

describe('content library', () => {
  it('creates an item at version 1 and refuses to share it before it is published', async () => {
    const r = await d.api<Item & { versions: Version[] }>('POST', '/content', {
      type: 'playbook',
      name: 'Phishing triage',
      body: triage('v1'),
      labels: ['emea'],
    });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({
      id: expect.stringMatching(/^cnt_/),
      version: 1,
      published: null,
      shared: false,
      labels: ['emea'],
    });
    item = r.body;
    const share = await d.api<ErrorBody>('POST', `/content/${item.id}/share`);
    expect(share.status).toBe(409);
    expect(share.body.error.code).toBe('ERR_CONTENT_NOT_PUBLISHED');
    const s = await status(item.id);
    expect(s.rollup).toBe('Not Shared');
    expect(s.tenants.map((t) => t.state)).toEqual(['not-shared', 'not-shared', 'not-shared']);
  });

  it('answers bad input with 4xx naming the field', async () => {
    const cases: [unknown, string][] = [
      [{ type: 'bogus', name: 'x', body: '' }, 'type'],
      [{ type: 'script', body: '' }, 'name'],
      [{ type: 'script', name: 'x', body: 5 }, 'body'],
      [{ type: 'script', name: 'x', body: 'y'.repeat(200_000) }, 'body'],
      [{ type: 'script', name: 'x', body: '', labels: ['Not A Label'] }, 'labels'],
      [{ type: 'script', name: 'x', body: '', owner: 'me' }, 'owner'],
    ];
    for (const [body, field] of cases) {
      const r = await d.api<ErrorBody>('POST', '/content', body);
      expect(r.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(r.body.error.message).toContain(field);
    }
    expect((await d.api('GET', '/content/not-an-id')).status).toBe(400);
    expect((await d.api<ErrorBody>('GET', '/content/cnt_000000000000')).body.error.code).toBe('ERR_CONTENT_NOT_FOUND');
    const put = await d.api<ErrorBody>('PUT', `/content/${item.id}`, {});
    expect(put.status).toBe(400);
    const lab = await d.api<ErrorBody>('PATCH', '/tenants/emea-a', { labels: 'emea' });
    expect(lab.status).toBe(400);
    expect(lab.body.error.message).toContain('labels');
    expect((await d.api('PATCH', '/tenants/nope', { labels: [] })).status).toBe(404);
  });
});

describe('propagation by label', () => {
  it('sharing to `emea` reaches exactly the emea tenants, as shared read-only items', async () => {
    const pub = await d.api<Item>('POST', `/content/${item.id}/publish`);
    expect(pub.body).toMatchObject({ version: 1, published: 1 });
    const r = await d.api<Status>('POST', `/content/${item.id}/share`);
    expect(r.status).toBe(200);
    expect(r.body.rollup).toBe('Successful');
    expect(row(r.body, 'emea-a')).toMatchObject({ state: 'shared', version: 1 });
    expect(row(r.body, 'emea-b')).toMatchObject({ state: 'shared', version: 1 });
    expect(row(r.body, 'apac-a')).toMatchObject({ state: 'not-shared', version: null });
    for (const t of ['emea-a', 'emea-b']) {
      const mine = (await tenantContent(t)).filter((i) => i.id === item.id);
      expect(mine).toEqual([
        expect.objectContaining({
          shared: true,
          version: 1,
          type: 'playbook',
          name: 'Phishing triage',
          body: triage('v1'),
        }),
      ]);
    }
    expect((await tenantContent('apac-a')).some((i) => i.id === item.id)).toBe(false);
    expect(
      r.body.log
        .filter((l) => l.action === 'push' && l.outcome === 'ok')
        .map((l) => l.tenant)
        .sort(),
    ).toEqual(['emea-a', 'emea-b']);
  });

  it('tenant-local content coexists with shared content of the same type, and stays editable', async () => {
    const local = await d.api<TenantItem>('POST', '/tenants/emea-a/api/content', {
      type: 'playbook',
      name: 'Local runbook',
      body: 'local',
    });
    expect(local.status).toBe(201);
    expect(local.body.shared).toBe(false);
    const edited = await d.api<TenantItem>('PUT', `/tenants/emea-a/api/content/${local.body.id}`, { body: 'local v2' });
    expect(edited.body).toMatchObject({ version: 2, body: 'local v2', shared: false });
    const playbooks = (await d.api<TenantItem[]>('GET', '/tenants/emea-a/api/content?type=playbook')).body;
    expect(playbooks.map((i) => [i.id, i.shared]).sort()).toEqual(
      [
        [item.id, true],
        [local.body.id, false],
      ].sort(),
    );
  });

  it("a tenant's admin cannot modify or delete a shared item, nor reach the propagation-only routes", async () => {
    const put = await d.api<ErrorBody>('PUT', `/tenants/emea-a/api/content/${item.id}`, { body: 'hijacked' });
    expect(put.status).toBe(403);
    expect(put.body.error.code).toBe('ERR_CONTENT_SHARED_READONLY');
    const del = await d.api<ErrorBody>('DELETE', `/tenants/emea-a/api/content/${item.id}`);
    expect(del.status).toBe(403);
    expect(del.body.error.code).toBe('ERR_CONTENT_SHARED_READONLY');
    // Through the relay a user's signed identity is never main's propagation identity.
    const push = { type: 'playbook', name: 'forged', body: 'forged', version: 99, labels: ['emea'] };
    const viaRelay = await d.api<ErrorBody>('PUT', `/tenants/emea-a/api/content/shared/${item.id}`, push);
    expect(viaRelay.status).toBe(403);
    expect(viaRelay.body.error.code).toBe('ERR_CONTENT_PROPAGATION_ONLY');
    const delRelay = await d.api<ErrorBody>('DELETE', `/tenants/emea-a/api/content/shared/${item.id}`);
    expect(delRelay.body.error.code).toBe('ERR_CONTENT_PROPAGATION_ONLY');
    const planted = await d.api<ErrorBody>('PUT', '/tenants/apac-a/api/content/shared/cnt_0123456789ab', push);
    expect(planted.body.error.code).toBe('ERR_CONTENT_PROPAGATION_ONLY');
    // Even a request signed with main's own key, but for a user, is refused there.
    const t = (await d.tenant('emea-a'))!;
    const key = await mainSigningKey(d.mainDir);
    const body = JSON.stringify(push);
    const path = `/api/v1/content/shared/${item.id}`;
    const direct = await directRequest<ErrorBody>(
      t.port,
      'PUT',
      path,
      signedHeaders(key, 'emea-a', 'PUT', path, body),
      body,
    );
    expect(direct.status).toBe(403);
    expect(direct.body.error.code).toBe('ERR_CONTENT_PROPAGATION_ONLY');
    expect((await tenantContent('emea-a')).find((i) => i.id === item.id)).toMatchObject({
      version: 1,
      body: triage('v1'),
    });
    expect((await tenantContent('apac-a')).some((i) => i.id === 'cnt_0123456789ab')).toBe(false);
  });

  it('edit + publish makes the tenants out-of-date; resharing brings them to the new version', async () => {
    const up = await d.api<Item>('PUT', `/content/${item.id}`, { body: triage('v2') });
    expect(up.body).toMatchObject({ version: 2, published: 1 });
    // An unpublished edit changes nothing for tenants.
    expect(row(await status(item.id), 'emea-a').state).toBe('shared');
    await d.api('POST', `/content/${item.id}/publish`);
    const stale = await status(item.id);
    expect(stale.rollup).toBe('Incomplete');
    for (const t of ['emea-a', 'emea-b']) expect(row(stale, t)).toMatchObject({ state: 'out-of-date', version: 1 });
    const show = await d.api<Item & { versions: Version[] }>('GET', `/content/${item.id}`);
    expect(show.body.versions.map((v) => [v.version, v.published, v.body])).toEqual([
      [1, true, triage('v1')],
      [2, true, triage('v2')],
    ]);

    const again = (await d.api<Status>('POST', `/content/${item.id}/share`)).body;
    expect(again.rollup).toBe('Successful');
    for (const t of ['emea-a', 'emea-b']) {
      expect(row(again, t)).toMatchObject({ state: 'shared', version: 2 });
      expect((await tenantContent(t)).find((i) => i.id === item.id)).toMatchObject({
        shared: true,
        version: 2,
        body: triage('v2'),
      });
    }
  });

  it('a tenant whose host is offline during a share shows failed/out-of-date and catches up when it returns', async () => {
    const fresh = (
      await d.api<Item>('POST', '/content', {
        type: 'list',
        name: 'Blocked domains',
        body: 'evil.example',
        labels: ['emea'],
      })
    ).body;
    await d.api('POST', `/content/${fresh.id}/publish`);
    await d.api('PUT', `/content/${item.id}`, { body: triage('v3') });
    await d.api('POST', `/content/${item.id}/publish`);

    expect(await d.agents.get('h2')!.proc!.stop()).toBe(0);
    await until(
      'h2 offline',
      async () =>
        (await d.api<{ name: string; status: string }[]>('GET', '/hosts')).body.find((h) => h.name === 'h2')?.status ===
        'offline',
      30_000,
      100,
    );

    const s1 = (await d.api<Status>('POST', `/content/${item.id}/share`)).body;
    const s2 = (await d.api<Status>('POST', `/content/${fresh.id}/share`)).body;
    expect(s1.rollup).toBe('Incomplete');
    expect(row(s1, 'emea-a')).toMatchObject({ state: 'shared', version: 3 });
    expect(row(s1, 'emea-b')).toMatchObject({ state: 'out-of-date', version: 2, target: 3 });
    expect(row(s1, 'emea-b').reason).toMatch(/offline/i);
    expect(row(s2, 'emea-b')).toMatchObject({ state: 'failed', version: null, target: 1 });
    expect(s1.log.some((l) => l.action === 'push' && l.tenant === 'emea-b' && l.outcome === 'failed')).toBe(true);

    await d.startAgent('h2');
    await d.tenantRunning('emea-b');
    await until(
      'emea-b caught up',
      async () => {
        const [a, b] = [await status(item.id), await status(fresh.id)];
        return (
          row(a, 'emea-b').state === 'shared' &&
          row(b, 'emea-b').state === 'shared' &&
          a.rollup === 'Successful' &&
          b.rollup === 'Successful'
        );
      },
      60_000,
      250,
    );
    const onB = await tenantContent('emea-b');
    expect(onB.find((i) => i.id === item.id)).toMatchObject({ version: 3, body: triage('v3'), shared: true });
    expect(onB.find((i) => i.id === fresh.id)).toMatchObject({ version: 1, shared: true });
  }, 120_000);

  it('relabelling a tenant brings matching shared items to it and takes them away again', async () => {
    const r = await d.cli(['tenant', 'labels', 'apac-a', '--set', 'apac,emea', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((r.json as { labels: string[] }).labels).toEqual(['apac', 'emea']);
    await until(
      'apac-a gets the emea item',
      async () => row(await status(item.id), 'apac-a').state === 'shared',
      30_000,
      200,
    );
    expect((await tenantContent('apac-a')).find((i) => i.id === item.id)).toMatchObject({ version: 3, shared: true });

    await d.api('PATCH', '/tenants/apac-a', { labels: ['apac'] });
    await until(
      'apac-a loses it',
      async () => !(await tenantContent('apac-a')).some((i) => i.id === item.id),
      30_000,
      200,
    );
    const s = await status(item.id);
    expect(row(s, 'apac-a')).toMatchObject({ state: 'not-shared' });
    expect(s.rollup).toBe('Successful');
    const audit = (await d.api<{ action: string; target: string }[]>('GET', '/audit?action=tenant.labels&limit=10'))
      .body;
    expect(audit.filter((a) => a.target === 'apac-a')).toHaveLength(2);
  });

  it('un-sharing removes the item from every tenant; local items stay', async () => {
    const r = (await d.api<Status>('DELETE', `/content/${item.id}/share`)).body;
    expect(r.rollup).toBe('Not Shared');
    expect(r.tenants.every((t) => t.state === 'not-shared')).toBe(true);
    for (const t of Object.keys(TENANTS)) expect((await tenantContent(t)).some((i) => i.id === item.id)).toBe(false);
    expect((await tenantContent('emea-a')).some((i) => !i.shared)).toBe(true);
    const since = r.log.map((l) => l.action).lastIndexOf('unshare');
    expect(
      r.log
        .slice(since)
        .filter((l) => l.action === 'remove' && l.outcome === 'ok')
        .map((l) => l.tenant)
        .sort(),
    ).toEqual(['emea-a', 'emea-b']);
    const audit = (await d.api<{ action: string; target: string }[]>('GET', '/audit?action=content.&limit=100')).body;
    for (const a of ['content.create', 'content.update', 'content.publish', 'content.share', 'content.unshare'])
      expect(
        audit.some((x) => x.action === a && x.target === item.id),
        a,
      ).toBe(true);
  });
});

describe('malformed input on real ids', () => {
  it('never yields a 5xx, on main or through the relay into a tenant', async () => {
    const local = (
      await d.api<TenantItem>('POST', '/tenants/emea-b/api/content', { type: 'script', name: 'local', body: 'x' })
    ).body;
    const bodies: (string | Buffer)[] = [
      '{"name": ',
      'null',
      '[1,2]',
      '"s"',
      '{"name": 7, "body": {"a": 1}, "labels": "x"}',
      '{"__proto__": {"x": 1}}',
      '['.repeat(100_000) + ']'.repeat(100_000),
      '{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000),
      Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
      JSON.stringify({ name: 'n'.repeat(10_000) }),
      JSON.stringify({ labels: Array.from({ length: 500 }, (_, i) => `l${i}`) }),
    ];
    const targets: [string, string][] = [
      ['POST', '/content'],
      ['PUT', `/content/${item.id}`],
      ['POST', `/content/${item.id}/publish`],
      ['POST', `/content/${item.id}/share`],
      ['PATCH', '/tenants/emea-a'],
      ['POST', '/tenants/emea-b/api/content'],
      ['PUT', `/tenants/emea-b/api/content/${local.id}`],
      ['PUT', `/tenants/emea-b/api/content/shared/${item.id}`],
    ];
    for (const [method, path] of targets) {
      for (const raw of bodies) {
        const r = await d.api(method, path, undefined, { rawBody: raw });
        expect(r.status, `${method} ${path} ${String(raw).slice(0, 40)} → ${r.raw.slice(0, 200)}`).toBeLessThan(500);
      }
    }
    for (const q of ['type=nope', 'shared=maybe', 'x=1'])
      expect((await d.api('GET', `/tenants/emea-b/api/content?${q}`)).status).toBe(400);
    for (const q of ['type=nope', 'label=BAD', 'x=1']) expect((await d.api('GET', `/content?${q}`)).status).toBe(400);
    expect((await tenantContent('emea-b')).find((i) => i.id === local.id)).toMatchObject({ version: 1, body: 'x' });
  });
});

describe('permissions', () => {
  it('a viewer reads the library but cannot change or share it', async () => {
    const u = await d.api<{ id: string }>('POST', '/users', { name: 'content-viewer', roles: ['viewer'] });
    expect(u.status).toBe(201);
    const k = await d.api<{ key: string }>('POST', '/apikeys', { user: u.body.id });
    expect(k.status).toBe(201);
    const key = k.body.key;
    expect((await d.api('GET', '/content', undefined, { key })).status).toBe(200);
    expect((await d.api('GET', `/content/${item.id}/status`, undefined, { key })).status).toBe(200);
    expect((await d.api('POST', '/content', { type: 'script', name: 'x', body: 'y' }, { key })).status).toBe(403);
    expect((await d.api('POST', `/content/${item.id}/share`, undefined, { key })).status).toBe(403);
    expect((await d.api('PATCH', '/tenants/emea-a', { labels: [] }, { key })).status).toBe(403);
  });
});
