/**
 * Moving a tenant between hosts with real processes: 10 000 incidents arrive byte for byte, routing
 * switches, the old copy is deleted; a move that fails midway leaves the tenant running where it was.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { access, mkdir, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { until } from '../harness/processes.js';

let d: Deployment;
const INCIDENTS = 10_000;
const BATCH = 1000;

interface Page { items: Record<string, unknown>[]; next: string | null }
interface TenantRow { name: string; host: string; port: number; status: string }

async function allIncidents(tenant: string): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  let cursor: string | null = null as string | null;
  for (let page = 0; page < 100; page++) {
    const r: { status: number; body: Page } = await d.api<Page>('GET', `/tenants/${tenant}/api/incidents?limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
    expect(r.status).toBe(200);
    out.push(...r.body.items);
    cursor = r.body.next;
    if (!cursor) return out;
  }
  throw new Error('paging did not end');
}

async function tenantRow(name: string): Promise<TenantRow | undefined> {
  return ((await d.cli(['tenants', '--json'])).json as TenantRow[]).find((t) => t.name === name);
}

beforeAll(async () => {
  d = await Deployment.create();
  for (const h of ['mv-a', 'mv-b']) {
    await d.install('host', h);
    await d.startAgent(h);
  }
  const c = await d.cli(['tenant', 'create', 'moving', '--host', 'mv-a', '--json']);
  if (c.code !== 0) throw new Error(c.stdout + c.stderr);
  for (let b = 0; b < INCIDENTS / BATCH; b++) {
    const items = Array.from({ length: BATCH }, (_, i) => ({
      name: `incident ${b * BATCH + i} ünïcødé ✓`, type: ['phishing', 'malware', 'identity'][i % 3], severity: i % 5,
      details: `details ${b}-${i} ${randomBytes(64).toString('hex')}`, labels: { batch: String(b) },
    }));
    const r = await d.api('POST', '/tenants/moving/api/incidents', { items });
    if (r.status !== 201) throw new Error(`seed failed: ${r.status} ${r.raw.slice(0, 300)}`);
  }
}, 300_000);
afterAll(async () => { await d?.stop(); });
afterEach((ctx) => { if (ctx.task.result?.state === 'fail') console.error(d.logs()); });

describe('host budget', () => {
  it('a host without room for the tenant refuses it with the reason, and nothing is created', async () => {
    const r = await d.cli(['tenant', 'create', 'too-big', '--host', 'mv-a', '--memory-mb', '1000000', '--json']);
    expect(r.code).not.toBe(0);
    const err = (r.json as { error: { code: string; message: string } }).error;
    expect(err.code).toBe('ERR_HOST_BUDGET');
    expect(err.message).toMatch(/needs 1000000 MiB memory/);
    expect(await tenantRow('too-big')).toBeUndefined();
    await expect(access(join(d.agents.get('mv-a')!.dir, 'tenants', 'too-big'))).rejects.toThrow();
  });
});

describe('tenant move', () => {
  it('a failed move leaves the tenant running where it was and says why', async () => {
    // The target already has a directory of that name: the import refuses, the source resumes.
    await mkdir(join(d.agents.get('mv-b')!.dir, 'tenants', 'moving'), { recursive: true });
    const r = await d.cli(['tenant', 'move', 'moving', '--to', 'mv-b', '--json']);
    expect(r.code).not.toBe(0);
    expect((r.json as { error: { code: string; message: string } }).error.code).toBe('ERR_TENANT_MOVE_FAILED');
    expect((r.json as { error: { message: string } }).error.message).toMatch(/keeps running on "mv-a"/);
    const row = await until('tenant running on mv-a', async () => { const t = await tenantRow('moving'); return t?.status === 'running' ? t : undefined; });
    expect(row.host).toBe('mv-a');
    const one = await d.api<Page>('GET', '/tenants/moving/api/incidents?limit=1');
    expect(one.status).toBe(200);
    expect(one.body.items).toHaveLength(1);
    // The target's pre-existing directory was not ours to delete.
    await access(join(d.agents.get('mv-b')!.dir, 'tenants', 'moving'));
    await rm(join(d.agents.get('mv-b')!.dir, 'tenants', 'moving'), { recursive: true });
  });

  it('moves 10 000 incidents byte for byte, switches routing, keeps labels changed meanwhile and deletes the old copy', async () => {
    const before = await allIncidents('moving');
    expect(before).toHaveLength(INCIDENTS);
    const moving = d.cli(['tenant', 'move', 'moving', '--to', 'mv-b', '--json']);
    // Labels changed while the move runs are the tenant's labels after it, not the ones read at its start.
    await until('move under way', async () => ((await tenantRow('moving'))?.status === 'moving' ? true : undefined), 30_000, 20);
    const relabel = await d.api('PATCH', '/tenants/moving', { labels: ['relabelled-during-move'] });
    expect(relabel.status, relabel.raw).toBe(200);
    const r = await moving;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json).toMatchObject({ name: 'moving', from: 'mv-a', to: 'mv-b' });
    expect((r.json as { chunks: number }).chunks).toBeGreaterThan(1);
    const row = await tenantRow('moving');
    expect(row).toMatchObject({ host: 'mv-b', status: 'running', labels: ['relabelled-during-move'] });
    const after = await allIncidents('moving');
    expect(after.length).toBe(INCIDENTS);
    expect(JSON.stringify(after)).toBe(JSON.stringify(before));
    // The copy on the source host is deleted (durable command, so poll).
    const oldDir = join(d.agents.get('mv-a')!.dir, 'tenants', 'moving');
    await until('old copy deleted', async () => access(oldDir).then(() => false, () => true));
    // Writes land on the new host.
    const w = await d.api<{ id: string }>('POST', '/tenants/moving/api/incidents', { name: 'after move', type: 'test', severity: 1 });
    expect(w.status).toBe(201);
    expect(Number(w.body.id)).toBe(INCIDENTS + 1);
  });
});
