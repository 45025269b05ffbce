import { createHash } from 'node:crypto';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '#common/agent-runtime.js';
import { shellArg, systemdArg } from '#common/systemd-text.js';
import { HOST_CAPABILITIES } from '#common/host-capabilities.js';

/** Both agent units' [Unit] section and the start of [Service], up to the user. */
function unitStart(kind: string, name: string): string {
  return `[Unit]
Description=Palisade ${kind} agent ${name}
Documentation=https://palisade.invalid/docs
After=network-online.target
Wants=network-online.target

[Service]
Type=exec`;
}

/** Both agent units' environment, command and restart policy. */
function unitRun(command: string[]): string {
  return `Environment=${Object.entries(AGENT_ENV)
    .map(([k, v]) => systemdArg(`${k}=${v}`))
    .join(' ')}
ExecStart=${command.map(systemdArg).join(' ')}
Restart=on-failure
RestartSec=5s
# Exit code 2 is a permanent refusal (revoked, bad bundle): restarting cannot help.
RestartPreventExitStatus=2
KillSignal=SIGTERM
TimeoutStopSec=30s`;
}

/**
 * The systemd unit written next to an installed agent (not enabled: the admin decides). Hardened per
 * as Node allows, but never MemoryDenyWriteExecute, under which V8's JIT aborts. Node runs with
 * AGENT_NODE_FLAGS and AGENT_ENV (see there: tunnel throughput).
 */
export function systemdUnit(o: {
  kind: string;
  name: string;
  dir: string;
  node: string;
  cli: string;
  verb?: string[];
}): string {
  return `${unitStart(o.kind, o.name)}
${unitRun(agentCommand(o))}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
${o.kind === 'host' ? '# /etc: a host running as root makes and deletes a system user per tenant there (useradd, userdel).\n' : ''}ReadWritePaths=${systemdArg(o.dir)}${o.kind === 'host' ? ' /etc' : ''}
UMask=0077

[Install]
WantedBy=multi-user.target
`;
}

export function unitFileName(kind: string, name: string): string {
  return `palisade-${kind}-${name}.service`;
}

/** The command line that runs an installed agent: the unit's ExecStart, and how demo and tests start agents too. */
export function agentCommand(o: { node: string; cli: string; dir: string; verb?: string[] }): string[] {
  return [o.node, ...AGENT_NODE_FLAGS, o.cli, ...(o.verb ?? ['agent']), 'start', '--dir', o.dir];
}

/** The unit's Environment= and ExecStart= as one POSIX shell command, for starting an agent by hand. */
export function agentShellCommand(o: { node: string; cli: string; dir: string; verb?: string[] }): string {
  return [...Object.entries(AGENT_ENV).map(([k, v]) => `${k}=${shellArg(v)}`), ...agentCommand(o).map(shellArg)].join(
    ' ',
  );
}

/** Longest user name useradd takes. */
const MAX_USER_NAME = 32;

/**
 * The system user an installed agent runs as (install.sh makes it, uninstall.sh deletes it): one per agent, so that
 * one agent's code and keys are not another's to change — an engine sharing a user with a host on the same machine
 * could rewrite the host's release, which runs with the capabilities to become any user. `palisade-<name>`, or
 * `palisade-<12 hex of its SHA-256>` where that would be longer than useradd takes.
 */
export function serviceUserOf(name: string): string {
  const user = `palisade-${name}`;
  return user.length <= MAX_USER_NAME
    ? user
    : `palisade-${createHash('sha256').update(name).digest('hex').slice(0, 12)}`;
}

/** Where one installed agent's files are: PREFIX/<name>, as install.sh lays it out (docs/operations.md). */
export function releasePaths(root: string): { node: string; launcher: string; state: string } {
  return {
    node: `${root}/committed/bin/node`,
    launcher: `${root}/committed/app/launcher.mjs`,
    state: `${root}/state`,
  };
}

/**
 * An installed agent's command line: the launcher of the last known-good release (`committed`, never a release
 * by its version), which runs the `current` release's agent (with AGENT_NODE_FLAGS, logging to stdout for
 * journald) and undoes an upgrade that does not come back (agent/upgrade/launcher.ts).
 */
export function releaseCommand(root: string): string[] {
  const p = releasePaths(root);
  return [p.node, p.launcher, '--root', root];
}

/**
 * The unit install.sh writes and enables for an agent installed under `root` (PREFIX/<name>). Both kinds run
 * as their own serviceUserOf(name) and may write only their install; a host also holds HOST_CAPABILITIES, which is what
 * forking a tenant as its own user and handing it its directory need, instead of root. A host's tenant users
 * come from a pool install.sh made (so no /etc to write), and what it does in a tenant's directory or to its
 * processes runs as the tenant's user (agent/host/as-tenant.ts), which is why it needs no DAC_OVERRIDE,
 * FOWNER or KILL and can run with ProtectProc=invisible (tenants report their own CPU and memory).
 * Measured with `systemd-analyze security --offline` (systemd 252): engine 1.3, host 1.9 (2.4 with the
 * six capabilities of useradd and userdel, /etc writable and ProtectProc=default). Not ProcSubset=pid:
 * os.cpus() and os.freemem() read /proc/stat and /proc/meminfo. Never MemoryDenyWriteExecute: V8's JIT
 * aborts under it.
 */
export function releaseUnit(o: { kind: 'host' | 'engine'; name: string; root: string }): string {
  const host = o.kind === 'host';
  const caps = host ? Object.keys(HOST_CAPABILITIES).join(' ') : '';
  // The whole install, not only state/: an upgrade writes releases/ and swaps the current and committed links.
  const writable = [o.root];
  return `${unitStart(o.kind, o.name)}
User=${serviceUserOf(o.name)}
Group=${serviceUserOf(o.name)}
${unitRun(releaseCommand(o.root))}
${host ? '# Tenants as their own users without root: fork as the tenant, hand it its directory (common/host-capabilities.ts).\n' : ''}CapabilityBoundingSet=${caps}
AmbientCapabilities=${caps}
SupplementaryGroups=
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=${writable.map(systemdArg).join(' ')}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
PrivateIPC=yes
DevicePolicy=closed
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
KeyringMode=private
RemoveIPC=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
# Tenants list their interfaces (netlink) and talk to their host over a socket pair (AF_UNIX).
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@resources${host ? '' : ' @privileged'}
SystemCallErrorNumber=EPERM
UMask=0077

[Install]
WantedBy=multi-user.target
`;
}

/**
 * The unit's user, capabilities, environment and command as one POSIX shell command, for a machine without
 * systemd (a container): setpriv gives the same user and, for a host, the same capabilities and bounding set.
 */
export function releaseShellCommand(o: { kind: 'host' | 'engine'; name: string; root: string }): string {
  const caps = Object.keys(HOST_CAPABILITIES).map((c) => `+${c.slice('CAP_'.length).toLowerCase()}`);
  const user = [`--reuid=${serviceUserOf(o.name)}`, `--regid=${serviceUserOf(o.name)}`, '--init-groups'];
  const capFlags =
    o.kind === 'host'
      ? [`--inh-caps=${caps.join(',')}`, `--ambient-caps=${caps.join(',')}`, `--bounding-set=-all,${caps.join(',')}`]
      : ['--inh-caps=-all', '--bounding-set=-all'];
  return [
    'setpriv',
    ...user,
    ...capFlags,
    'env',
    ...Object.entries(AGENT_ENV).map(([k, v]) => `${k}=${v}`),
    ...releaseCommand(o.root),
  ]
    .map(shellArg)
    .join(' ');
}
