/**
 * The system report an agent sends with each heartbeat. Static facts (OS, release, cores) come from
 * systeminformation once; the per-heartbeat figures come from Node's `os` and `fs.statfs`, which never
 * block: systeminformation's fsSize runs `execSync` (df, /proc/mounts), which stalled a relaying agent's
 * event loop (and so every tunnel record through it) for tens of ms per heartbeat.
 * Hosts use the same figures for tenant budgets.
 */
import si from 'systeminformation';
import { arch, cpus, freemem, hostname, totalmem, uptime } from 'node:os';
import { statfs } from 'node:fs/promises';
import { AGENT_VERSION } from '#common/protocol-version.js';

export interface SysReport {
  hostname: string;
  os: string;
  release: string;
  arch: string;
  cpuCores: number;
  cpuLoadPct: number;
  memTotal: number;
  memAvailable: number;
  diskTotal: number;
  diskFree: number;
  agentVersion: string;
  uptimeS: number;
  nodeVersion: string;
}

let osCache: Promise<{ distro: string; release: string; cores: number }> | undefined;

/** CPU times at the previous call: load is the busy share since then (as systeminformation's currentLoad). */
let lastCpu = cpuTimes();

function cpuTimes(): { busy: number; total: number } {
  let busy = 0,
    total = 0;
  for (const c of cpus()) {
    const t = c.times;
    const all = t.user + t.nice + t.sys + t.idle + t.irq;
    total += all;
    busy += all - t.idle;
  }
  return { busy, total };
}

function cpuLoadPct(): number {
  const now = cpuTimes();
  const dt = now.total - lastCpu.total;
  const pct = dt > 0 ? ((now.busy - lastCpu.busy) / dt) * 100 : 0;
  lastCpu = now;
  return Math.round(pct * 10) / 10;
}

export async function sysReport(dataDir: string): Promise<SysReport> {
  osCache ??= Promise.all([si.osInfo(), si.cpu()]).then(([o, c]) => ({
    distro: o.distro || o.platform,
    release: o.release,
    cores: c.cores,
  }));
  // statfs on the data dir itself: the filesystem that holds the agent's data.
  const [os, fs] = await Promise.all([osCache, statfs(dataDir).catch(() => undefined)]);
  return {
    hostname: hostname(),
    os: os.distro,
    release: os.release,
    arch: arch(),
    cpuCores: os.cores,
    // os.freemem() is MemAvailable on Linux (libuv), what systeminformation reported as `available`.
    cpuLoadPct: cpuLoadPct(),
    memTotal: totalmem(),
    memAvailable: freemem(),
    diskTotal: fs ? fs.blocks * fs.bsize : 0,
    diskFree: fs ? fs.bavail * fs.bsize : 0,
    agentVersion: AGENT_VERSION,
    uptimeS: Math.round(uptime()),
    nodeVersion: process.versions.node,
  };
}
