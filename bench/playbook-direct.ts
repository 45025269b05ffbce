/**
 * The baseline of bench/playbook-runs.ts, as a child process of its own started with the tenant's Node flags (the
 * host's GC flags, and --no-node-snapshot, without which the sandbox refuses to run): the five operations of the
 * benchmark's playbook made directly, one after another per run — a GET to the fake service with Node's http
 * (the global keep-alive agent, as the tenant's http integration uses), the condition in JS, a LevelDB put of the
 * incident with its label set, the same script through the sandbox's `runScript`, and the put that closes the
 * incident. No run record, no timeline, no reads back: what a playbook costs without a runner.
 * Asked over IPC for `n` runs with `inflight` at a time; answers each run's time (ms) and the whole time.
 */
import { get } from 'node:http';
import { Level } from 'level';
import { TenantStore } from '../agent/tenant/store.js';
import { runScript, type ScriptApi } from '../agent/tenant/scripts/script-sandbox.js';

export interface DirectAsk {
  n: number;
  inflight: number;
  /** The first incident id; runs use first, first + 1, … */
  first: number;
  port: number;
  token: string;
  script: string;
}
export interface DirectAnswer {
  runsMs: number[];
  totalMs: number;
}

/** The script never calls the API (nor does the playbook's): building one is all a run pays for it. */
const unused = () => Promise.reject(new Error('not in this benchmark'));
const API: ScriptApi = {
  integration: unused,
  incident: { get: unused, update: unused },
  context: { get: () => undefined, set: () => undefined },
};

function lookup(port: number, path: string, token: string): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

async function oneRun(db: Level<string, unknown>, a: DirectAsk, n: number): Promise<number> {
  const t0 = performance.now();
  const id = String(n);
  const user = `user-${n}`;
  const at = new Date().toISOString();
  let incident = { id, name: `bench ${n}`, type: 'phish', severity: 2, status: 'open', labels: {}, created: at };
  const who = await lookup(a.port, `/lookup/${user}?incident=${id}`, a.token);
  const vip = (who.body as { vip?: unknown }).vip === true;
  incident = vip ? { ...incident, severity: 4 } : { ...incident, labels: { ...incident.labels, triage: 'routine' } };
  await db.put(TenantStore.key(id), { ...incident, updated: new Date().toISOString() });
  const r = await runScript({ source: a.script, input: { user, vip }, api: API });
  if (!r.result) throw new Error('the script returned nothing');
  const now = new Date().toISOString();
  await db.put(TenantStore.key(id), { ...incident, status: 'closed', closed: now, updated: now });
  return performance.now() - t0;
}

async function serve(db: Level<string, unknown>, a: DirectAsk): Promise<DirectAnswer> {
  const runsMs: number[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: a.inflight }, async () => {
      while (next < a.n) runsMs.push(await oneRun(db, a, a.first + next++));
    }),
  );
  return { runsMs, totalMs: performance.now() - t0 };
}

const dbDir = process.argv[2];
if (!dbDir || !process.send) throw new Error('usage: forked with IPC, playbook-direct.js DB_DIR');
const db = new Level<string, unknown>(dbDir, { valueEncoding: 'json' });
await db.open();
process.on('message', (a: DirectAsk) => {
  serve(db, a).then(
    (answer) => process.send!(answer),
    (e: unknown) => process.send!({ error: String(e) }),
  );
});
process.on('disconnect', () => void db.close().then(() => process.exit(0)));
process.send({ ready: true });
