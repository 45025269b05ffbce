/**
 * The fetcher's de-duplication records and outcomes on a real LevelDB in a temp dir (agent/tenant/
 * incident-fetch.ts), with a fake runner standing in for the source: an instance removed and re-created under
 * its name fetches the items its source still answers again, and the removed one's records are purged, in
 * batches, also when a restart interrupted the purge; a fetch still running when its instance is removed
 * writes nothing (no incident, record or outcome), and the re-created instance shows no stale last fetch.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Level } from 'level';
import { silentLogger } from '#common/logging.js';
import { IncidentFetcher, MAX_NEW_PER_FETCH, PURGE_BATCH } from '../../agent/tenant/incident-fetch.js';
import type { IntegrationCatalog, ResolvedDefinition } from '../../agent/tenant/integration-catalog.js';
import type { IntegrationRunner, RunResult } from '../../agent/tenant/integration-runner.js';
import { IntegrationStore } from '../../agent/tenant/integration-store.js';
import { TenantStore } from '../../agent/tenant/store.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const DEF = {
  name: 'http',
  connectionType: 'http',
  source: 'built-in',
  commands: [{ name: 'get', readOnly: true }],
  fetch: { command: 'get', items: 'body' },
} as unknown as ResolvedDefinition;
const catalog = { resolve: async () => DEF } as unknown as IntegrationCatalog;

/**
 * The source: answers `items` as an http get would; while `hold` is set, answers only once it resolves.
 * `asked` is called as each fetch reaches it.
 */
class FakeSource {
  items: { id: string }[] = [];
  hold: Promise<void> | undefined;
  asked: () => void = () => undefined;
  readonly runner = {
    run: async (): Promise<RunResult> => {
      const answer = { status: 200, body: [...this.items] };
      this.asked();
      await this.hold;
      return { instance: 'alerts', integration: 'http', command: 'get', durationMs: 1, result: answer };
    },
  } as unknown as IntegrationRunner;
}

const ids = (n: number, prefix = 'src') => Array.from({ length: n }, (_, k) => ({ id: `${prefix}-${k}` }));

/** A tenant's store, instances and fetcher on a fresh directory (or `dir`, reopened). */
async function open(source: FakeSource, dir?: string) {
  const at = dir ?? (await mkdtemp(join(tmpdir(), 'palisade-fetch-')));
  if (!dir) dirs.push(at);
  const store = new TenantStore(at);
  await store.open();
  const instances = new IntegrationStore(store.db);
  const fetcher = new IncidentFetcher(store, instances, catalog, source.runner, silentLogger());
  await fetcher.start();
  const records = () => (store.db as Level<string, unknown>).sublevel('fetched').keys().all();
  const incidents = async () => (await store.incidents.keys().all()).length;
  const create = () =>
    instances.create(
      { name: 'alerts', integration: 'http', connection: 'svc', runOn: 'tenant', fetchIncidents: true },
      'test',
    );
  const remove = async () => fetcher.forget(await instances.remove('alerts'));
  const close = async () => {
    await fetcher.close();
    await store.close();
  };
  return { dir: at, store, fetcher, records, incidents, create, remove, close };
}

describe('IncidentFetcher records', () => {
  it('a removed instance re-created under its name fetches the same source ids again; the old records go', async () => {
    const source = new FakeSource();
    source.items = ids(3);
    const t = await open(source);
    await t.create();
    expect(await t.fetcher.fetchOnce('alerts')).toMatchObject({ outcome: 'ok', created: 3 });
    expect(await t.fetcher.fetchOnce('alerts')).toMatchObject({ outcome: 'ok', created: 0 });
    expect(await t.records()).toHaveLength(3);

    await t.remove();
    await t.fetcher.purged();
    expect(await t.records()).toHaveLength(0);
    expect(await t.fetcher.state('alerts')).toBeUndefined();

    await t.create();
    expect(await t.fetcher.fetchOnce('alerts')).toMatchObject({ outcome: 'ok', created: 3 });
    expect(await t.incidents()).toBe(6);
    await t.close();
  });

  it('purges more records than one batch, and resumes a purge a restart interrupted', async () => {
    const n = PURGE_BATCH + 200;
    const source = new FakeSource();
    source.items = ids(n);
    const t = await open(source);
    await t.create();
    let created = 0;
    for (let k = 0; k < Math.ceil(n / MAX_NEW_PER_FETCH); k++) created += (await t.fetcher.fetchOnce('alerts')).created;
    expect(created).toBe(n);
    // Stopped before the purge could run: the marker forget wrote stays, and the records with it.
    await t.fetcher.close();
    await t.remove();
    expect(await t.records()).toHaveLength(n);
    await t.store.close();

    const again = await open(source, t.dir);
    await again.fetcher.purged();
    expect(await again.records()).toHaveLength(0);
    expect(await (again.store.db as Level<string, unknown>).sublevel('fetch-purge').keys().all()).toEqual([]);
    await again.close();
  });

  it('a fetch that outlives its instance writes no incident, record or outcome', async () => {
    const source = new FakeSource();
    source.items = ids(2);
    const t = await open(source);
    await t.create();
    let release!: () => void;
    source.hold = new Promise((r) => (release = r));
    const asked = new Promise<void>((r) => (source.asked = r));
    const running = t.fetcher.fetchOnce('alerts');
    await asked; // the fetch has its instance and is at the source
    await t.remove();
    await t.create(); // re-created meanwhile, as a new generation
    release();
    expect(await running).toMatchObject({ outcome: 'failed', error: { code: 'ERR_INTEGRATION_NOT_FOUND' } });
    expect(await t.incidents()).toBe(0);
    expect(await t.records()).toHaveLength(0);
    expect(await t.fetcher.state('alerts')).toBeUndefined();
    source.hold = undefined;
    expect(await t.fetcher.fetchOnce('alerts')).toMatchObject({ outcome: 'ok', created: 2 });
    await t.close();
  });
});
