/**
 * The durable command outbox: at-least-once delivery of commands to agents. A command is written to
 * LevelDB before it is sent, re-sent whenever its agent (re)connects until a Result arrives, and its
 * result is kept for retrieval. Agents deduplicate by command id, which makes execution effectively once.
 */
import { jsonBytes, parseJsonBytes, type Envelope } from '#common/codec.js';
import { TooLargeError, UnavailableError, NotFoundError } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { padId, type AgentRecord, type CommandRecord, type Registry } from '../registry.js';
import type { DurableHostCommand } from '#common/host-commands.js';
import type { MainMetrics } from '../metrics.js';

export interface CommandSender {
  send(agentId: string, env: { id: number; command: { name: string; args: Uint8Array; deadlineMs: number } }): boolean;
}

export interface EnqueueOptions {
  /** Only a command the catalogue says is durable (common/host-commands.ts); volatile ones go through rpc.ts. */
  name: DurableHostCommand;
  args: unknown;
  createdBy: string;
  deadlineMs: number;
}

export class CommandOutbox {
  private nextId = 1;
  private readonly pendingCount = new Map<string, number>();
  private readonly waiters = new Map<number, Set<(r: CommandRecord) => void>>();
  /** Pending commands sent from this process, so a result needs no read before its write. */
  private readonly live = new Map<number, CommandRecord>();
  /** Commands whose completion is being written: a second Result racing the first is a duplicate. */
  private readonly finishing = new Set<number>();

  constructor(
    private readonly registry: Registry,
    private readonly sender: CommandSender,
    private readonly maxPending: number,
    private readonly maxArgsBytes: number,
    private readonly log: Logger,
    private readonly metrics?: MainMetrics,
  ) {}

  /** Loads the id counter and the pending counts; call once before use. */
  async init(): Promise<void> {
    for await (const key of this.registry.commands.keys({ reverse: true, limit: 1 })) this.nextId = Number(key) + 1;
    for await (const key of this.registry.outbox.keys()) {
      const agentId = key.slice(0, key.indexOf('!'));
      this.pendingCount.set(agentId, (this.pendingCount.get(agentId) ?? 0) + 1);
    }
  }

  async enqueue(agent: AgentRecord, opts: EnqueueOptions): Promise<CommandRecord> {
    const pending = this.pendingCount.get(agent.id) ?? 0;
    if (pending >= this.maxPending) {
      throw new UnavailableError(
        'ERR_OUTBOX_FULL',
        `${agent.kind} "${agent.name}" already has ${pending} pending commands; wait for it to reconnect`,
      );
    }
    const args = jsonBytes(opts.args);
    if (args.length > this.maxArgsBytes)
      throw new TooLargeError(
        'ERR_COMMAND_TOO_LARGE',
        `command args of ${args.length} bytes exceed ${this.maxArgsBytes}`,
        { field: 'args' },
      );
    const id = this.nextId++;
    const now = Date.now();
    const rec: CommandRecord = {
      id,
      agentId: agent.id,
      agentName: agent.name,
      name: opts.name,
      args: opts.args ?? null,
      state: 'pending',
      createdAt: new Date(now).toISOString(),
      createdBy: opts.createdBy,
      deadline: new Date(now + opts.deadlineMs).toISOString(),
    };
    await this.registry.db.batch([
      { type: 'put', sublevel: this.registry.commands, key: padId(id), value: rec },
      { type: 'put', sublevel: this.registry.outbox, key: `${agent.id}!${padId(id)}`, value: id },
      { type: 'put', sublevel: this.registry.agentCommands, key: `${agent.id}!${padId(id)}`, value: id },
    ] as never);
    this.pendingCount.set(agent.id, pending + 1);
    this.metrics?.commandsQueued.inc({ command: rec.name });
    this.live.set(id, rec);
    this.trySend(rec);
    return rec;
  }

  private trySend(rec: CommandRecord): boolean {
    return this.sender.send(rec.agentId, {
      id: rec.id,
      command: { name: rec.name, args: jsonBytes(rec.args), deadlineMs: Date.parse(rec.deadline) },
    });
  }

  /** Re-sends every pending command of an agent that just became ready, oldest first. */
  async flush(agentId: string): Promise<number> {
    let sent = 0;
    for await (const id of this.registry.outbox.values({ gt: `${agentId}!`, lt: `${agentId}!~` })) {
      const rec = this.live.get(id) ?? (await this.registry.commands.get(padId(id)));
      if (!rec || rec.state !== 'pending') continue;
      this.live.set(id, rec);
      if (Date.parse(rec.deadline) <= Date.now()) {
        await this.finish(rec, {
          state: 'expired',
          error: {
            code: 'ERR_COMMAND_EXPIRED',
            message: `the agent did not run it before its deadline ${rec.deadline}`,
          },
        });
        continue;
      }
      if (!this.trySend(rec)) break; // went offline again; the next connect flushes the rest
      sent++;
    }
    if (sent) this.log.info({ agentId, sent }, 'outbox flushed');
    return sent;
  }

  /** Records an agent's Result. A duplicate or a result for another agent's command changes nothing. */
  async onResult(agentId: string, env: Envelope): Promise<void> {
    const id = env.replyTo;
    const rec = this.live.get(id) ?? (await this.registry.commands.get(padId(id)));
    if (!rec || rec.agentId !== agentId) {
      this.log.warn({ agentId, commandId: id }, 'result for a command this agent was not sent; ignored');
      return;
    }
    if (rec.state !== 'pending') return; // duplicate delivery of a result we already have
    const r = env.result!;
    if (r.ok) {
      let value: unknown;
      try {
        value = parseJsonBytes(r.value);
      } catch {
        value = null;
      }
      await this.finish(rec, { state: 'done', result: value });
    } else {
      const state = r.errorCode === 'ERR_COMMAND_EXPIRED' ? 'expired' : 'failed';
      await this.finish(rec, {
        state,
        error: { code: r.errorCode || 'ERR_COMMAND_FAILED', message: r.errorMessage || 'command failed' },
      });
    }
  }

  private async finish(
    rec: CommandRecord,
    patch: Pick<CommandRecord, 'state'> & Partial<CommandRecord>,
  ): Promise<void> {
    if (this.finishing.has(rec.id)) return;
    this.finishing.add(rec.id);
    try {
      const current = this.live.get(rec.id) ?? (await this.registry.commands.get(padId(rec.id)));
      if (current?.state === 'pending') await this.finishLocked(current, patch);
    } finally {
      this.finishing.delete(rec.id);
    }
  }

  private async finishLocked(
    rec: CommandRecord,
    patch: Pick<CommandRecord, 'state'> & Partial<CommandRecord>,
  ): Promise<void> {
    const done: CommandRecord = { ...rec, ...patch, completedAt: new Date().toISOString() };
    await this.registry.db.batch([
      { type: 'put', sublevel: this.registry.commands, key: padId(rec.id), value: done },
      { type: 'del', sublevel: this.registry.outbox, key: `${rec.agentId}!${padId(rec.id)}` },
    ] as never);
    this.live.delete(rec.id);
    this.pendingCount.set(rec.agentId, Math.max(0, (this.pendingCount.get(rec.agentId) ?? 1) - 1));
    this.metrics?.commandsFinished.inc({ command: rec.name, state: done.state });
    const ws = this.waiters.get(rec.id);
    this.waiters.delete(rec.id);
    ws?.forEach((w) => w(done));
  }

  /** Fails every pending command of an agent (it was removed); returns how many. */
  async failAll(agentId: string, error: { code: string; message: string }): Promise<number> {
    let n = 0;
    for await (const id of this.registry.outbox.values({ gt: `${agentId}!`, lt: `${agentId}!~` })) {
      const rec = await this.registry.commands.get(padId(id));
      if (rec) {
        await this.finish(rec, { state: 'failed', error });
        n++;
      }
    }
    return n;
  }

  async get(id: number): Promise<CommandRecord> {
    const rec = Number.isSafeInteger(id) && id > 0 ? await this.registry.commands.get(padId(id)) : undefined;
    if (!rec) throw new NotFoundError('ERR_COMMAND_NOT_FOUND', `no command with id ${id}`, { field: 'id' });
    return rec;
  }

  /** Resolves with the record once it is no longer pending, or with the pending record at the timeout. */
  async wait(id: number, timeoutMs: number): Promise<CommandRecord> {
    const rec = this.live.get(id) ?? (await this.get(id));
    if (rec.state !== 'pending' || timeoutMs <= 0) return rec;
    return new Promise((resolve) => {
      const set = this.waiters.get(id) ?? new Set();
      this.waiters.set(id, set);
      const done = (r: CommandRecord) => {
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => {
        set.delete(done);
        resolve(this.get(id));
      }, timeoutMs);
      set.add(done);
    });
  }

  async list(agentId: string, limit: number): Promise<CommandRecord[]> {
    const ids = await this.registry.agentCommands
      .values({ gt: `${agentId}!`, lt: `${agentId}!~`, reverse: true, limit })
      .all();
    const recs = await this.registry.commands.getMany(ids.map(padId));
    return recs.filter((r): r is CommandRecord => r !== undefined);
  }

  pending(agentId: string): number {
    return this.pendingCount.get(agentId) ?? 0;
  }

  /** Pending commands of every agent. */
  pendingTotal(): number {
    let n = 0;
    for (const c of this.pendingCount.values()) n += c;
    return n;
  }
}
