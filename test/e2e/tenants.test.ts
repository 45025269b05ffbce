/**
 * Tenants end to end with real processes, their life cycle and where their data lives: each tenant is its
 * own OS process with its own LevelDB and port, restarted by its host after a crash (on a free port if its
 * own was taken) without losing acknowledged writes; main relays into a tenant's API but stores none of its
 * data; one tenant's routes never reach another's records; a host restart re-attaches tenants; offboarding
 * removes process, data and registration; a host's malformed status report cannot stop main. What a tenant
 * refuses is in tenants-refusals.test.ts, its incident API in tenants-incidents.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFile, readdir } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { AgentKind, encodeEnvelope, jsonBytes } from '#common/codec.js';
import { Deployment, type ApiReply } from '../harness/deployment.js';
import type { ErrorBody, Incident, IncidentPage as Page } from '../harness/api-shapes.js';
import { alive, until } from '../harness/processes.js';
import { identityOf, rawConnect } from '../harness/raw-agent.js';
import {
  mainSigningKey as mainSigningKeyOf,
  portAnswers,
  rawMainRequest,
  signedHeaders,
} from '../harness/tenant-client.js';
import {
  allIncidents as allIncidentsOf,
  createIncident as createIncidentOf,
  tenantAnswering,
} from '../harness/tenant-api.js';
import { filesContaining, filesUnder } from '../harness/data-scan.js';
import { cliTenants as cliTenantsOf, direct, exists, tenantDir as tenantDirOf } from './tenants-fixtures.js';

let d: Deployment;

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'h1');
  // Started by hand with plain `node`: the host must still fork its tenants as the systemd unit would run them.
  await d.startAgent('h1', true, 'bare');
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

/** Strings that reached tenants only inside incident bodies: main's data directory must never hold them. */
const bodyMarkers: string[] = [];
const tenantDir = (name: string) => tenantDirOf(d, name);
const cliTenants = () => cliTenantsOf(d);
/** Waits until main reports the tenant running with a live pid other than `notPid`, and its API answers as that pid. */
const waitRunning = (name: string, notPid?: number) => tenantAnswering(d, name, notPid);
const createIncident = (tenant: string, body: Record<string, unknown>) => createIncidentOf(d, tenant, body);
const allIncidents = (tenant: string) => allIncidentsOf(d, tenant);
const rawMain = (method: string, path: string, body?: string) => rawMainRequest(d, method, path, body);
const mainSigningKey = () => mainSigningKeyOf(d.mainDir);

describe('tenants', () => {
  it('tenant create starts acme and globex; tenants --json shows host, distinct ports, running, labels and keys', async () => {
    const a = await d.cli(['tenant', 'create', 'acme', '--host', 'h1', '--labels', 'emea,gold', '--json']);
    expect(a.code, a.stdout + a.stderr).toBe(0);
    expect(a.json).toMatchObject({ name: 'acme', host: 'h1', labels: ['emea', 'gold'], status: 'running' });
    const g = await d.cli(['tenant', 'create', 'globex', '--host', 'h1']);
    expect(g.code, g.stdout + g.stderr).toBe(0);
    expect(g.stdout).toMatch(/tenant globex running on host h1 at 127\.0\.0\.1:\d+/);

    const rows = await until('both tenants running', async () => {
      const list = await cliTenants();
      return list.length === 2 && list.every((t) => t.status === 'running') ? list : undefined;
    });
    const acme = rows.find((t) => t.name === 'acme')!;
    const globex = rows.find((t) => t.name === 'globex')!;
    expect(acme).toMatchObject({ name: 'acme', host: 'h1', status: 'running', labels: ['emea', 'gold'] });
    expect(globex).toMatchObject({ name: 'globex', host: 'h1', status: 'running', labels: [] });
    for (const t of [acme, globex]) {
      // Another test file's host may hold 18501: the supervisor skips taken ports, so only the range is fixed.
      expect(t.port).toBeGreaterThanOrEqual(18501);
      expect(t.port).toBeLessThanOrEqual(19500);
      expect(Buffer.from(t.publicKey, 'base64')).toHaveLength(32);
      expect(Buffer.from(t.publicKey, 'base64').toString('base64')).toBe(t.publicKey);
      expect(t.publicKeyFingerprint).toMatch(/^[0-9a-f]{16}$/);
    }
    expect(acme.port).not.toBe(globex.port);
    // Forked with the agents' node flags and malloc settings (common/agent-runtime.ts), though the host itself
    // was started without them (and said so in its log).
    expect(await readFile(d.agentLog('h1'), 'utf8')).toMatch(
      /"missing":\["--single-threaded-gc","--scavenger-max-new-space-capacity-mb=8","--heap-growing-percent=200","MALLOC_TRIM_THRESHOLD_","MALLOC_TOP_PAD_","MALLOC_MMAP_THRESHOLD_"\]/,
    );
    for (const t of [acme, globex]) {
      const argv = (await readFile(`/proc/${t.pid}/cmdline`, 'utf8')).split('\0');
      for (const flag of [
        '--single-threaded-gc',
        '--scavenger-max-new-space-capacity-mb=8',
        '--heap-growing-percent=200',
      ])
        expect(argv).toContain(flag);
      expect((await readFile(`/proc/${t.pid}/environ`, 'utf8')).split('\0')).toContain(
        'MALLOC_TRIM_THRESHOLD_=33554432',
      );
    }
    expect(acme.publicKey).not.toBe(globex.publicKey);
    expect(acme.publicKeyFingerprint).not.toBe(globex.publicKeyFingerprint);
  });

  it('each tenant is its own OS process with its own LevelDB; after SIGKILL the other keeps serving and the killed one restarts', async () => {
    const acme = await waitRunning('acme');
    const globex = await waitRunning('globex');
    expect(acme.pid).not.toBe(globex.pid);
    expect(alive(acme.pid!)).toBe(true);
    expect(alive(globex.pid!)).toBe(true);
    expect(acme.pid).not.toBe(d.agents.get('h1')!.proc!.child.pid);
    for (const name of ['acme', 'globex']) {
      const store = await readdir(join(tenantDir(name), 'store'));
      expect(store, `${name} store`).toContain('CURRENT'); // a LevelDB directory
      expect(
        store.some((f) => f.endsWith('.log')),
        `${name} store has a write-ahead log`,
      ).toBe(true);
    }

    const seeded = await createIncident('globex', { name: 'globex keeps serving' });
    process.kill(acme.pid!, 'SIGKILL');
    // Right away, with acme down: globex still answers through main.
    const list = await d.api<Page>('GET', '/tenants/globex/api/incidents');
    expect(list.status, list.raw).toBe(200);
    expect(list.body.items.map((i) => i.id)).toContain(seeded.id);
    await until('acme pid gone', () => !alive(acme.pid!), 10_000, 50);

    const back = await waitRunning('acme', acme.pid!);
    expect(back.pid).not.toBe(acme.pid);
    // Usually the same port; another process may have taken it meanwhile. Either way main reports the real one.
    const cfg = JSON.parse(await readFile(join(tenantDir('acme'), 'tenant.json'), 'utf8')) as { port: number };
    expect(back.port).toBe(cfg.port);
    expect(back.restarts).toBeGreaterThanOrEqual(1);
    expect(alive(globex.pid!)).toBe(true);
    expect((await d.tenant('globex'))!.pid).toBe(globex.pid); // globex was not restarted
    const again = await d.api<Page>('GET', '/tenants/acme/api/incidents');
    expect(again.status, again.raw).toBe(200);
  });

  it('an acknowledged write survives kill -9 of the tenant process', async () => {
    const before = await waitRunning('acme');
    const marker = `durable-${randomUUID()}`;
    bodyMarkers.push(marker);
    const r = await d.api<Incident>('POST', '/tenants/acme/api/incidents', {
      name: marker,
      type: 'malware',
      severity: 4,
      details: `kill -9 ${marker}`,
    });
    expect(r.status, r.raw).toBe(201);
    process.kill(before.pid!, 'SIGKILL');
    await waitRunning('acme', before.pid!);
    const got = await d.api<Incident>('GET', `/tenants/acme/api/incidents/${r.body.id}`);
    expect(got.status, got.raw).toBe(200);
    expect(got.body).toEqual(r.body);
    // Ids continue after the restart instead of reusing the acknowledged one.
    const next = await createIncident('acme', { name: 'after restart' });
    expect(Number(next.id)).toBeGreaterThan(Number(r.body.id));
  });

  it('a tenant whose port was taken while it was down restarts on a free port, and tenants --json says which', async () => {
    const before = await waitRunning('acme');
    process.kill(before.pid!, 'SIGKILL');
    await until('acme pid gone', () => !alive(before.pid!), 10_000, 50);
    // Something else grabs the port before the supervisor's restart (its backoff is ≥ 250 ms).
    const squatter: Server = createServer((sock) => sock.destroy());
    const took = await new Promise<boolean>((res) =>
      squatter.once('error', () => res(false)).listen(before.port, '127.0.0.1', () => res(true)),
    );
    try {
      const back = await until(
        'acme running on another port',
        async () => {
          const t = await waitRunning('acme', before.pid!);
          return t.port !== before.port ? t : undefined;
        },
        60_000,
        200,
      );
      const cfg = JSON.parse(await readFile(join(tenantDir('acme'), 'tenant.json'), 'utf8')) as { port: number };
      expect(cfg.port).toBe(back.port);
      expect((await cliTenants()).find((t) => t.name === 'acme')!.port).toBe(back.port);
      const key = await mainSigningKey();
      const info = await direct(back.port, 'GET', '/api/v1/info', signedHeaders(key, 'acme', 'GET', '/api/v1/info'));
      expect(info.status, info.raw).toBe(200);
      expect(info.body).toMatchObject({ tenant: 'acme', pid: back.pid });
    } finally {
      if (took) await new Promise((r) => squatter.close(r));
    }
  });

  it("main's data directory holds none of the tenants' incidents; the tenants' own stores do", async () => {
    const markers = { acme: `MARKER-${randomUUID()}`, globex: `MARKER-${randomUUID()}` };
    bodyMarkers.push(...Object.values(markers));
    for (const [tenant, marker] of Object.entries(markers)) {
      const created = await createIncident(tenant, {
        name: `incident ${marker}`,
        details: `details ${marker}`,
        severity: 2,
      });
      const got = await d.api<Incident>('GET', `/tenants/${tenant}/api/incidents/${created.id}`);
      expect(got.body.name).toContain(marker);
      const listed = await d.api<Page>('GET', `/tenants/${tenant}/api/incidents?q=${marker}`);
      expect(listed.body.items).toHaveLength(1);
    }
    for (const [tenant, marker] of Object.entries(markers)) {
      // The search can succeed: the tenant's own LevelDB holds the marker.
      expect(await filesContaining(join(tenantDir(tenant), 'store'), marker), `${tenant} store`).not.toEqual([]);
      expect(await filesContaining(d.mainDir, marker), `main dir holds ${tenant}'s incident`).toEqual([]);
    }
    // The other tenant's store does not hold it either.
    expect(await filesContaining(join(tenantDir('acme'), 'store'), markers.globex)).toEqual([]);
    expect(await filesContaining(join(tenantDir('globex'), 'store'), markers.acme)).toEqual([]);
    expect((await filesUnder(d.mainDir)).some((f) => f.endsWith('.log') || f.endsWith('.ldb'))).toBe(true); // LevelDB files were searched
  });

  it("through main, acme's routes never return globex's records", async () => {
    const marker = `GLOBEX-ONLY-${randomUUID()}`;
    const detailsOnly = `GLOBEX-DETAILS-${randomUUID()}`;
    bodyMarkers.push(detailsOnly);
    const g = await createIncident('globex', {
      name: `secret ${marker}`,
      details: `${marker} ${detailsOnly}`,
      severity: 4,
    });
    const leaks = (r: ApiReply) => r.raw.includes(marker);

    const same = await d.api<Incident & ErrorBody>('GET', `/tenants/acme/api/incidents/${g.id}`);
    expect(leaks(same), same.raw).toBe(false);
    if (same.status === 200) expect(same.body.name).not.toBe(g.name);
    else expect(same.body.error.code).toBe('ERR_INCIDENT_NOT_FOUND');

    const q = await d.api<Page>('GET', `/tenants/acme/api/incidents?q=${marker}`);
    expect(q.status, q.raw).toBe(200);
    expect(q.body.items).toEqual([]);
    expect((await d.api<Page>('GET', `/tenants/globex/api/incidents?q=${marker}`)).body.items.map((i) => i.id)).toEqual(
      [g.id],
    );

    const tricks = [
      '/api/v1/tenants/acme/api/../../tenants/globex/api/incidents',
      '/api/v1/tenants/acme/api/../../../tenants/globex/api/incidents',
      `/api/v1/tenants/acme/api/../../tenants/globex/api/incidents/${g.id}`,
      '/api/v1/tenants/acme/api/%2e%2e/%2e%2e/tenants/globex/api/incidents',
      '/api/v1/tenants/acme/api/%2e%2e/%2e%2e/%2e%2e/tenants/globex/api/incidents',
      '/api/v1/tenants/acme/api/%2E%2E%2F%2E%2E%2Ftenants%2Fglobex%2Fapi%2Fincidents',
      '/api/v1/tenants/acme/api//incidents',
      '/api/v1/tenants/acme/api/incidents/../../../tenants/globex/api/incidents',
      '/api/v1/tenants/ACME/api/incidents',
      '/api/v1/tenants/acme%2fglobex/api/incidents',
      '/api/v1/tenants/acme%2Fapi%2F..%2F..%2Fglobex/api/incidents',
      '/api/v1/tenants/acme/api/incidents?q=x&tenant=globex',
    ];
    for (const path of tricks) {
      // A client that normalises `..` itself turns some of these into a plain request for globex (which
      // the admin may make); only what still names acme after normalisation is sent that way.
      const normalised = new URL(path, d.url).pathname;
      const sends: [string, ApiReply][] = [['verbatim', await rawMain('GET', path)]];
      if (!normalised.startsWith('/api/v1/tenants/globex/')) sends.push(['URL', await d.api('GET', path)]);
      for (const [how, r] of sends) {
        const what = `${how} GET ${path} → ${r.status} ${r.raw.slice(0, 200)}`;
        expect(leaks(r), what).toBe(false);
        expect(r.status, what).toBeLessThan(500);
        if (how === 'verbatim' && r.status === 200) {
          // A 200 can only be acme's own answer.
          expect((r.body as Page).items?.every((i) => !i.name.includes(marker)) ?? true, what).toBe(true);
        }
      }
    }
    for (const path of ['/api/v1/tenants/ACME/api/incidents', '/api/v1/tenants/acme%2fglobex/api/incidents']) {
      const r = await rawMain('GET', path);
      expect(r.status, `${path} → ${r.raw}`).toBe(400);
      expect((r.body as ErrorBody).error.code).toEqual(expect.any(String));
    }
  });

  it('a host restart re-attaches its tenants with their data intact', async () => {
    const before = { acme: await waitRunning('acme'), globex: await waitRunning('globex') };
    const sample = { acme: await allIncidents('acme'), globex: await allIncidents('globex') };
    const host = d.agents.get('h1')!.proc!;
    expect(await host.stop('SIGTERM')).toBe(0);
    // The host stops its tenant children on the way out.
    for (const t of Object.values(before)) await until(`tenant pid ${t.pid} gone`, () => !alive(t.pid!), 15_000, 50);

    await d.startAgent('h1');
    // While they come back, main must never call a tenant running on a pid that is gone.
    const stale: string[] = [];
    for (const [name, t] of Object.entries(before)) {
      await until(
        `${name} back after the host restart`,
        async () => {
          const row = await d.tenant(name);
          if (row?.status === 'running' && (!row.pid || row.pid === t.pid || !alive(row.pid)))
            stale.push(`${name} running as pid ${row.pid}`);
          return row?.status === 'running' && row.pid !== t.pid ? row : undefined;
        },
        60_000,
        50,
      );
      const back = await waitRunning(name, t.pid!);
      expect(back.pid).not.toBe(t.pid);
    }
    expect(stale).toEqual([]);
    expect(await allIncidents('acme')).toEqual(sample.acme);
    expect(await allIncidents('globex')).toEqual(sample.globex);
    expect((await cliTenants()).every((t) => t.status === 'running')).toBe(true);
  });

  it('tenant remove reports what it removed; process, directory, registration and port are gone', async () => {
    const g = await waitRunning('globex');
    const dir = tenantDir('globex');
    expect(await exists(dir)).toBe(true);
    const r = await d.cli(['tenant', 'remove', 'globex', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = r.json as { name: string; host: string; removed: string[] };
    expect(out).toMatchObject({ name: 'globex', host: 'h1' });
    expect(out.removed).toEqual(expect.arrayContaining([`process ${g.pid}`, `data directory ${dir}`]));
    expect(out.removed.join('\n')).toContain(g.publicKeyFingerprint);

    expect(alive(g.pid!)).toBe(false);
    expect(() => process.kill(g.pid!, 0)).toThrow();
    expect(await exists(dir)).toBe(false);
    expect((await cliTenants()).map((t) => t.name)).toEqual(['acme']);
    const relay = await d.api<ErrorBody>('GET', '/tenants/globex/api/incidents');
    expect(relay.status).toBe(404);
    expect(relay.body.error.code).toBe('ERR_TENANT_NOT_FOUND');

    // Nothing serves globex on its old port. (Another test file's host may take a freed port at any
    // moment, so "nothing answers" is checked as: refused, or whatever answers is not globex.)
    const key = await mainSigningKey();
    const answer = await portAnswers(g.port, signedHeaders(key, 'globex', 'GET', '/api/v1/info'));
    if (answer) expect(answer.status, answer.raw).not.toBe(200);

    // acme is untouched.
    await waitRunning('acme');
  });

  it("after all of the above, main's data directory still holds no incident body", async () => {
    expect(bodyMarkers.length).toBeGreaterThanOrEqual(4);
    for (const m of bodyMarkers) expect(await filesContaining(d.mainDir, m), m).toEqual([]);
    expect(await filesContaining(join(tenantDir('acme'), 'store'), bodyMarkers[0])).not.toEqual([]);
  });

  it("a host's malformed tenant status report neither stops main nor changes what it shows", async () => {
    const host = d.agents.get('h1')!;
    expect(await host.proc!.stop('SIGTERM')).toBe(0);
    const before = (await cliTenants()).map((t) => ({ name: t.name, port: t.port, labels: t.labels }));
    // h1's own certificate, so main takes the frames as h1's; the bodies are what a broken host might send.
    const c = rawConnect(d.url, identityOf(host.dir));
    expect(await c.opened).toBe(true);
    c.ws.send(
      encodeEnvelope({
        id: 1,
        hello: {
          protocolMajor: 1,
          protocolMinor: 0,
          agentVersion: 'test',
          kind: AgentKind.AGENT_KIND_HOST,
          name: 'h1',
        },
      }),
    );
    await until('welcome', () => c.frames.find((f) => f.welcome), 10_000);
    for (const [i, report] of [
      [null],
      [{ name: 42 }],
      ['acme'],
      [{ name: 'acme', state: { x: 1 }, pid: 'x', port: 'y' }],
    ].entries()) {
      c.ws.send(encodeEnvelope({ id: 10 + i, event: { type: 'tenant.status', data: jsonBytes(report) } }));
    }
    // Frames are handled in order: by the heartbeat's answer main has read the reports (before the fix, the
    // first one threw in a promise nobody awaited, and Node ended main on the unhandled rejection).
    c.ws.send(encodeEnvelope({ id: 20, heartbeat: { sentAtMs: Date.now() } }));
    await until('heartbeat answer', () => c.frames.find((f) => f.replyTo === 20), 10_000);
    expect((await d.api('GET', '/health', undefined, { key: null })).status).toBe(200);
    expect(d.main!.running).toBe(true);
    expect((await cliTenants()).map((t) => ({ name: t.name, port: t.port, labels: t.labels }))).toEqual(before);
    c.ws.close();
    await c.closed;
  });
});
