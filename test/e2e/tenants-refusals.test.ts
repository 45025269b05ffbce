/**
 * What a tenant refuses, end to end with real processes (main, host h1, tenants acme and globex): it acts
 * only on requests main signed for itself (unsigned, foreign-signed, other tenant's, expired, replayed or
 * altered requests are refused with their own codes, and create nothing), and bad input to main or through
 * it gets a 4xx JSON error naming the problem and changes nothing. Split from tenants.test.ts (life cycle
 * and data placement); no test here depends on another file's.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { Deployment } from '../harness/deployment.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import { mainSigningKey as mainSigningKeyOf, signedHeaders } from '../harness/tenant-client.js';
import { allIncidents as allIncidentsOf } from '../harness/tenant-api.js';
import { cliTenants as cliTenantsOf, direct, exists, tenantDir as tenantDirOf } from './tenants-fixtures.js';

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

const tenantDir = (name: string) => tenantDirOf(d, name);
const cliTenants = () => cliTenantsOf(d);
const allIncidents = (tenant: string) => allIncidentsOf(d, tenant);
const mainSigningKey = () => mainSigningKeyOf(d.mainDir);

describe('tenants', () => {
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

  it('a relayed body of a media type the tenant does not read gets 415, creates nothing, and is no forgery', async () => {
    const before = (await allIncidents('acme')).length;
    // Tests above send forged requests on purpose: count the tenant's forgery lines before and after.
    const forged = async () => {
      const audit = await d.cli(['audit', '--tenant', 'acme', '--limit', '500', '--json']);
      return audit.stdout.split('ERR_SIGNATURE_MISMATCH').length - 1;
    };
    const forgedBefore = await forged();
    const body = JSON.stringify({ name: 'sent as text', type: 'generic', severity: 1 });
    for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/xml']) {
      const r = await d.api<ErrorBody>('POST', '/tenants/acme/api/incidents', undefined, {
        rawBody: body,
        headers: { 'content-type': type },
      });
      expect(r.status, `${type}: ${r.raw}`).toBe(415);
      expect(r.body.error.code).toBe('ERR_UNSUPPORTED_MEDIA_TYPE');
    }
    expect((await allIncidents('acme')).length).toBe(before);
    // The tenant's audit does not record the caller as a forger (a body hash that "differs").
    expect(await forged()).toBe(forgedBefore);
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
});
