/**
 * `palisade agent install`: unpacks a bundle into an agent directory — config, pinned CA, one-time key
 * (0600) — and writes a systemd unit file beside it. Refuses to overwrite an installed agent.
 */
import { access, mkdir, writeFile } from 'node:fs/promises';
import { resolve, join } from 'node:path';
import { isIP } from 'node:net';
import { readBundle } from '#common/bundle.js';
import { agentPaths, checkAgentConfig, type AgentConfig } from '#common/agent-dir.js';
import { writeFileAtomic } from '#common/atomic-file.js';
import { BadParameterError, ConflictError } from '#common/errors.js';
import { agentCommand, systemdUnit, unitFileName } from './systemd-unit.js';

export interface InstallOptions { bundle: string; dir: string; allow?: string[]; cli: string }
export interface InstallResult {
  dir: string; kind: string; name: string; mainUrl: string; unitFile: string; expiresAt: string; allow: string[];
  /** The unit's ExecStart: how to start the agent by hand, with the same node flags. */
  start: string;
}

export async function installAgent(o: InstallOptions): Promise<InstallResult> {
  const { manifest, caPem } = await readBundle(o.bundle);
  const paths = agentPaths(resolve(o.dir));
  if (await access(paths.config).then(() => true, () => false)) {
    throw new ConflictError('ERR_AGENT_ALREADY_INSTALLED', `${paths.dir} already holds an agent; use another --dir`, { field: 'dir' });
  }
  if (Date.parse(manifest.expiresAt) <= Date.now()) {
    throw new BadParameterError('ERR_BUNDLE_EXPIRED', `this bundle's enrolment key expired at ${manifest.expiresAt}; ask the admin for a new one`, { field: 'bundle' });
  }
  const allow = (o.allow ?? []).map(checkAllowEntry);
  if (allow.length && manifest.kind !== 'engine') throw new BadParameterError('ERR_ALLOW_HOST', '--allow applies to engines only', { field: 'allow' });
  const config: AgentConfig = checkAgentConfig({
    format: 1, kind: manifest.kind, name: manifest.name, mainUrl: manifest.mainUrl,
    ...(manifest.tenant ? { tenant: manifest.tenant } : {}),
    ...(manifest.tenantPublicKey ? { tenantPublicKey: manifest.tenantPublicKey } : {}),
    ...(manifest.group ? { group: manifest.group } : {}),
    ...(manifest.kind === 'engine' ? { allow } : {}),
  }, o.bundle);
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(paths.caCert, caPem);
  await writeFileAtomic(paths.enrolKey, manifest.enrolKey + '\n', 0o600);
  const unitFile = join(paths.dir, unitFileName(manifest.kind, manifest.name));
  await writeFile(unitFile, systemdUnit({ kind: manifest.kind, name: manifest.name, dir: paths.dir, node: process.execPath, cli: o.cli }));
  await writeFileAtomic(paths.config, JSON.stringify(config, null, 2) + '\n');
  const start = agentCommand({ node: process.execPath, cli: o.cli, dir: paths.dir }).join(' ');
  return { dir: paths.dir, kind: manifest.kind, name: manifest.name, mainUrl: manifest.mainUrl, unitFile, expiresAt: manifest.expiresAt, allow, start };
}

/** `CIDR[:PORT|PORT-PORT]` or `HOST[:PORT|PORT-PORT]`; checked here so a typo fails at install, not at 3 a.m. */
export function checkAllowEntry(entry: string): string {
  const fail = () => { throw new BadParameterError('ERR_BAD_ALLOW', `--allow "${entry}": expected CIDR[:PORT|PORT-PORT] or HOST[:PORT|PORT-PORT], e.g. 10.0.0.0/24:389 or mail.corp:25`, { field: 'allow' }); };
  const m = /^(\[[0-9a-fA-F:]+\](?:\/\d{1,3})?|[^:\s/]+(?:\/\d{1,3})?)(?::(\d{1,5})(?:-(\d{1,5}))?)?$/.exec(entry.trim());
  if (!m) return fail();
  const [, target, p1, p2] = m;
  const [addr, bits] = target.replace(/^\[|\](?=\/|$)/g, '').split('/');
  if (bits !== undefined) {
    const max = isIP(addr) === 6 ? 128 : isIP(addr) === 4 ? 32 : -1;
    if (max < 0 || Number(bits) > max) return fail();
  } else if (!isIP(addr) && !/^[A-Za-z0-9.-]{1,253}$/.test(addr)) return fail();
  for (const p of [p1, p2]) if (p !== undefined && (Number(p) < 1 || Number(p) > 65535)) return fail();
  if (p1 && p2 && Number(p2) < Number(p1)) return fail();
  return entry.trim();
}
