/**
 * A tenant's incident API end to end with real processes (main, host h1, tenants acme and globex):
 * incidents created, filtered, paged, patched and closed through main and the CLI, indicators kept per
 * tenant, and bulk NDJSON ingest where a refused batch stores nothing and `incidents import` says where to
 * resume. Split from tenants.test.ts (life cycle and data placement); no test here depends on another file's.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import type { ErrorBody, Incident, IncidentPage as Page, Indicator } from '../harness/api-shapes.js';
import { allIncidents as allIncidentsOf, createIncident as createIncidentOf } from '../harness/tenant-api.js';

let d: Deployment;

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'h1');
  await d.startAgent('h1');
  for (const name of ['acme', 'globex']) await d.createTenant(name, 'h1');
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

const createIncident = (tenant: string, body: Record<string, unknown>) => createIncidentOf(d, tenant, body);
const allIncidents = (tenant: string, query = '', limit?: number) => allIncidentsOf(d, tenant, query, limit);

describe('tenants', () => {
  it('incidents through main and the CLI: create, filter, page, patch, close, indicators', async () => {
    const tag = randomUUID().slice(0, 8);
    const c = await d.cli([
      'incidents',
      'create',
      '--tenant',
      'acme',
      '--name',
      `cli ${tag}`,
      '--severity',
      '3',
      '--type',
      `phish-${tag}`,
      '--json',
    ]);
    expect(c.code, c.stdout + c.stderr).toBe(0);
    const created = c.json as Incident;
    expect(created).toMatchObject({
      id: expect.stringMatching(/^\d+$/),
      name: `cli ${tag}`,
      severity: 3,
      status: 'open',
      type: `phish-${tag}`,
    });
    expect(Date.parse(created.created)).toBeGreaterThan(Date.now() - 60_000);

    const bySev = await d.cli(['incidents', 'list', '--tenant', 'acme', '--severity', '3', '--json']);
    expect(bySev.code, bySev.stdout + bySev.stderr).toBe(0);
    const sevItems = (bySev.json as Page).items;
    expect(sevItems.map((i) => i.id)).toContain(created.id);
    expect(sevItems.every((i) => i.severity === 3)).toBe(true);
    const get = await d.cli(['incidents', 'get', created.id, '--tenant', 'acme', '--json']);
    expect(get.json).toEqual(created);

    // Five more of one type, for filters and paging.
    const type = `page-${tag}`;
    const batch = [];
    for (let i = 0; i < 5; i++)
      batch.push(
        await createIncident('acme', {
          name: `paged ${i} ${tag}`,
          type,
          severity: i % 2 ? 2 : 0,
          details: i === 3 ? `needle-${tag}` : '',
        }),
      );
    const byType = await d.cli(['incidents', 'list', '--tenant', 'acme', '--type', type, '--json']);
    expect((byType.json as Page).items.map((i) => i.id)).toEqual(batch.map((b) => b.id).reverse()); // newest first
    const byQ = await d.cli(['incidents', 'list', '--tenant', 'acme', '--q', `NEEDLE-${tag}`, '--json']);
    expect((byQ.json as Page).items.map((i) => i.id)).toEqual([batch[3].id]);

    const pages: string[][] = [];
    let cursor: string | undefined;
    for (let n = 0; n < 10; n++) {
      const args = [
        'incidents',
        'list',
        '--tenant',
        'acme',
        '--type',
        type,
        '--limit',
        '2',
        '--json',
        ...(cursor ? ['--cursor', cursor] : []),
      ];
      const p = (await d.cli(args)).json as Page;
      pages.push(p.items.map((i) => i.id));
      if (!p.next) break;
      cursor = p.next;
    }
    expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
    expect(pages.flat()).toEqual(batch.map((b) => b.id).reverse());

    // Paging over everything: each incident exactly once, the same set as one big page.
    const whole = await allIncidents('acme');
    const paged = await allIncidents('acme', '', 2);
    expect(paged.map((i) => i.id)).toEqual(whole.map((i) => i.id));
    expect(new Set(paged.map((i) => i.id)).size).toBe(paged.length);

    const patched = await d.api<Incident>('PATCH', `/tenants/acme/api/incidents/${created.id}`, { severity: 1 });
    expect(patched.status, patched.raw).toBe(200);
    expect(patched.body).toMatchObject({ id: created.id, severity: 1, name: created.name, status: 'open' });
    expect((await d.api<Incident>('GET', `/tenants/acme/api/incidents/${created.id}`)).body.severity).toBe(1);

    const closed = await d.api<Incident>('POST', `/tenants/acme/api/incidents/${created.id}/close`, {
      reason: 'false positive',
    });
    expect(closed.status, closed.raw).toBe(200);
    expect(closed.body).toMatchObject({ id: created.id, status: 'closed', closed: expect.any(String) });
    const closedList = await d.cli(['incidents', 'list', '--tenant', 'acme', '--status', 'closed', '--json']);
    expect((closedList.json as Page).items.map((i) => i.id)).toContain(created.id);
    const openList = await allIncidents('acme', 'status=open');
    expect(openList.map((i) => i.id)).not.toContain(created.id);
    expect(openList.every((i) => i.status === 'open')).toBe(true);

    const ind = await d.api<Indicator>('POST', '/tenants/acme/api/indicators', {
      value: '1.2.3.4',
      type: 'ip',
      reputation: 'malicious',
      incident: batch[0].id,
    });
    expect(ind.status, ind.raw).toBe(201);
    const found = await d.api<Indicator[]>('GET', '/tenants/acme/api/indicators?type=ip&value=1.2.3.4');
    expect(found.status, found.raw).toBe(200);
    expect(found.body).toHaveLength(1);
    expect(found.body[0]).toMatchObject({
      value: '1.2.3.4',
      type: 'ip',
      reputation: 'malicious',
      incidents: [batch[0].id],
    });
    expect(Date.parse(found.body[0].firstSeen)).toBeGreaterThan(Date.now() - 60_000);
    expect(Date.parse(found.body[0].lastSeen)).toBeGreaterThanOrEqual(Date.parse(found.body[0].firstSeen));
    // The indicator is acme's: globex does not see it.
    const other = await d.api<ErrorBody>('GET', '/tenants/globex/api/indicators?type=ip&value=1.2.3.4');
    expect(other.status).toBe(404);
  });

  it('bulk ingest: NDJSON batches through main and `incidents import`; a refused batch stores nothing and the import says how to resume', async () => {
    const tag = randomUUID().slice(0, 8);
    const line = (i: number, type = `bulk-${tag}`) =>
      JSON.stringify({ name: `bulk ${tag} ${i}`, type, severity: i % 5, details: `n${i}` });
    const ndjson = { 'content-type': 'application/x-ndjson' };
    const before = (await allIncidents('globex')).length;
    const ok = await d.api<{ count: number; ids: string[] }>('POST', '/tenants/globex/api/incidents', undefined, {
      rawBody: [line(0), line(1), line(2)].join('\r\n') + '\n\n',
      headers: ndjson,
    });
    expect(ok.status, ok.raw).toBe(201);
    expect(ok.body.count).toBe(3);
    const stored = await allIncidents('globex', `type=bulk-${tag}`);
    expect(stored.map((i) => i.name).sort()).toEqual([0, 1, 2].map((i) => `bulk ${tag} ${i}`));

    const cases: { what: string; raw: string; status: number; names: string }[] = [
      {
        what: 'broken JSON on line 2',
        raw: [line(10), '{"name": ', line(11)].join('\n'),
        status: 400,
        names: 'line 2',
      },
      {
        what: 'severity 9 on the third line',
        raw: [line(12), line(13), JSON.stringify({ name: 'x', type: 't', severity: 9 })].join('\n'),
        status: 400,
        names: 'severity',
      },
      {
        what: '1 001 lines',
        raw: Array.from({ length: 1001 }, (_, i) => line(100 + i)).join('\n'),
        status: 413,
        names: '1000',
      },
      {
        what: 'a __proto__ key',
        raw: [line(14), '{"name":"x","type":"t","severity":1,"__proto__":{"admin":true}}'].join('\n'),
        status: 400,
        names: 'line 2',
      },
      {
        what: 'an escaped __proto__ key',
        raw: [line(15), '{"name":"x","type":"t","severity":1,"\\u005f_proto__":{"admin":true}}'].join('\n'),
        status: 400,
        names: 'line 2',
      },
      {
        what: 'a constructor key',
        raw: ['{"name":"x","type":"t","severity":1,"constructor":{"prototype":{}}}'].join('\n'),
        status: 400,
        names: 'line 1',
      },
    ];
    for (const c of cases) {
      const r = await d.api<ErrorBody>('POST', '/tenants/globex/api/incidents', undefined, {
        rawBody: c.raw,
        headers: ndjson,
      });
      expect(r.status, `${c.what} → ${r.raw.slice(0, 300)}`).toBe(c.status);
      expect(r.body.error.message, c.what).toContain(c.names);
    }
    // NDJSON only where a route takes batches.
    const notHere = await d.api<ErrorBody>('POST', '/tenants/globex/api/indicators', undefined, {
      rawBody: JSON.stringify({ value: '192.0.2.7', type: 'ip' }),
      headers: ndjson,
    });
    expect(notHere.status, notHere.raw).toBe(415);
    expect((await allIncidents('globex')).length).toBe(before + 3);

    // The CLI: 2 500 lines in batches of 1 000 with a broken line at 1 700 → the first batch is stored,
    // the second refused whole; the message says where to resume; the resumed import stores the rest once.
    const file = join(d.mainDir, '..', `import-${tag}.ndjson`);
    const lines = Array.from({ length: 2500 }, (_, i) => line(i, `import-${tag}`));
    await writeFile(file, lines.map((l, i) => (i === 1699 ? l.slice(0, 20) : l)).join('\n') + '\n');
    const first = await d.cli(['incidents', 'import', '--tenant', 'globex', '--file', file, '--json']);
    expect(first.code, first.stdout + first.stderr).toBe(2);
    const msg = (first.json as ErrorBody).error.message;
    expect(msg).toContain('lines 1001-2000');
    expect(msg).toContain('line 700');
    expect(msg).toContain('--skip 1000');
    expect((await allIncidents('globex', `type=import-${tag}`)).length).toBe(1000);
    await writeFile(file, lines.join('\n') + '\n');
    const resumed = await d.cli([
      'incidents',
      'import',
      '--tenant',
      'globex',
      '--file',
      file,
      '--skip',
      '1000',
      '--json',
    ]);
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    expect(resumed.json).toMatchObject({ tenant: 'globex', imported: 1500, skipped: 1000 });
    const all = await allIncidents('globex', `type=import-${tag}`);
    expect(all.map((i) => i.name).sort()).toEqual(lines.map((l) => (JSON.parse(l) as { name: string }).name).sort());

    const missing = await d.cli([
      'incidents',
      'import',
      '--tenant',
      'globex',
      '--file',
      join(d.mainDir, 'no-such.ndjson'),
      '--json',
    ]);
    expect(missing.code).toBe(2);
    expect((missing.json as ErrorBody).error.message).toContain('--file');
  });
});
