/**
 * Runs main's commands on the agent, effectively once. Main delivers at least once (it re-sends after
 * reconnects), so results are stored by command id in the agent's LevelDB before they are sent; a
 * duplicate gets the stored result, and one arriving while the first still runs waits for it.
 */
import { Level } from 'level';
import { jsonBytes, parseJsonBytes, type Envelope, type EnvelopeInit } from '#common/codec.js';
import { errorMessage, isPalisadeError } from '#common/errors.js';
import type { Logger } from '#common/logging.js';

export type CommandHandler = (args: unknown, env: Envelope) => Promise<unknown>;

type ResultInit = NonNullable<EnvelopeInit['result']>;

/**
 * A handler's answer carried in a typed Result field instead of as JSON: a relayed request's RelayReply,
 * whose body is bytes. Only volatile commands answer so: a stored result is JSON.
 */
export class TypedResult {
  constructor(readonly fields: Pick<ResultInit, 'relay'>) {}
}

interface StoredResult {
  at: number;
  ok: boolean;
  value?: string;
  errorCode?: string;
  errorMessage?: string;
}
/** What running a handler came to: a stored result, or a typed one (volatile commands only). */
type Outcome = StoredResult | { at: number; ok: true; typed: TypedResult };

/** Results kept for deduplication; main stops re-sending once it has a result, so recent ones suffice. */
export const DEDUPE_KEEP = 10_000;

export class CommandRunner {
  private readonly db: Level<string, StoredResult>;
  private readonly inflight = new Map<number, Promise<EnvelopeInit['result']>>();
  /** Ids with a stored result (all of them: the store is bounded), so a new id costs no read. */
  private readonly known = new Set<string>();
  /** How many times each handler body actually ran in this process: what "exactly once" is checked by. */
  executions = 0;

  /**
   * @param volatile commands that are request/response RPCs (e.g. relayed tenant requests): not stored for
   *   deduplication, because main never re-sends them — a lost one times out and the caller retries.
   */
  constructor(
    statePath: string,
    private readonly handlers: Readonly<Record<string, CommandHandler>>,
    private readonly log: Logger,
    private readonly volatile: ReadonlySet<string> = new Set(),
  ) {
    this.db = new Level<string, StoredResult>(statePath, { valueEncoding: 'json' });
  }

  async open(): Promise<void> {
    await this.db.open();
    for await (const k of this.db.keys()) this.known.add(k);
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()]);
    await this.db.close();
  }

  /** Returns the Result frame for a Command frame. */
  async handle(env: Envelope): Promise<EnvelopeInit> {
    const id = env.id;
    const name = env.command?.name ?? '';
    if (this.volatile.has(name)) {
      const outcome = await this.run(name, env);
      return { replyTo: id, result: 'typed' in outcome ? { ok: true, ...outcome.typed.fields } : toResult(outcome) };
    }
    const key = id.toString().padStart(16, '0');
    const prior = this.known.has(key) ? await this.db.get(key) : undefined;
    if (prior) {
      this.log.info({ commandId: id }, 'duplicate command: answering with the stored result');
      return { replyTo: id, result: toResult(prior) };
    }
    let running = this.inflight.get(id);
    if (!running) {
      running = this.execute(env, key).finally(() => this.inflight.delete(id));
      this.inflight.set(id, running);
    }
    return { replyTo: id, result: await running };
  }

  private async execute(env: Envelope, key: string): Promise<EnvelopeInit['result']> {
    const cmd = env.command!;
    const name = cmd.name ?? '';
    let stored: StoredResult;
    if (cmd.deadlineMs && Number(cmd.deadlineMs) < Date.now()) {
      stored = {
        at: Date.now(),
        ok: false,
        errorCode: 'ERR_COMMAND_EXPIRED',
        errorMessage: 'the command arrived after its deadline',
      };
    } else if (!Object.hasOwn(this.handlers, name)) {
      stored = {
        at: Date.now(),
        ok: false,
        errorCode: 'ERR_COMMAND_UNKNOWN',
        errorMessage: `this agent has no command "${name}"`,
      };
    } else {
      this.executions++;
      this.log.info({ commandId: env.id, command: name }, 'command run');
      const outcome = await this.run(name, env);
      stored =
        'typed' in outcome
          ? {
              at: outcome.at,
              ok: false,
              errorCode: 'ERR_COMMAND_FAILED',
              errorMessage: `"${name}" answered with a typed result, which only a volatile command may`,
            }
          : outcome;
    }
    await this.db.put(key, stored);
    this.known.add(key);
    if (this.known.size > DEDUPE_KEEP * 1.1) void this.prune();
    return toResult(stored);
  }

  private async run(name: string, env: Envelope): Promise<Outcome> {
    if (!Object.hasOwn(this.handlers, name))
      return {
        at: Date.now(),
        ok: false,
        errorCode: 'ERR_COMMAND_UNKNOWN',
        errorMessage: `this agent has no command "${name}"`,
      };
    try {
      const value = await this.handlers[name](parseJsonBytes(env.command?.args), env);
      if (value instanceof TypedResult) return { at: Date.now(), ok: true, typed: value };
      return { at: Date.now(), ok: true, value: JSON.stringify(value ?? null) };
    } catch (e) {
      return {
        at: Date.now(),
        ok: false,
        errorCode: isPalisadeError(e) ? e.code : 'ERR_COMMAND_FAILED',
        errorMessage: errorMessage(e),
      };
    }
  }

  private async prune(): Promise<void> {
    const excess = this.known.size - DEDUPE_KEEP;
    if (excess <= 0) return;
    const keys = await this.db.keys({ limit: excess }).all();
    await this.db.batch(keys.map((k) => ({ type: 'del' as const, key: k })));
    for (const k of keys) this.known.delete(k);
  }
}

function toResult(s: StoredResult): EnvelopeInit['result'] {
  return s.ok
    ? { ok: true, value: s.value === undefined ? undefined : jsonBytes(JSON.parse(s.value)) }
    : { ok: false, errorCode: s.errorCode, errorMessage: s.errorMessage };
}

export { parseJsonBytes };
