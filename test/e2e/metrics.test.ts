/**
 * Main's observability as an operator's scraper and load balancer see it: `/readyz` answers 200 without a key,
 * `/metrics` answers only a key whose role holds `metrics:read` (a custom role made for the scraper), parses as
 * strict Prometheus text with every documented family, and its counters move when a ping, a relayed tenant
 * request, a failing command and a bad key happen; a relayed engine shows up as an open session and bytes; a
 * command for an offline agent is pending, then expired.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Deployment, type ApiReply } from '../harness/deployment.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import { parseExposition, sampleSum, type Exposition } from '../harness/prometheus-text.js';
import { until } from '../harness/processes.js';

let d: Deployment;
let scraperKey = '';

/** Every family docs/operations.md#metrics lists, with its type. */
const FAMILIES: Record<string, string> = {
  palisade_agents_connected: 'gauge',
  palisade_commands_queued_total: 'counter',
  palisade_commands_finished_total: 'counter',
  palisade_commands_pending: 'gauge',
  palisade_relay_request_duration_seconds: 'histogram',
  palisade_tunnel_relay_bytes_total: 'counter',
  palisade_tunnel_relay_dropped_records_total: 'counter',
  palisade_tunnel_relay_sessions: 'gauge',
  palisade_enrolments_total: 'counter',
  palisade_auth_failures_total: 'counter',
  palisade_tenants: 'gauge',
  process_cpu_seconds_total: 'counter',
  process_resident_memory_bytes: 'gauge',
  nodejs_eventloop_lag_seconds: 'gauge',
};

/** A user holding one custom role of these main permissions, and a key of theirs. */
async function keyWithRole(role: string, mainPermissions: string[]): Promise<string> {
  const r = await d.api('POST', '/roles', { name: role, permissions: [], mainPermissions });
  expect(r.status, r.raw).toBe(201);
  return d.createKey((await d.createUser({ name: `${role}-user`, roles: [role] })).id);
}

async function scrape(): Promise<Exposition> {
  const r = await d.api('GET', '/metrics', undefined, { key: scraperKey });
  expect(r.status, r.raw.slice(0, 300)).toBe(200);
  expect(r.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(r.raw);
}

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'mh');
  await d.startAgent('mh');
  await d.createTenant('mt', 'mh');
  scraperKey = await keyWithRole('scraper', ['metrics:read']);
}, 180_000);
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('/readyz', () => {
  it('answers 200 {ready: true} without a key while main serves', async () => {
    const r = await d.api<{ ready: boolean; checks: Record<string, boolean> }>('GET', '/readyz', undefined, {
      key: null,
    });
    expect(r.status, r.raw).toBe(200);
    expect(r.body).toEqual({ ready: true, checks: { store: true, https: true, agents: true } });
  });
});

describe('/metrics', () => {
  it('refuses a request without a key (401) and a key whose role lacks metrics:read (403)', async () => {
    const none = await d.api<ErrorBody>('GET', '/metrics', undefined, { key: null });
    expect(none.status).toBe(401);
    const watcher = await keyWithRole('watcher', ['agents:read']);
    expect((await d.api('GET', '/hosts', undefined, { key: watcher })).status).toBe(200);
    const r = await d.api<ErrorBody>('GET', '/metrics', undefined, { key: watcher });
    expect(r.status, r.raw).toBe(403);
    expect(r.body.error.code).toBe('ERR_FORBIDDEN');
    expect(r.body.error.message).toContain('metrics:read');
  });

  it('parses as Prometheus text with every documented family, and shows the connected host and its tenant', async () => {
    const e = await scrape();
    for (const [name, type] of Object.entries(FAMILIES)) expect(e.types.get(name), name).toBe(type);
    expect(sampleSum(e, 'palisade_agents_connected', { kind: 'host' })).toBe(1);
    expect(sampleSum(e, 'palisade_agents_connected', { kind: 'engine' })).toBe(0);
    expect(sampleSum(e, 'palisade_tenants', { host: 'mh', status: 'running' })).toBe(1);
    // The host's enrolment, and the tenant creation the deployment ran, are already counted.
    expect(sampleSum(e, 'palisade_enrolments_total', { outcome: 'ok' })).toBe(1);
    expect(sampleSum(e, 'palisade_commands_finished_total', { command: 'tenant.create', state: 'done' })).toBe(1);
    expect(sampleSum(e, 'palisade_commands_pending')).toBe(0);
  });

  it('moves its counters when a ping, a relayed request, a failing command and a bad key happen', async () => {
    const before = await scrape();
    const ping = await d.cli(['hosts', 'ping', 'mh', '--json']);
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    const relayed: ApiReply = await d.api('GET', '/tenants/mt/api/incidents');
    expect(relayed.status, relayed.raw).toBe(200);
    // The host refuses a tenant it has no room for: the durable tenant.create command fails.
    const big = await d.cli(['tenant', 'create', 'too-big', '--host', 'mh', '--memory-mb', '1000000', '--json']);
    expect((big.json as ErrorBody).error.code).toBe('ERR_HOST_BUDGET');
    expect(
      (await d.api('GET', '/hosts', undefined, { key: 'pal_AAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBB' })).status,
    ).toBe(401);
    const after = await scrape();
    const moved = (name: string, labels: Record<string, string>) =>
      sampleSum(after, name, labels) - sampleSum(before, name, labels);
    expect(moved('palisade_commands_queued_total', { command: 'ping' })).toBe(1);
    expect(moved('palisade_commands_finished_total', { command: 'ping', state: 'done' })).toBe(1);
    expect(moved('palisade_commands_queued_total', { command: 'tenant.create' })).toBe(1);
    expect(moved('palisade_commands_finished_total', { command: 'tenant.create', state: 'failed' })).toBe(1);
    expect(moved('palisade_commands_finished_total', { state: 'expired' })).toBe(0);
    // Content propagation may relay too: at least this request, answered 2xx, with its time in the sum.
    expect(moved('palisade_relay_request_duration_seconds_count', { result: '2xx' })).toBeGreaterThanOrEqual(1);
    expect(moved('palisade_relay_request_duration_seconds_sum', { result: '2xx' })).toBeGreaterThan(0);
    expect(moved('palisade_relay_request_duration_seconds_bucket', { result: '2xx', le: '+Inf' })).toBe(
      moved('palisade_relay_request_duration_seconds_count', { result: '2xx' }),
    );
    expect(moved('palisade_auth_failures_total', { door: 'api' })).toBe(1);
    expect(sampleSum(after, 'palisade_commands_pending')).toBe(0);
    expect(sampleSum(after, 'palisade_tenants', { host: 'mh' })).toBe(1);
  });

  it('counts a relayed engine session and its bytes both ways', async () => {
    await d.startEngine('me', 'mt', { flags: ['--no-direct'], transport: 'relay' });
    const e = await until('the relayed session in /metrics', async () => {
      const s = await scrape();
      return sampleSum(s, 'palisade_tunnel_relay_sessions') === 1 ? s : undefined;
    });
    expect(sampleSum(e, 'palisade_agents_connected', { kind: 'engine' })).toBe(1);
    expect(sampleSum(e, 'palisade_enrolments_total', { outcome: 'ok' })).toBe(2);
    expect(sampleSum(e, 'palisade_tunnel_relay_bytes_total', { direction: 'engine_to_host' })).toBeGreaterThan(0);
    expect(sampleSum(e, 'palisade_tunnel_relay_bytes_total', { direction: 'host_to_engine' })).toBeGreaterThan(0);
  });

  it('shows a command waiting for its offline agent as pending, then counts it expired when its deadline passed', async () => {
    expect(await d.agents.get('me')!.proc!.stop()).toBe(0);
    const before = await until('the engine gone from /metrics', async () => {
      const s = await scrape();
      return sampleSum(s, 'palisade_agents_connected', { kind: 'engine' }) === 0 ? s : undefined;
    });
    const r = await d.api<{ state: string; deadline: string }>('POST', '/engines/me/commands', {
      command: 'ping',
      wait: false,
      deadline: '1s',
    });
    expect(r.status, r.raw).toBe(202);
    const queued = await scrape();
    expect(sampleSum(queued, 'palisade_commands_pending')).toBe(1);
    expect(
      sampleSum(queued, 'palisade_commands_queued_total', { command: 'ping' }) -
        sampleSum(before, 'palisade_commands_queued_total', { command: 'ping' }),
    ).toBe(1);
    // The point is time passing beyond the deadline: wait for the clock, then bring the engine back.
    const bringBackAt = Date.parse(r.body.deadline) + 1000;
    await new Promise((res) => setTimeout(res, Math.max(0, bringBackAt - Date.now())));
    await d.startAgent('me');
    const expired = (s: Exposition) =>
      sampleSum(s, 'palisade_commands_finished_total', { command: 'ping', state: 'expired' });
    const after = await until('the expired command counted', async () => {
      const s = await scrape();
      return expired(s) > expired(before) ? s : undefined;
    });
    expect(expired(after) - expired(before)).toBe(1);
    expect(sampleSum(after, 'palisade_commands_pending')).toBe(0);
  });
});
