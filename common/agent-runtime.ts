/**
 * How the processes that carry tunnel bytes — agents (engines, hosts) and tenant processes — are started:
 * Node/V8 flags and C-library settings that must be in place before the process starts (V8 fixes its GC
 * threads at start, and setting the flag later aborts the process; glibc reads its tuning from the
 * environment once, before main). The systemd unit, the host's fork of each tenant, `palisade demo` and the
 * test harness all start them this way, and an agent started otherwise says so in its log.
 *
 * --single-threaded-gc: V8 otherwise runs scavenges and marking on helper threads, one per core. A tunnel
 * allocates a buffer per socket read and per cipher call, so it scavenges often, and on a small box with
 * several busy processes (client, tenant, engine, target on 2 cores) the helpers' wake-ups and futex
 * hand-offs cost more than the parallel work saves: the tunnel benchmark went from ~250 to ~450 MB/s with
 * total machine CPU per MB from ~6.5 to ~3.9 ms. A host running one process per tenant wants the same:
 * N tenants × cores helper threads only contend with each other.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--single-threaded-gc'];

/**
 * glibc malloc settings. Each cipher call and socket read returns a fresh 64 KiB buffer, freed in batches
 * when V8 sweeps; by default glibc then gives the top of its heap back to the kernel (trim threshold
 * 128 KiB, raised only as far as the largest mmapped block freed), and the next batch faults every page
 * in again, zeroed. In a busy tunnel that cost the sealing process ~0.4 ms of CPU per MB of ~2.2 (up to
 * ~45 faults per MB), and a bare ChaCha20-Poly1305 loop in Node ran 4× slower. Fixed values keep up to
 * 32 MiB of freed heap per process for reuse — the price, in resident memory after a burst — and serve
 * blocks up to 2 MiB (above the 1 MiB record and frame limits) from the heap rather than from fresh mmaps.
 * Values the operator sets in the environment win.
 */
export const AGENT_ENV: Readonly<Record<string, string>> = {
  MALLOC_TRIM_THRESHOLD_: String(32 * 1024 * 1024),
  MALLOC_TOP_PAD_: String(8 * 1024 * 1024),
  MALLOC_MMAP_THRESHOLD_: String(2 * 1024 * 1024),
};

/** What of AGENT_NODE_FLAGS and AGENT_ENV this process was started without (flags, then variable names). */
export function missingAgentRuntime(
  execArgv: readonly string[] = process.execArgv,
  env: NodeJS.ProcessEnv = process.env,
): string[] {
  return [
    ...AGENT_NODE_FLAGS.filter((f) => !execArgv.includes(f)),
    ...Object.keys(AGENT_ENV).filter((k) => env[k] === undefined),
  ];
}

/**
 * `execArgv` plus whichever AGENT_NODE_FLAGS it lacks (for a child forked from a process that may or may not have
 * them).
 */
export function withAgentNodeFlags(execArgv: readonly string[] = process.execArgv): string[] {
  return [...execArgv, ...AGENT_NODE_FLAGS.filter((f) => !execArgv.includes(f))];
}

/** `env` with AGENT_ENV's variables where it does not set them already. */
export function withAgentEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...AGENT_ENV, ...env };
}
