/**
 * Testing a playbook (docs/playbooks.md#testing-a-playbook): main sends the latest draft of a playbook item, and it
 * runs here with this tenant's connections, instances, scripts and sub-playbooks, on an incident that is never
 * stored, and nothing of it is stored: no run, no incident change, no timeline entry.
 *
 * The runner is the real one (so a test shows what a run would do), given stores that keep everything in memory:
 * MemoryRuns holds the test's runs (and its sub-playbooks'), MemoryIncident its one incident; the timeline writes
 * nothing. A batch the runner writes lands in those two or is refused, so a test cannot reach the tenant's LevelDB
 * by a path added later. What does leave the process is what the tasks do: integration calls (made with the
 * tenant's credentials, as a run's are) and their audit lines. Those name the test and its user as the actor
 * (`playbook test by alice`), and the test's runs have ids of their own (`test_<random>_1`, and on for its
 * sub-playbooks'), which no stored run can have: nothing a test shows or audits names a real run.
 * A test stops at a manual task (nobody would complete it): it answers `waiting` there, with what ran before.
 */
import { randomBytes } from 'node:crypto';
import { parsePlaybook } from '#common/playbook.js';
import type { TenantPermission } from '#common/roles.js';
import type { BatchOp } from '../incident-timeline.js';
import type { Incident, IncidentRecords, Sub } from '../store.js';
import { TENANT_ACTOR_PREFIX } from '../signature-guard.js';
import { PlaybookRunner, type RunnerDeps } from './playbook-runner.js';
import type { PlaybookRun, RunRecords } from './run-store.js';
import { runView, shownStatus, taskList, type RunView, type ShownStatus, type ShownTask } from './run-view.js';

/** The incident a test runs on when none is given, and whose fields fill in what a given one leaves out. */
const DEFAULT_INCIDENT = { name: 'playbook-test', type: 'test', severity: 1, details: '' };
const TEST_INCIDENT_ID = '0';

export interface TestIncident {
  name?: string;
  type?: string;
  severity?: number;
  details?: string;
  labels?: Record<string, string>;
  /** Set from the test's `site` (checked active by the route), never from the incident given. */
  site?: string;
}
export interface TestedItem {
  id: string;
  name: string;
  version: number;
  body: string;
}

/** A store marker: ops naming it are the test's incident; nothing else is written anywhere. */
class MemoryIncident implements IncidentRecords {
  readonly incidents = {} as Sub<Incident>;
  constructor(public current: Incident) {}
  async getIncident(): Promise<Incident> {
    return structuredClone(this.current);
  }
  async putIncident(i: Incident): Promise<void> {
    this.current = structuredClone(i);
  }
}

class MemoryRuns implements RunRecords {
  private readonly runs = new Map<string, PlaybookRun>();
  private readonly marker = {} as Sub<unknown>;
  private seq = 1;
  /** Run ids no stored run has (those are `run_` and 12 digits): `test_`, this test's random tag, a sequence. */
  readonly tag = `test_${randomBytes(6).toString('hex')}`;
  constructor(private readonly incident: MemoryIncident) {}

  newId(): string {
    return `${this.tag}_${this.seq++}`;
  }
  async get(id: string): Promise<PlaybookRun> {
    return structuredClone(this.runs.get(id)!);
  }
  putOps(run: PlaybookRun): BatchOp[] {
    return [{ type: 'put', sublevel: this.marker, key: run.id, value: run }];
  }
  async write(ops: BatchOp[]): Promise<void> {
    for (const op of ops) {
      if (op.type === 'put' && op.sublevel === this.marker)
        this.runs.set(op.key, structuredClone(op.value as PlaybookRun));
      else if (op.type === 'put' && op.sublevel === this.incident.incidents)
        await this.incident.putIncident(op.value as Incident);
      else throw new Error(`a playbook test tried to write to the tenant's store (${op.type} ${op.key})`);
    }
  }
  async unfinished(): Promise<PlaybookRun[]> {
    return [];
  }
  /** The test's budget of sub-playbook runs and tasks is the real one's. */
  async treeUse(root: PlaybookRun): Promise<{ childRuns: number; tasks: number }> {
    const tree = [...this.runs.values()].filter((r) => r.root === root.id);
    return { childRuns: tree.length, tasks: [root, ...tree].reduce((n, r) => n + Object.keys(r.tasks).length, 0) };
  }
  /** Nothing outlives the test. */
  async prune(): Promise<number> {
    return 0;
  }
  all(): PlaybookRun[] {
    return [...this.runs.values()];
  }
}

/**
 * The test's outcome: the top run's state and each task's result, its sub-playbooks' runs, the incident after; runs
 * and tasks shown as the run API shows them (run-view.ts: `completed`, tasks as a list).
 */
export interface TestResult {
  status: ShownStatus;
  current: string | null;
  tasks: ShownTask[];
  context: PlaybookRun['context'];
  error?: PlaybookRun['error'];
  subRuns: RunView[];
  incident: Incident;
}

export async function testPlaybook(
  deps: RunnerDeps,
  item: TestedItem,
  given: { incident?: TestIncident; inputs?: Record<string, unknown> },
  by: string,
  permissions: ReadonlySet<TenantPermission>,
): Promise<TestResult> {
  const playbook = parsePlaybook(item.body);
  const now = new Date().toISOString();
  const incident = new MemoryIncident({
    ...DEFAULT_INCIDENT,
    ...given.incident,
    id: TEST_INCIDENT_ID,
    status: 'open',
    created: now,
    updated: now,
  });
  const runs = new MemoryRuns(incident);
  // The test writes no batch to the tenant's store, but its integration calls are real: audited one by one.
  const audit = { record: deps.audit.record.bind(deps.audit) };
  const runner = new PlaybookRunner({
    ...deps,
    runs,
    store: incident,
    audit,
    timeline: { entryOps: async () => [] },
    actor: () => ({ id: `${TENANT_ACTOR_PREFIX}playbook-test:${runs.tag}`, name: `playbook test by ${by}` }),
  });
  const contentItem = { ...item, type: 'playbook' as const, labels: [], shared: false, created: now, updated: now };
  const top = await runner.startItem(contentItem, playbook, TEST_INCIDENT_ID, given.inputs ?? {}, by, permissions);
  await runner.idle();
  const ran = await runs.get(top.id);
  return {
    status: shownStatus(ran.status),
    current: ran.current,
    tasks: taskList(ran.tasks),
    context: ran.context,
    ...(ran.error ? { error: ran.error } : {}),
    subRuns: runs
      .all()
      .filter((r) => r.id !== top.id)
      .map(runView),
    incident: incident.current,
  };
}
