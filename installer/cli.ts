/**
 * Installer verbs: `installer create` (asks main for a bundle), `installer list|revoke` (its one-time
 * enrolment keys) and `agent install` (unpacks a bundle here).
 */
import type { Command } from 'commander';
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { adminClient, withClientOptions, type ClientOptions } from '#common/admin-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { DEFAULT_ENGINE_LISTEN } from '#common/agent-dir.js';
import type { InstallResult } from './install.js';

type Common = ClientOptions & { json?: boolean };

export function registerInstallerCommands(program: Command, agent: Command, cliPath: string): void {
  const installer = program.command('installer').description('installer bundles for hosts and engines');
  withClientOptions(installer.command('create').description('create a bundle with a one-time enrolment key'))
    .requiredOption('--kind <kind>', 'host or engine')
    .requiredOption('--name <name>', 'agent name')
    .requiredOption('--out <file>', 'where to write the .tar.gz')
    .option('--tenant <tenant>', 'engines: the tenant it serves')
    .option('--group <group>', 'engines: engine group')
    .option('--ttl <duration>', 'enrolment key lifetime', '24h')
    .action((o: Common & { kind: string; name: string; out: string; tenant?: string; group?: string; ttl: string }) => runAction(o, async () => {
      const r = await adminClient(o).request<{ bundle: string; kind: string; name: string; expiresAt: string; enrolKeyId: string; mainUrl: string }>(
        'POST', '/installers', { kind: o.kind, name: o.name, ttl: o.ttl, ...(o.tenant ? { tenant: o.tenant } : {}), ...(o.group ? { group: o.group } : {}) });
      const out = resolve(o.out);
      await writeFile(out, Buffer.from(r.bundle, 'base64'), { mode: 0o600 });
      const view = { bundle: out, kind: r.kind, name: r.name, expiresAt: r.expiresAt, enrolKeyId: r.enrolKeyId, mainUrl: r.mainUrl };
      printResult(view, o, () => [`wrote ${out} (${r.kind} "${r.name}", one-time key ${r.enrolKeyId} expires ${r.expiresAt})`, `install it with: palisade agent install --bundle ${out} --dir DIR`]);
    }));

  withClientOptions(installer.command('list').description("enrolment keys main issued, newest first, with status (unused, used, expired, revoked); never the keys themselves"))
    .option('--status <status>', 'only keys with this status: unused, used, expired or revoked')
    .action((o: Common & { status?: string }) => runAction(o, async () => {
      const rows = await adminClient(o).request<Record<string, unknown>[]>('GET', `/installers${o.status ? `?${new URLSearchParams({ status: o.status })}` : ''}`);
      printResult(rows, o, () => table(rows, ['id', 'kind', 'name', 'tenant', 'status', 'createdAt', 'expiresAt', 'createdBy']));
    }));

  withClientOptions(installer.command('revoke <id>').description('revoke an unused enrolment key: its bundle enrols nothing any more'))
    .action((id: string, o: Common) => runAction(o, async () => {
      const r = await adminClient(o).request<{ id: string; kind: string; name: string }>('DELETE', `/installers/${encodeURIComponent(id)}`);
      printResult(r, o, () => `enrolment key ${r.id} (${r.kind} "${r.name}") revoked: its bundle enrols nothing any more`);
    }));

  agent.command('install').description('unpack a bundle into an agent directory and write a systemd unit file')
    .requiredOption('--bundle <file>', 'bundle from installer create')
    .requiredOption('--dir <dir>', 'agent directory to create')
    .option('--allow <entry>', 'engines: allowed destination CIDR[:PORT|PORT-PORT] or HOST[:PORT] (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--no-direct', 'engines: never dial the host directly; always relay through main')
    .option('--engine-listen <addr>', `hosts: ADDR:PORT to listen on for engines' direct connections, or "off" (default ${DEFAULT_ENGINE_LISTEN})`)
    .option('--engine-advertise <hostport>', 'hosts: HOST:PORT engines should dial, when not the listen address (NAT, port forward, DNS name)')
    .option('--json', 'machine-readable output')
    .action((o: { bundle: string; dir: string; allow: string[]; direct: boolean; engineListen?: string; engineAdvertise?: string; json?: boolean }) => runAction(o, async () => {
      const { installAgent } = await import('./install.js');
      const r = await installAgent({ bundle: o.bundle, dir: o.dir, allow: o.allow, direct: o.direct, engineListen: o.engineListen, engineAdvertise: o.engineAdvertise, cli: cliPath });
      printResult(r, o, () => [`installed ${r.kind} "${r.name}" in ${r.dir}`, directPathLine(r), `systemd unit: ${r.unitFile} (not enabled)`, `start it with: ${r.start}`]);
    }));
}

/** One line on the engine ⇄ host direct path, as this install set it up. */
function directPathLine(r: InstallResult): string {
  if (r.kind === 'engine') return r.direct ? "direct path: dials its tenant's host directly when offered, else relays through main" : 'direct path: off (always relays through main)';
  if (r.engineListen === 'off') return 'engine port: off (engines relay through main)';
  const dial = r.engineAdvertise ? `; engines are told to dial ${r.engineAdvertise}` : '';
  const local = r.engineListen === DEFAULT_ENGINE_LISTEN ? ' (default: engines on this machine only)' : '';
  return `engine port: ${r.engineListen}${local}${dial}`;
}
