/**
 * Playbook runs (issue 18's benchmark, docs/benchmarks.md#playbook-runs): a five-task playbook — an http integration
 * call to a fake service in this process (with the tenant's connection), a condition, a set-field, a script in the
 * sandbox, a set-field that closes the incident — run on one real tenant process, started as its host starts one
 * (bench-tenant.ts, with the host's Node flags and environment), through its REST API as main's relay calls it:
 * `POST /api/v1/playbooks/:id/runs?wait=` (the tenant holds the start's answer until the run has stopped, so a run
 * costs one signed request, not a start and polls). Each run has its own incident.
 *
 * Against the same five operations made directly in one process (playbook-direct.ts: Node's http, the condition in
 * JS, two LevelDB puts, `runScript`), one run at a time and 4 at a time (the sandbox runs at most 4 scripts at once
 * per tenant, SCRIPT_MAX_CONCURRENT, so more in flight would fail script tasks with ERR_SCRIPT_BUSY), in rounds
 * with the subjects rotated: runs per second and the p50 of a run as the client sees them, and the run's own
 * "started → finished" (the run record's `created` and `ended`, ms resolution) against the direct run's time: the
 * runner's overhead.
 *
 * Incident created → its automation rule's playbook finished: measured when the tenant has automation rules (a
 * probe tries one; see `probeRules`), else the p99 is of "run started → finished", and the figure says which.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_NODE_FLAGS } from '#common/agent-runtime.js';
import { TENANT_NODE_FLAGS } from '../agent/host/tenant-process.js';
import { tenantEnv } from '../agent/host/tenant-isolation.js';
import { FakeService } from '../test/harness/playbook-service.js';
import { deadline, median, percentile, rotated, type BenchRow } from './bench-util.js';
import { startBenchTenant, type BenchTenant } from './bench-tenant.js';
import type { DirectAnswer, DirectAsk } from './playbook-direct.js';

const DIRECT_MAIN = join(dirname(fileURLToPath(import.meta.url)), 'playbook-direct.js');
/** Runs per subject over all rounds (the 1 000), and rounds (each 1/ROUNDS of them). */
const RUNS = Number(process.env.PALISADE_BENCH_PLAYBOOK_RUNS ?? 1000);
const ROUNDS = 5;
const WARM_RUNS = 100;
/** The sandbox's limit of scripts at once in a tenant (scripts/script-sandbox.ts SCRIPT_MAX_CONCURRENT). */
const INFLIGHT = 4;
/** A run not ended by then is lost: the benchmark stops with an error rather than hang. */
const RUN_DEADLINE_MS = 30_000;

const SCRIPT = `palisade.log('checked', input.user);
return { verdict: input.vip ? 'escalate' : 'routine', user: input.user };`;

const playbook = (script: string) =>
  JSON.stringify({
    name: 'bench triage',
    inputs: { user: { default: 'nobody' } },
    start: 'lookup',
    tasks: {
      lookup: {
        type: 'integration',
        integration: 'http',
        connection: 'svc',
        command: 'get',
        args: { path: '/lookup/${inputs.user}', query: { incident: '${incident.id}' } },
        output: 'who',
        next: 'vip',
      },
      vip: {
        type: 'condition',
        branches: [{ when: { left: '${context.who.body.vip}', op: 'eq', right: true }, next: 'escalate' }],
        else: 'label',
      },
      escalate: { type: 'set-field', field: 'severity', value: 4, next: 'verdict' },
      label: { type: 'set-field', field: 'labels.triage', value: 'routine', next: 'verdict' },
      verdict: {
        type: 'script',
        script,
        input: { user: '${inputs.user}', vip: '${context.who.body.vip}' },
        output: 'verdict',
        next: 'close',
      },
      close: { type: 'set-field', field: 'status', value: 'closed' },
    },
  });

interface Run {
  id: string;
  status: string;
  created: string;
  ended?: string;
  error?: unknown;
}
interface Sample {
  /** Each run's time: the runner's own `created` → `ended`, or the direct run's. */
  runsMs: number[];
  /** Runs per second as the client saw them (first start → last end). */
  rate: number;
  /** Runs that failed (a burst counts them rather than stop), by error code. */
  failed?: string[];
  /** A burst's: each start request's time, POST (no `?wait=`) → 201 (the run stored), as the client saw it. */
  startMs?: number[];
  /** The runner's, one at a time: each run as the client saw it, POST sent → the answer with the run ended. */
  clientMs?: number[];
  /** CPU ms per run of the process running them (the tenant, its start request and read too; the direct child). */
  cpuMs?: number;
}

/**
 * A process's CPU time so far (user + system, ms), from /proc: unlike wall time it hardly moves with the machine's load
 * (other helpers' builds and tests share these 2 cores), so it shows the runner's own cost. 10 ms ticks: summed over a
 * round of 200 runs, fine enough. NaN where /proc is not there.
 */
function cpuTimeMs(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ended = (r: Run) => r.status === 'completed' || r.status === 'failed';

/**
 * How long a start or a read of a run may wait for it to end (`POST …/runs?wait=`, `GET …/runs/:id?wait=`,
 * playbook-routes.ts): one request per run instead of polls, each of which costs the tenant a signed request.
 */
const WAIT_MS = 10_000;

/** Reads run `id` once it has ended (the tenant holds the answer until then, WAIT_MS at most per request). */
async function finished(t: BenchTenant, id: string): Promise<Run> {
  const t0 = performance.now();
  for (;;) {
    const r = await t.json<Run>('GET', `/api/v1/playbooks/runs/${id}?wait=${WAIT_MS}`, undefined, 200);
    if (ended(r)) {
      if (r.status !== 'completed') throw new Error(`run ${id} ${r.status}: ${JSON.stringify(r.error)}`);
      return r;
    }
    if (performance.now() - t0 > RUN_DEADLINE_MS) throw new Error(`run ${id} still ${r.status}`);
  }
}

/** A run's own time, started (stored) → ended, from its record. */
const runMs = (r: Run) => Date.parse(r.ended!) - Date.parse(r.created);

/** New incidents for the runs, one batch (not timed). */
async function incidents(t: BenchTenant, n: number, type = 'phish'): Promise<string[]> {
  const items = Array.from({ length: n }, (_, i) => ({ name: `bench ${i}`, type, severity: 2 }));
  return (await t.json<{ ids: string[] }>('POST', '/api/v1/incidents', { items }, 201)).ids;
}

/** The runner: `n` runs of `playbookId`, `inflight` at a time, each started through the API and read until it ends. */
async function runnerRuns(t: BenchTenant, playbookId: string, n: number, inflight: number): Promise<Sample> {
  const ids = await incidents(t, n);
  const runsMs: number[] = [];
  const clientMs: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (next < n) {
        const i = next++;
        const body = { incident: ids[i], inputs: { user: `user-${i}` } };
        const posted = performance.now();
        // One request a run: the tenant answers the start once the run has stopped (WAIT_MS at most).
        const run = await t.json<Run>('POST', `/api/v1/playbooks/${playbookId}/runs?wait=${WAIT_MS}`, body, 201);
        runsMs.push(runMs(ended(run) && run.status === 'completed' ? run : await finished(t, run.id)));
        clientMs.push(performance.now() - posted);
      }
    }),
  );
  return { runsMs, clientMs, rate: n / ((performance.now() - t0) / 1000) };
}

/**
 * A burst, as an automation rule sees one after a batch of incidents: `n` runs started back to back (INFLIGHT
 * starts at a time), all driven by the runner at once; runs/s from the first start to the last run's end (the run
 * records say; the list is read every 100 ms only to know when they have all ended), and how many failed, by code.
 */
async function runnerBurst(t: BenchTenant, playbookId: string, n: number): Promise<Sample> {
  const ids = await incidents(t, n);
  const t0 = Date.now();
  const runs: string[] = [];
  const startMs: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: INFLIGHT }, async () => {
      while (next < n) {
        const i = next++;
        const body = { incident: ids[i], inputs: { user: `user-${i}` } };
        const posted = performance.now();
        runs.push((await t.json<Run>('POST', `/api/v1/playbooks/${playbookId}/runs`, body, 201)).id);
        startMs.push(performance.now() - posted);
      }
    }),
  );
  const mine = new Set(runs);
  for (const start = performance.now(); ; await sleep(100)) {
    const all = await t.json<Run[]>('GET', `/api/v1/playbooks/runs?limit=${n}`, undefined, 200);
    const done = all.filter((r) => mine.has(r.id) && ended(r));
    if (done.length === n) {
      const last = Math.max(...done.map((r) => Date.parse(r.ended!)));
      const failed = done.filter((r) => r.status !== 'completed').map((r) => (r.error as { code: string }).code);
      return { runsMs: done.map(runMs), startMs, rate: (n - failed.length) / ((last - t0) / 1000), failed };
    }
    if (performance.now() - start > RUN_DEADLINE_MS * 4) throw new Error(`burst: ${n - done.length} runs not ended`);
  }
}

/** The baseline child, started as the tenant is (the host's flags for tenants), its own LevelDB. */
async function startDirect(dir: string): Promise<{ child: ChildProcess; ask(a: DirectAsk): Promise<DirectAnswer> }> {
  const benchArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = fork(DIRECT_MAIN, [join(dir, 'direct')], {
    execArgv: [...AGENT_NODE_FLAGS, ...TENANT_NODE_FLAGS, ...benchArgs],
    env: tenantEnv(process.env),
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const reply = () =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const exited = (c: number | null) => reject(new Error(`the direct baseline exited ${c}`));
      child.once('exit', exited);
      child.once('message', (m) => {
        child.off('exit', exited);
        resolve(m as Record<string, unknown>);
      });
    });
  await deadline(reply(), 30_000, 'the direct baseline starting');
  return {
    child,
    ask: async (a) => {
      const pending = reply();
      child.send(a);
      const m = await deadline(pending, RUN_DEADLINE_MS * 10, 'the direct baseline');
      if (m.error) throw new Error(`direct baseline: ${String(m.error)}`);
      return m as unknown as DirectAnswer;
    },
  };
}

/**
 * The hook for "incident created → its automation rule's playbook finished": a local automation rule (issue 18
 * item 4's body) that runs the playbook on incidents of type `bench-rule`, and one such incident. If a run of it
 * appears, the tenant has rules, and the p99 row measures that path; if the tenant refuses the rule or no run
 * appears, it measures "run started → finished" and says so.
 */
async function probeRules(t: BenchTenant, playbookId: string): Promise<boolean> {
  const rule = { name: 'bench rule', active: true, when: { event: 'incident.created', type: 'bench-rule' } };
  const body = JSON.stringify({ ...rule, run: { playbook: playbookId } });
  const r = await t.send(
    'POST',
    '/api/v1/content',
    Buffer.from(JSON.stringify({ type: 'automation-rule', name: 'bench-rule', body })),
  );
  if (r.status !== 201) return false;
  const [id] = await incidents(t, 1, 'bench-rule');
  for (const t0 = performance.now(); performance.now() - t0 < 3_000; await sleep(50)) {
    const runs = await t.json<Run[]>('GET', `/api/v1/playbooks/runs?incident=${id}`, undefined, 200);
    if (runs.length) return true;
  }
  return false;
}

/** Incidents created one at a time, each started by the rule: created → its run ended, per incident. */
async function ruleRuns(t: BenchTenant, n: number): Promise<Sample> {
  const runsMs: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    const inc = await t.json<{ id: string; created: string }>(
      'POST',
      '/api/v1/incidents',
      { name: `rule ${i}`, type: 'bench-rule', severity: 2 },
      201,
    );
    let run: Run | undefined;
    while (!run) {
      [run] = await t.json<Run[]>('GET', `/api/v1/playbooks/runs?incident=${inc.id}`, undefined, 200);
      if (!run && performance.now() - started > RUN_DEADLINE_MS) throw new Error(`no rule fired on ${inc.id}`);
      if (!run) await sleep(1);
    }
    const done = await finished(t, run.id);
    runsMs.push(Date.parse(done.ended!) - Date.parse(inc.created));
  }
  return { runsMs, rate: n / ((performance.now() - t0) / 1000) };
}

const ms = (x: number) => `${x.toFixed(1)} ms`;
const perS = (x: number) => `${x.toFixed(1)} runs/s`;

/** The tenant with the fake's connection, the script and the playbook; the playbook's content id. */
async function setUp(t: BenchTenant, svc: FakeService, token: string): Promise<string> {
  const settings = { baseUrl: `http://127.0.0.1:${svc.port}`, authType: 'bearer' };
  await t.json('POST', '/api/v1/connections', { name: 'svc', type: 'http', settings, secret: token }, 201);
  const item = (type: string, name: string, body: string) =>
    t.json<{ id: string }>('POST', '/api/v1/content', { type, name, body }, 201);
  const script = await item('script', 'bench-verdict', SCRIPT);
  return (await item('playbook', 'bench-triage', playbook(script.id))).id;
}

export async function runPlaybookRuns(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-playbooks-'));
  const svc = new FakeService();
  await svc.start();
  const token = 'bench-token';
  const stops: (() => Promise<unknown>)[] = [() => svc.close(), () => rm(dir, { recursive: true, force: true })];
  try {
    const t = await startBenchTenant({
      dir: join(dir, 'tenant'),
      name: 'bench',
      nodeFlags: [...AGENT_NODE_FLAGS, ...TENANT_NODE_FLAGS],
      env: tenantEnv(process.env, [`127.0.0.1:${svc.port}`]),
      sockets: INFLIGHT,
    });
    stops.unshift(() => t.stop());
    const direct = await startDirect(dir);
    stops.unshift(async () => direct.child.connected && direct.child.disconnect());
    const playbookId = await setUp(t, svc, token);
    let first = 1;
    const ask = (n: number, inflight: number) => {
      first += n;
      return direct.ask({ n, inflight, first: first - n, port: svc.port, token, script: SCRIPT });
    };
    const sample = async (a: Promise<DirectAnswer>): Promise<Sample> => {
      const r = await a;
      return { runsMs: r.runsMs, rate: r.runsMs.length / (r.totalMs / 1000) };
    };
    // Warm-up: a long-running tenant has its JIT warm, and so does the baseline.
    await runnerRuns(t, playbookId, WARM_RUNS, INFLIGHT);
    await ask(WARM_RUNS, INFLIGHT);
    const rules = await probeRules(t, playbookId);
    if (rules) await ruleRuns(t, WARM_RUNS / 4);
    process.stderr.write(`  automation rules: ${rules ? 'yes, measured' : 'not in this tenant'}\n`);

    const per = Math.ceil(RUNS / ROUNDS);
    const subjects: [string, () => Promise<Sample>][] = [
      ['runner-1', () => runnerRuns(t, playbookId, per, 1)],
      ['runner-4', () => runnerRuns(t, playbookId, per, INFLIGHT)],
      ['runner-burst', () => runnerBurst(t, playbookId, per)],
      ['direct-1', () => sample(ask(per, 1))],
      ['direct-4', () => sample(ask(per, INFLIGHT))],
      ...(rules ? [['rule-1', () => ruleRuns(t, per)] as [string, () => Promise<Sample>]] : []),
    ];
    const got: Record<string, Sample[]> = {};
    for (let round = 0; round < ROUNDS; round++)
      for (const [name, run] of rotated(subjects, round)) {
        const pid = name.startsWith('direct') ? direct.child.pid : t.child.pid;
        const cpu0 = cpuTimeMs(pid);
        const s = await run();
        s.cpuMs = (cpuTimeMs(pid) - cpu0) / s.runsMs.length;
        (got[name] ??= []).push(s);
        process.stderr.write(`  round ${round} ${name}: ${perS(s.rate)}, p50 ${ms(percentile(s.runsMs, 50))}\n`);
      }
    return rows(got, rules);
  } finally {
    for (const stop of stops) await stop();
  }
}

/** What failed in the bursts (e.g. " (12 of 1000 failed: ERR_SCRIPT_BUSY)"), or nothing. */
function burstFailed(got: Record<string, Sample[]>): string {
  const runs = got['runner-burst'].flatMap((s) => s.runsMs).length;
  const failed = got['runner-burst'].flatMap((s) => s.failed ?? []);
  return failed.length ? ` (${failed.length} of ${runs} failed: ${[...new Set(failed)].join(', ')})` : '';
}

/** Rates and p50s: medians of the rounds; p99s: over every run of all rounds. */
function rows(got: Record<string, Sample[]>, rules: boolean): BenchRow[] {
  const rate = (k: string) => median(got[k].map((s) => s.rate));
  const p50 = (k: string) => median(got[k].map((s) => percentile(s.runsMs, 50)));
  const p99 = (k: string) =>
    percentile(
      got[k].flatMap((s) => s.runsMs),
      99,
    );
  const target = '≥ 0.67× (overhead ≤ 1.5×)';
  const latency = rules ? 'rule-1' : 'runner-1';
  return [
    {
      figure: 'playbook runs/s, 5 tasks, one at a time (client: POST ?wait= → answered with the run ended)',
      value: perS(rate('runner-1')),
      baseline: `direct ${perS(rate('direct-1'))}`,
      ratio: rate('runner-1') / rate('direct-1'),
      target,
    },
    {
      figure: `playbook runs/s, 5 tasks, ${INFLIGHT} in flight`,
      value: perS(rate('runner-4')),
      baseline: `direct ${perS(rate('direct-4'))}`,
      ratio: rate('runner-4') / rate('direct-4'),
      target,
    },
    {
      figure: `playbook runs/s, a burst of ${got['runner-burst'][0].runsMs.length} started at once${burstFailed(got)}`,
      value: perS(rate('runner-burst')),
      baseline: `direct, ${INFLIGHT} in flight ${perS(rate('direct-4'))}`,
      ratio: rate('runner-burst') / rate('direct-4'),
      target,
    },
    {
      figure: 'a run as the client sees it p50 (POST ?wait= sent → answered with the run ended), one at a time',
      value: ms(median(got['runner-1'].map((s) => percentile(s.clientMs!, 50)))),
      baseline: `direct five ops ${ms(p50('direct-1'))}`,
      ratio: median(got['runner-1'].map((s) => percentile(s.clientMs!, 50))) / p50('direct-1'),
      target: '≤ 1.5×',
    },
    {
      figure: 'runner overhead: run started → finished p50 (run record), one at a time',
      value: ms(p50('runner-1')),
      baseline: `direct five ops ${ms(p50('direct-1'))}`,
      ratio: p50('runner-1') / p50('direct-1'),
      target: '≤ 1.5×',
    },
    {
      figure: 'CPU per run, one at a time: the tenant (its start request too) vs the direct process',
      value: ms(median(got['runner-1'].map((s) => s.cpuMs!))),
      baseline: `direct five ops ${ms(median(got['direct-1'].map((s) => s.cpuMs!)))}`,
      ratio: median(got['runner-1'].map((s) => s.cpuMs!)) / median(got['direct-1'].map((s) => s.cpuMs!)),
      target: '(reported)',
    },
    {
      figure: `starting a run through the API p50 (POST without ?wait= → 201, run stored), ${INFLIGHT} at a time (bursts)`,
      value: ms(median(got['runner-burst'].map((s) => percentile(s.startMs!, 50)))),
      baseline: '-',
      ratio: NaN,
      target: '(reported)',
    },
    {
      figure: rules
        ? 'incident created → its automation rule’s playbook finished p99'
        : 'run started → finished p99 (no automation rules in this tenant yet)',
      value: ms(p99(latency)),
      baseline: `direct five ops ${ms(p99('direct-1'))}`,
      ratio: p99(latency) / p99('direct-1'),
      target: '(reported)',
    },
  ];
}
