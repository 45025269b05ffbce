/**
 * Node/V8 flags for the processes that carry tunnel bytes: agents (engines, hosts) and tenant processes.
 * They must be on the command line (V8 fixes its GC threads at start; setting the flag later aborts the
 * process), so the systemd unit, the host's fork of each tenant, `palisade demo` and the test harness all
 * start them with these, and an agent started without them says so in its log.
 *
 * --single-threaded-gc: V8 otherwise runs scavenges and marking on helper threads, one per core. A tunnel
 * allocates a buffer per socket read and per cipher call, so it scavenges often, and on a small box with
 * several busy processes (client, tenant, engine, target on 2 cores) the helpers' wake-ups and futex
 * hand-offs cost more than the parallel work saves: the tunnel benchmark went from ~250 to ~450 MB/s with
 * total machine CPU per MB from ~6.5 to ~3.9 ms. A host running one process per tenant wants the same:
 * N tenants × cores helper threads only contend with each other.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--single-threaded-gc'];

/** Whether this process was started with AGENT_NODE_FLAGS. */
export function hasAgentNodeFlags(execArgv: readonly string[] = process.execArgv): boolean {
  return AGENT_NODE_FLAGS.every((f) => execArgv.includes(f));
}

/** `execArgv` plus whichever AGENT_NODE_FLAGS it lacks (for a child forked from a process that may or may not have them). */
export function withAgentNodeFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return [...execArgv, ...AGENT_NODE_FLAGS.filter((f) => !execArgv.includes(f))];
}
