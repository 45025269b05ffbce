/**
 * Which of a tenant's engines may take a piece of work, and which one takes it: a tunnel connection, an
 * `engine run` command, an integration instance's command (`--run-on engine:E|group:G`). Work bound to a
 * group goes only to that group's live engines, spread over them in turn, and never to another group's
 * engine, even when none of its own is left; work that names an engine goes to that engine only. An engine's
 * group is the one main signed for it (common/tunnel-statements.ts): an engine cannot claim one.
 *
 * Pure over the sessions it is given (engine-sessions.ts holds them); not how work reaches an engine.
 */
import { BadParameterError, NotFoundError, UnavailableError, type PalisadeError } from '#common/errors.js';
import { NAME_PATTERN } from '#common/names.js';

/** Where work may run: the engine named, the live engines of the group named, both (the engine, which must be in the
 * group), or neither (any live engine of the tenant). */
export interface EngineTarget {
  engine?: string;
  group?: string;
}

/** What the choice needs of a session. */
export interface Candidate {
  readonly name: string;
  /** '' for an engine without a group. */
  readonly group: string;
}

/** Engines and groups are named as main names them when it makes their bundles. */
const NAME = new RegExp(NAME_PATTERN);

/**
 * Reads a run-on target as integration instances give it: `engine:NAME` or `group:NAME`. `field` names the
 * request field in the error.
 */
export function parseRunOn(text: string, field = 'runOn'): EngineTarget {
  const m = /^(engine|group):(.*)$/.exec(text);
  if (!m || !NAME.test(m[2]))
    throw new BadParameterError(
      'ERR_BAD_RUN_ON',
      `${field}: "${text}" is not engine:NAME or group:NAME (names: lower-case letters, digits, '-')`,
      { field },
    );
  return m[1] === 'engine' ? { engine: m[2] } : { group: m[2] };
}

export function matches(s: Candidate, t: EngineTarget): boolean {
  return (!t.engine || s.name === t.engine) && (t.group === undefined || s.group === t.group);
}

function describe(t: EngineTarget): string {
  if (t.engine) return `engine "${t.engine}"${t.group ? ` of group "${t.group}"` : ''}`;
  return t.group ? `group "${t.group}"` : 'any engine';
}

/**
 * Checks a target against the engines the tenant knows (name → group, of every engine that held a session
 * since the tenant started): a group no engine of the tenant had is unknown (404), an engine outside the group
 * it is given with is refused (400). Says nothing about which engines are live now.
 */
export function checkTarget(t: EngineTarget, known: ReadonlyMap<string, string>, tenant: string): void {
  if (t.group === undefined) return;
  const groups = new Set(known.values());
  if (!groups.has(t.group)) {
    const seen = [...groups].filter(Boolean).sort();
    throw new NotFoundError(
      'ERR_ENGINE_GROUP_UNKNOWN',
      `group: no engine of group "${t.group}" has connected to tenant ${tenant} since it started` +
        ` (groups seen: ${seen.join(', ') || 'none'})`,
      { field: 'group' },
    );
  }
  if (t.engine && known.get(t.engine) !== t.group)
    throw new BadParameterError(
      'ERR_ENGINE_NOT_IN_GROUP',
      `engine: "${t.engine}" is not an engine of group "${t.group}" of tenant ${tenant}`,
      { field: 'engine' },
    );
}

/**
 * The session new work goes to: of the live sessions that match `t` and are not in `exclude` (engines that
 * already failed this piece of work), the one at `turn` (a counter the caller advances, which spreads work
 * over them). Throws when there is none: the error names the engine or group and never falls back to others.
 */
export function choose<S extends Candidate>(
  live: readonly S[],
  t: EngineTarget,
  turn: number,
  tenant: string,
  exclude: ReadonlySet<string> = new Set(),
): S {
  const fit = live.filter((s) => matches(s, t) && !exclude.has(s.name));
  if (fit.length > 0) return fit[turn % fit.length];
  const after = exclude.size ? ` (${[...exclude].join(', ')} ended before answering)` : '';
  if (t.engine)
    throw new UnavailableError('ERR_ENGINE_OFFLINE', `${describe(t)} has no session with tenant ${tenant}${after}`);
  if (t.group !== undefined)
    throw new UnavailableError(
      'ERR_ENGINE_GROUP_OFFLINE',
      `no engine of group "${t.group}" has a session with tenant ${tenant}${after}; other groups' engines are not used`,
    );
  throw new UnavailableError('ERR_NO_ENGINE', `no engine of tenant ${tenant} is connected${after}`);
}

/**
 * Runs `work` on the session `pick` chooses (pick throws when none is left, naming the engine or group), with
 * the failover rule: when that session ends before `work` settles (ERR_SESSION_CLOSED) and the work is
 * `retrySafe` (read-only: the first run may have happened without its answer, so it must do no harm twice), it
 * runs again on another session `pick` offers without the engines that ended, until one answers or none is
 * left. Any other failure (the engine's own error, a timeout), or any failure of work that is not retry-safe,
 * comes back as it came.
 */
export async function runWithFailover<S extends Candidate, T>(
  pick: (exclude: ReadonlySet<string>) => S,
  work: (s: S) => Promise<T>,
  retrySafe: boolean,
): Promise<{ session: S; value: T; failedOver: string[] }> {
  const ended = new Set<string>();
  for (;;) {
    const session = pick(ended);
    try {
      return { session, value: await work(session), failedOver: [...ended] };
    } catch (e) {
      if (!retrySafe || (e as PalisadeError | undefined)?.code !== 'ERR_SESSION_CLOSED') throw e;
      ended.add(session.name);
    }
  }
}
