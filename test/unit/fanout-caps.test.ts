/**
 * An integration command across tenants (main/search/fanout.ts runCommand) holds the tenants' answers in main's
 * memory, so it caps them: a tenant whose answer is over MAX_INTEGRATION_REPLY_BYTES of JSON gets an error entry
 * saying to run the command on that tenant alone, and once the answers together reach MAX_INTEGRATION_ANSWER_BYTES
 * the later ones are error entries saying to select fewer tenants; the other tenants' results still come back whole.
 * The relay and the audit log are the seams faked; no I/O.
 */
import { describe, expect, it } from 'vitest';
import {
  MAX_INTEGRATION_ANSWER_BYTES,
  MAX_INTEGRATION_REPLY_BYTES,
  runCommand,
  type CommandResult,
} from '../../main/search/fanout.js';
import type { Principal } from '../../main/access/api-keys.js';
import type { AuditLog } from '../../main/access/audit.js';
import type { TenantService } from '../../main/tenants/tenants.js';

/** Tenants answering a run with a result of `sizes[name]` characters of padding. */
function fakeService(sizes: Record<string, number>) {
  const service = {
    list: async () => Object.keys(sizes).map((name) => ({ name, labels: ['all'], status: 'running' })),
    peek: (name: string) => ({ name }),
    relay: async (name: string) => {
      const value = { instance: 'web', command: 'get', result: { pad: 'p'.repeat(sizes[name]) } };
      return { status: 200, contentType: 'application/json', body: Buffer.from(JSON.stringify(value)) };
    },
  };
  return service as unknown as TenantService;
}
const audit = { record: async () => undefined, recordLater: () => undefined } as unknown as AuditLog;
const admin = {
  user: { id: 'usr_1', name: 'admin', roles: ['admin'], createdAt: '' },
  keyId: 'k',
  permissions: new Set(),
  scope: { all: true },
} as unknown as Principal;

const outcome = (results: CommandResult[]) => results.map((r) => [r.tenant, r.ok ? 'ok' : r.error.code]);

describe('an integration fan-out caps what it holds', () => {
  it("a tenant's answer over the per-tenant cap is its error entry, naming how to run it alone; others are whole", async () => {
    const service = fakeService({ a: 1000, b: MAX_INTEGRATION_REPLY_BYTES, c: 1000 });
    const { results } = await runCommand(service, audit, admin, { command: 'integration:web.get', labels: ['all'] });
    expect(outcome(results)).toEqual([
      ['a', 'ok'],
      ['b', 'ERR_FANOUT_REPLY_TOO_LARGE'],
      ['c', 'ok'],
    ]);
    const b = results[1] as Extract<CommandResult, { ok: false }>;
    expect(b.error.message).toContain(`more than the ${MAX_INTEGRATION_REPLY_BYTES} a tenant's entry may hold`);
    expect(b.error.message).toContain("'palisade integrations run web get --tenant b'");
    expect(results[0]).toMatchObject({ ok: true, result: { result: { pad: 'p'.repeat(1000) } } });
  });

  it('once the answers reach the whole cap, the rest are error entries saying to select fewer tenants', async () => {
    const each = MAX_INTEGRATION_REPLY_BYTES - 200; // under the per-tenant cap with its envelope
    const fit = Math.floor(MAX_INTEGRATION_ANSWER_BYTES / MAX_INTEGRATION_REPLY_BYTES);
    const names = Array.from({ length: fit + 3 }, (_, i) => `t${String(i).padStart(3, '0')}`);
    const service = fakeService(Object.fromEntries(names.map((n) => [n, each])));
    const { results } = await runCommand(service, audit, admin, { command: 'integration:web.get', labels: ['all'] });
    const full = results.filter((r) => !r.ok);
    expect(results.filter((r) => r.ok).length).toBeGreaterThanOrEqual(fit);
    expect(full.length).toBeGreaterThanOrEqual(1);
    for (const r of full) {
      expect(r).toMatchObject({ ok: false, error: { code: 'ERR_FANOUT_ANSWER_FULL' } });
      expect((r as Extract<CommandResult, { ok: false }>).error.message).toContain('select fewer tenants');
    }
    const held = results.reduce((n, r) => n + (r.ok ? JSON.stringify(r.result).length : 0), 0);
    expect(held).toBeLessThanOrEqual(MAX_INTEGRATION_ANSWER_BYTES);
  });
});
