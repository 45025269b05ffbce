/**
 * Tenants end to end with real processes: each tenant is its own OS process with its own LevelDB and
 * port, restarted by its host after a crash (on a free port if its own was taken) without losing
 * acknowledged writes; main relays into a tenant's API but stores none of its data; one tenant's routes
 * never reach another's records; a tenant acts only on requests signed by main for itself; bad input
 * changes nothing; a host restart re-attaches tenants; offboarding removes process, data and
 * registration; a host's malformed status report cannot stop main.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { access, readFile, readdir, writeFile } from 'node:fs/promises';
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { AgentKind, encodeEnvelope, jsonBytes } from '#common/codec.js';
import { Deployment, type ApiReply, type TenantRow } from '../harness/deployment.js';
import { alive, until } from '../harness/processes.js';
import { identityOf, rawConnect } from '../harness/raw-agent.js';
import {
  directRequest,
  mainSigningKey as mainSigningKeyOf,
  portAnswers,
  rawMainRequest,
  signedHeaders,
} from '../harness/tenant-client.js';
import { filesContaining, filesUnder } from '../harness/data-scan.js';

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

interface Incident {
  id: string;
  name: string;
  type: string;
  severity: number;
  details: string;
  status: string;
  created: string;
  updated: string;
  closed?: string;
}
interface Page {
  items: Incident[];
  next: string | null;
}
interface Indicator {
  value: string;
  type: string;
  reputation: string;
  firstSeen: string;
  lastSeen: string;
  incidents: string[];
}
interface ErrorBody {
  error: { code: string; message: string };
}

/** Strings that reached tenants only inside incident bodies: main's data directory must never hold them. */
const bodyMarkers: string[] = [];
const hostDir = () => d.agents.get('h1')!.dir;
const tenantDir = (name: string) => join(hostDir(), 'tenants', name);

// ---- helpers -------------------------------------------------------------------------------------

async function cliTenants(): Promise<TenantRow[]> {
  const r = await d.cli(['tenants', '--json']);
  if (r.code !== 0) throw new Error(`palisade tenants failed: ${r.stdout}${r.stderr}`);
  return r.json as TenantRow[];
}

/** Waits until main reports the tenant running with a live pid other than `notPid`, and its API answers as that pid. */
async function waitRunning(name: string, notPid?: number, timeoutMs = 60_000): Promise<TenantRow> {
  return until(
    `${name} answering as its pid`,
    async () => {
      const t = await d.tenantRunning(name, { notPid, timeoutMs });
      const info = await d.api<{ tenant: string; pid: number }>('GET', `/tenants/${name}/api/info`);
      return info.status === 200 && info.body.tenant === name && info.body.pid === t.pid ? t : undefined;
    },
    timeoutMs,
    200,
  );
}

async function createIncident(tenant: string, body: Record<string, unknown>): Promise<Incident> {
  const r = await d.api<Incident>('POST', `/tenants/${tenant}/api/incidents`, {
    type: 'generic',
    severity: 1,
    details: '',
    ...body,
  });
  if (r.status !== 201) throw new Error(`create incident in ${tenant}: ${r.status} ${r.raw}`);
  return r.body;
}

/** Every incident of a tenant through main, paging to the end. */
async function allIncidents(tenant: string, query = '', limit = 1000): Promise<Incident[]> {
  const out: Incident[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const r: ApiReply<Page> = await d.api<Page>(
      'GET',
      `/tenants/${tenant}/api/incidents?limit=${limit}${query ? `&${query}` : ''}${cursor ? `&cursor=${cursor}` : ''}`,
    );
    if (r.status !== 200) throw new Error(`list ${tenant}: ${r.status} ${r.raw}`);
    out.push(...r.body.items);
    cursor = r.body.next;
    if (!cursor) return out;
  }
  throw new Error('paging did not end');
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

const rawMain = (method: string, path: string, body?: string) => rawMainRequest(d, method, path, body);
const direct = (port: number, method: string, path: string, headers: Record<string, string> = {}, body?: string) =>
  directRequest<ErrorBody & Page & Incident>(port, method, path, headers, body);
const mainSigningKey = () => mainSigningKeyOf(d.mainDir);

// ---- tests ---------------------------------------------------------------------------------------

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
      /"missing":\["--single-threaded-gc","MALLOC_TRIM_THRESHOLD_","MALLOC_TOP_PAD_","MALLOC_MMAP_THRESHOLD_"\]/,
    );
    for (const t of [acme, globex]) {
      expect((await readFile(`/proc/${t.pid}/cmdline`, 'utf8')).split('\0')).toContain('--single-threaded-gc');
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

  describe('a tenant trusts only main', () => {
    let acmePort = 0;
    let key: KeyObject;
    const path = '/api/v1/incidents';

    beforeAll(async () => {
      acmePort = (await cliTenants()).find((t) => t.name === 'acme')!.port;
      key = await mainSigningKey();
    });

    it('refuses an unsigned request with ERR_SIGNATURE_MISSING', async () => {
      const r = await direct(acmePort, 'GET', path);
      expect([401, 403], r.raw).toContain(r.status);
      expect(r.body.error.code).toBe('ERR_SIGNATURE_MISSING');
      expect(r.raw).not.toContain('"items"');
    });

    it('refuses a request signed with another ed25519 key with ERR_SIGNATURE_INVALID', async () => {
      const other = generateKeyPairSync('ed25519').privateKey;
      const r = await direct(acmePort, 'GET', path, signedHeaders(other, 'acme', 'GET', path));
      expect([401, 403], r.raw).toContain(r.status);
      expect(r.body.error.code).toBe('ERR_SIGNATURE_INVALID');
    });

    it("refuses main's signature for globex sent to acme with ERR_SIGNATURE_WRONG_TENANT", async () => {
      const r = await direct(acmePort, 'GET', path, signedHeaders(key, 'globex', 'GET', path));
      expect([401, 403], r.raw).toContain(r.status);
      expect(r.body.error.code).toBe('ERR_SIGNATURE_WRONG_TENANT');
    });

    it('refuses an expired signature with ERR_SIGNATURE_EXPIRED', async () => {
      const r = await direct(acmePort, 'GET', path, signedHeaders(key, 'acme', 'GET', path, undefined, -1000));
      expect([401, 403], r.raw).toContain(r.status);
      expect(r.body.error.code).toBe('ERR_SIGNATURE_EXPIRED');
    });

    it('answers a valid signed request once and refuses its replay with ERR_SIGNATURE_REPLAYED', async () => {
      const h = signedHeaders(key, 'acme', 'GET', path);
      const first = await direct(acmePort, 'GET', path, h);
      expect(first.status, first.raw).toBe(200);
      expect(Array.isArray(first.body.items)).toBe(true);
      const replay = await direct(acmePort, 'GET', path, h);
      expect([401, 403], replay.raw).toContain(replay.status);
      expect(replay.body.error.code).toBe('ERR_SIGNATURE_REPLAYED');
    });

    it('refuses a signed path or body that differs from what is sent with ERR_SIGNATURE_MISMATCH', async () => {
      const p = await direct(acmePort, 'GET', `${path}?limit=1`, signedHeaders(key, 'acme', 'GET', path));
      expect([401, 403], p.raw).toContain(p.status);
      expect(p.body.error.code).toBe('ERR_SIGNATURE_MISMATCH');
      const m = await direct(acmePort, 'DELETE', path, signedHeaders(key, 'acme', 'GET', path));
      expect(m.status, m.raw).toBeGreaterThanOrEqual(400);
      expect(m.status, m.raw).toBeLessThan(500);

      const before = (await allIncidents('acme')).length;
      const signedBody = JSON.stringify({ name: 'signed body', type: 'generic', severity: 1 });
      const sentBody = JSON.stringify({ name: 'tampered body', type: 'generic', severity: 4 });
      const b = await direct(acmePort, 'POST', path, signedHeaders(key, 'acme', 'POST', path, signedBody), sentBody);
      expect([401, 403], b.raw).toContain(b.status);
      expect(b.body.error.code).toBe('ERR_SIGNATURE_MISMATCH');
      expect((await allIncidents('acme')).length).toBe(before);
    });

    it('an unsigned POST creates nothing', async () => {
      const before = await allIncidents('acme');
      const body = JSON.stringify({ name: `unsigned ${randomUUID()}`, type: 'generic', severity: 4 });
      const r = await direct(acmePort, 'POST', path, {}, body);
      expect([401, 403], r.raw).toContain(r.status);
      expect(r.body.error.code).toBe('ERR_SIGNATURE_MISSING');
      const batch = await direct(acmePort, 'POST', path, {}, JSON.stringify({ items: [JSON.parse(body)] }));
      expect([401, 403], batch.raw).toContain(batch.status);
      // The signature is checked before the body is read: a broken body gets the same refusal, not a parse error,
      // and an oversized one is refused (or cut off mid-upload) rather than read up to the limit and answered 413.
      const broken = await direct(acmePort, 'POST', path, {}, '{"name": ');
      expect(broken.body.error?.code, broken.raw).toBe('ERR_SIGNATURE_MISSING');
      const huge = await direct(acmePort, 'POST', path, {}, 'x'.repeat(9 * 1024 * 1024)).then(
        (r2) => r2.body.error?.code,
        (e: NodeJS.ErrnoException) => e.code,
      );
      expect(['ERR_SIGNATURE_MISSING', 'EPIPE', 'ECONNRESET']).toContain(huge);
      const after = await allIncidents('acme');
      expect(after).toEqual(before);
    });
  });

  it('bad input gets 4xx JSON naming the problem and changes nothing', async () => {
    const tenantsBefore = (await cliTenants()).map((t) => t.name).sort();
    const counts = async () => ({
      acme: (await allIncidents('acme')).length,
      globex: (await allIncidents('globex')).length,
    });
    const countsBefore = await counts();

    const noHost = await d.cli(['tenant', 'create', 'initech', '--host', 'no-such-host', '--json']);
    expect(noHost.code).toBe(2);
    expect((noHost.json as ErrorBody).error.code).toBe('ERR_HOST_NOT_FOUND');
    const noHostRest = await d.api<ErrorBody>('POST', '/tenants', { name: 'initech', host: 'no-such-host' });
    expect(noHostRest.status).toBe(404);
    expect(noHostRest.body.error.code).toBe('ERR_HOST_NOT_FOUND');
    expect(noHostRest.body.error.message).toContain('no-such-host');

    const dup = await d.cli(['tenant', 'create', 'acme', '--host', 'h1', '--json']);
    expect(dup.code).toBe(2);
    expect((dup.json as ErrorBody).error.code).toBe('ERR_TENANT_EXISTS');
    const dupRest = await d.api<ErrorBody>('POST', '/tenants', { name: 'acme', host: 'h1' });
    expect(dupRest.status).toBe(409);
    expect(dupRest.body.error.code).toBe('ERR_TENANT_EXISTS');

    const bad = await d.api<ErrorBody>('POST', '/tenants', { name: 'Bad Name', host: 'h1' });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toContain('name');
    const badCli = await d.cli(['tenant', 'create', 'Bad Name', '--host', 'h1', '--json']);
    expect(badCli.code).not.toBe(0);
    expect((badCli.json as ErrorBody).error.message).toContain('name');

    const incidentCases: { what: string; body?: unknown; raw?: string; status: number; names?: string }[] = [
      { what: 'severity 9', body: { name: 'x', type: 'generic', severity: 9 }, status: 400, names: 'severity' },
      {
        what: 'severity as a string',
        body: { name: 'x', type: 'generic', severity: '3' },
        status: 400,
        names: 'severity',
      },
      { what: 'missing name', body: { type: 'generic', severity: 1 }, status: 400, names: 'name' },
      {
        what: 'unknown field',
        body: { name: 'x', type: 'generic', severity: 1, owner: 'mallory' },
        status: 400,
        names: 'owner',
      },
      { what: 'bad JSON', raw: '{"name": "x", ', status: 400 },
      {
        what: '2 MiB body',
        raw: JSON.stringify({ name: 'x', type: 'generic', severity: 1, details: 'x'.repeat(2 * 1024 * 1024) }),
        status: 413,
      },
    ];
    for (const c of incidentCases) {
      const r = await d.api<ErrorBody>('POST', '/tenants/acme/api/incidents', c.body, { rawBody: c.raw });
      expect(r.status, `${c.what} → ${r.raw.slice(0, 300)}`).toBe(c.status);
      expect(r.body.error.code, c.what).toEqual(expect.any(String));
      if (c.names) expect(r.body.error.message, c.what).toContain(c.names);
    }
    const patch = await d.api<ErrorBody>('PATCH', '/tenants/acme/api/incidents/1', { severity: 9 });
    expect(patch.status, patch.raw).toBe(400);
    expect(patch.body.error.message).toContain('severity');

    expect((await cliTenants()).map((t) => t.name).sort()).toEqual(tenantsBefore);
    expect(await counts()).toEqual(countsBefore);
    expect(await exists(tenantDir('initech'))).toBe(false);
  });

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
