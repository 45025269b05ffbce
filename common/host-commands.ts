/**
 * The commands main sends a host agent, and how each is delivered: the one table both sides read. Main
 * sends a durable command through its outbox and a volatile one as an RPC (the types below allow nothing
 * else); the host's command runner stores the results of durable ones and not of volatile ones.
 *
 * durable: main's outbox (main/agents/outbox.ts) writes the command before sending it and re-sends it
 *   after every reconnect until a Result arrives: at least once. The agent stores each result by command
 *   id (agent/command-runner.ts), so a re-sent command is answered, not run again: effectively once.
 * volatile: a request/response RPC (main/agents/rpc.ts): sent once, with an id from the RPC range, failed at
 *   its deadline or when the host disconnects, never re-sent; so the agent stores nothing. For what a
 *   caller waits on and retries itself: relayed requests, a listing, the steps of a move (main drives a
 *   move step by step and aborts it on any failure instead of re-sending a step).
 *
 * Not here: what a command does (agent/agent.ts, agent/upgrade/, agent/host/host-role.ts), nor the read-only commands
 * main runs across tenants (tenant-commands.ts), which travel inside relayed requests.
 */

export type Delivery = 'durable' | 'volatile';

/** Every agent answers these, engines too (agent/agent.ts); users run them through the outbox (REST …/commands). */
const EVERY_AGENT = { ping: 'durable', sysinfo: 'durable' } as const;
/** The commands an admin may run on any agent (`hosts command`, `engines command`, REST …/commands). */
export const USER_AGENT_COMMANDS: readonly (keyof typeof EVERY_AGENT)[] = Object.freeze(
  Object.keys(EVERY_AGENT) as (keyof typeof EVERY_AGENT)[],
);

/**
 * Every agent answers these too, but only main sends them, never an admin's `… command`: `agent.upgrade`
 * carries main's signature over a release (common/agent-release.ts) and is sent by `agents upgrade`.
 */
const EVERY_AGENT_FROM_MAIN = { 'agent.upgrade': 'durable' } as const;

export const HOST_COMMANDS = {
  ...EVERY_AGENT,
  ...EVERY_AGENT_FROM_MAIN,
  'tenant.create': 'durable',
  'tenant.remove': 'durable',
  /** An admin's stop and start: kept across host restarts (tenant.json), so durable like create and remove. */
  'tenant.stop': 'durable',
  'tenant.start': 'durable',
  'tenant.list': 'volatile',
  /** A request main signed, replayed to the tenant's API: Command.relay in, Result.relay out (protocol 1.3). */
  'tenant.request': 'volatile',
  'tenant.export.begin': 'volatile',
  'tenant.export.chunk': 'volatile',
  'tenant.export.abort': 'volatile',
  'tenant.export.done': 'volatile',
  'tenant.import.begin': 'volatile',
  'tenant.import.chunk': 'volatile',
  'tenant.import.finish': 'volatile',
  'tenant.import.abort': 'volatile',
} as const satisfies Record<string, Delivery>;

export type HostCommand = keyof typeof HOST_COMMANDS;
/** The commands the host role adds to every agent's (agent/host/host-role.ts handles exactly these). */
export type HostRoleCommand = Exclude<HostCommand, keyof typeof EVERY_AGENT | keyof typeof EVERY_AGENT_FROM_MAIN>;
type Delivered<D extends Delivery> = {
  [K in HostCommand]: (typeof HOST_COMMANDS)[K] extends D ? K : never;
}[HostCommand];
/** What main may put in a host's outbox. */
export type DurableHostCommand = Delivered<'durable'>;
/** What main may send a host as an RPC. */
export type VolatileHostCommand = Delivered<'volatile'>;

/** The host's command runner keeps no result of these. */
export const VOLATILE_HOST_COMMANDS: ReadonlySet<string> = new Set(
  (Object.keys(HOST_COMMANDS) as HostCommand[]).filter((name) => HOST_COMMANDS[name] === 'volatile'),
);
