/**
 * The system report an agent sends with each heartbeat (systeminformation). Static facts are read once;
 * load, memory and disk are sampled per call. Hosts use the same figures for tenant budgets.
 */
import si from 'systeminformation';
import { arch, hostname } from 'node:os';
import { AGENT_VERSION } from '#common/protocol-version.js';

export interface SysReport {
  hostname: string; os: string; release: string; arch: string; cpuCores: number; cpuLoadPct: number;
  memTotal: number; memAvailable: number; diskTotal: number; diskFree: number; agentVersion: string;
  uptimeS: number; nodeVersion: string;
}

let osCache: Promise<{ distro: string; release: string; cores: number }> | undefined;

export async function sysReport(dataDir: string): Promise<SysReport> {
  osCache ??= Promise.all([si.osInfo(), si.cpu()]).then(([o, c]) => ({ distro: o.distro || o.platform, release: o.release, cores: c.cores }));
  const [os, mem, load, disks] = await Promise.all([osCache, si.mem(), si.currentLoad(), si.fsSize()]);
  // The filesystem holding the agent's data: the longest mount point that prefixes it.
  const disk = disks.filter((d) => dataDir.startsWith(d.mount)).sort((a, b) => b.mount.length - a.mount.length)[0] ?? disks[0];
  return {
    hostname: hostname(), os: os.distro, release: os.release, arch: arch(), cpuCores: os.cores,
    cpuLoadPct: Math.round(load.currentLoad * 10) / 10, memTotal: mem.total, memAvailable: mem.available,
    diskTotal: disk?.size ?? 0, diskFree: disk?.available ?? 0, agentVersion: AGENT_VERSION,
    uptimeS: Math.round(si.time().uptime), nodeVersion: process.versions.node,
  };
}
