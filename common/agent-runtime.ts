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
 *
 * --scavenger-max-new-space-capacity-mb=8 and --heap-growing-percent=200: the young generation of Node 20 and
 * room above the old one. Every socket read is a fresh 64 KiB ArrayBuffer, dead once relayed. Node 20 (V8 11)
 * reclaimed them with a scavenge per 32 MiB of young buffers (twice its 16 MiB semi-space); Node 24 (V8 13.6)
 * waits for 128 MiB (twice 64 MiB, its new default), so external-memory pressure starts a full incremental
 * marking first, and V8 starts the next one as soon as the old generation's headroom (~1.6× a ~17 MiB live heap)
 * is smaller than the new space: an engine relaying 1 GiB ran 30 Mark-Compacts instead of 1, GC 1.9 s
 * instead of 0.1 s, 40% of its CPU, and the tunnel fell from ~0.9× to ~0.6× `ssh -L`. The first flag brings
 * back the 16 MiB semi-spaces and the 32 MiB trigger; alone it did not stop the marking cycle (headroom still
 * below the new space), nor did a smaller semi-space; with the old generation's limit at 3× the live heap
 * after a GC (V8's own factor ranges to 4 on large machines; a tenant's --max-old-space-size still caps it)
 * the engine relaying 0.5 GiB did 26 scavenges and 1 Mark-Compact, GC 48 ms, and the tunnel ran 1.0–1.5×
 * `ssh -L`, tenant + engine CPU per MB down from ~3.5 to ~1.5 ms (three runs, docs/benchmarks.md). The price:
 * a smaller young generation than Node 24's for allocation-heavy API work (tenant-ingest's tenant spent 0.2–0.5 s
 * in GC per run instead of 0.16–0.25 s, two profiled runs each on a busy box). Both are V8 flags: re-measure on a
 * Node upgrade.
 */
export const AGENT_NODE_FLAGS: readonly string[] = [
  '--single-threaded-gc',
  '--scavenger-max-new-space-capacity-mb=8',
  '--heap-growing-percent=200',
];

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
