/**
 * Failed authentications are throttled per source address on main (main/access/auth-throttle.ts), with a real
 * main, host and tenant: past the limit, forged tenant keys get 429 with Retry-After and no longer reach
 * the tenant at all (its audit log stops growing), bad main keys get 429 without an audit line each, one
 * `auth.throttle` line says the address was blocked, a valid admin key from the same address still
 * works, and another address is not affected.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { Deployment } from '../harness/deployment.js';

const LIMIT = 8;
let d: Deployment;

beforeAll(async () => {
  d = await Deployment.create({ mainConfig: { authFailuresPerMinute: LIMIT } });
  await d.install('host', 'th');
  await d.startAgent('th');
  await d.createTenant('ta', 'th');
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

/** A request with this bearer from a chosen loopback source address (Linux answers all of 127/8). */
function from(
  localAddress: string,
  key: string,
  path: string,
): Promise<{ status: number; retryAfter?: string; code?: string }> {
  return new Promise((resolve, reject) => {
    request(
      new URL(`/api/v1${path}`, d.url),
      { localAddress, ca: readFileSync(d.caCertPath), headers: { authorization: `Bearer ${key}` } },
      (res) => {
        let raw = '';
        res.on('data', (c: Buffer) => {
          raw += c;
        });
        res.on('end', () => {
          let code: string | undefined;
          try {
            code = (JSON.parse(raw) as { error?: { code?: string } }).error?.code;
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, code });
        });
      },
    )
      .on('error', reject)
      .end();
  });
}

const forgedTenantKey = (i: number) => `ptk_ta~${String(i).padStart(12, 'A')}.${'B'.repeat(43)}`;
const badMainKey = `pal_${'A'.repeat(12)}.${'C'.repeat(43)}`;

async function tenantDenials(): Promise<number> {
  const r = await d.api<{ outcome: string }[]>('GET', '/tenants/ta/api/audit?limit=10000');
  expect(r.status).toBe(200);
  return r.body.filter((e) => e.outcome === 'denied').length;
}

describe('failed authentications from one address', () => {
  it('are refused with 429 past the limit, without reaching the tenant or filling the audit log', async () => {
    const before = await tenantDenials();
    for (let i = 0; i < LIMIT; i++) {
      const r = await from('127.0.0.1', forgedTenantKey(i), '/tenants/ta/api/incidents');
      expect(r.status, `forged key ${i}`).toBe(401);
    }
    expect(await tenantDenials()).toBe(before + LIMIT); // each reached the tenant, which refused it

    for (let i = LIMIT; i < LIMIT + 20; i++) {
      const r = await from('127.0.0.1', forgedTenantKey(i), '/tenants/ta/api/incidents');
      expect(r.status, `forged key ${i}`).toBe(429);
      expect(r.code).toBe('ERR_AUTH_THROTTLED');
      expect(Number(r.retryAfter)).toBeGreaterThan(0);
      expect(Number(r.retryAfter)).toBeLessThanOrEqual(60);
    }
    const badMain = await from('127.0.0.1', badMainKey, '/tenants');
    expect(badMain.status).toBe(429);
    expect(await tenantDenials()).toBe(before + LIMIT); // none of the refused ones cost the tenant anything

    // main audited the block once, and not each refused attempt after it.
    const audit = await d.api<{ action: string; target?: string; outcome: string }[]>('GET', '/audit?limit=10000');
    expect(audit.body.filter((e) => e.action === 'auth.throttle')).toHaveLength(1);
    expect(audit.body.filter((e) => e.action === 'auth.key' && e.outcome === 'denied').length).toBeLessThan(LIMIT);
  });

  it('do not lock out a valid main key from the same address, nor another address', async () => {
    expect((await from('127.0.0.1', d.apiKey, '/tenants')).status).toBe(200);
    expect((await from('127.0.0.1', d.apiKey, '/tenants/ta/api/incidents')).status).toBe(200);
    const other = await from('127.0.0.2', forgedTenantKey(999), '/tenants/ta/api/incidents');
    expect(other.status).toBe(401);
    expect((await from('127.0.0.2', badMainKey, '/tenants')).status).toBe(401);
  });

  it('the CLI says what happened in one line, exit 1', async () => {
    const r = await d.cli(['tenants', '--json'], { PALISADE_API_KEY: badMainKey });
    expect(r.code).toBe(1);
    expect((r.json as { error: { code: string; message: string } }).error).toMatchObject({
      code: 'ERR_AUTH_THROTTLED',
      message: expect.stringContaining('retry in'),
    });
  });
});
