import { AGENT_ENV, AGENT_NODE_FLAGS } from '#common/agent-runtime.js';
import { shellArg, systemdArg } from '#common/systemd-text.js';

/**
 * The systemd unit written next to an installed agent (not enabled: the admin decides). Hardened per
 * as Node allows, but never MemoryDenyWriteExecute, under which V8's JIT aborts. Node runs with
 * AGENT_NODE_FLAGS and AGENT_ENV (see there: tunnel throughput).
 */
export function systemdUnit(o: { kind: string; name: string; dir: string; node: string; cli: string }): string {
  return `[Unit]
Description=Palisade ${o.kind} agent ${o.name}
Documentation=https://palisade.invalid/docs
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
Environment=${Object.entries(AGENT_ENV)
    .map(([k, v]) => systemdArg(`${k}=${v}`))
    .join(' ')}
ExecStart=${agentCommand(o).map(systemdArg).join(' ')}
Restart=on-failure
RestartSec=5s
# Exit code 2 is a permanent refusal (revoked, bad bundle): restarting cannot help.
RestartPreventExitStatus=2
KillSignal=SIGTERM
TimeoutStopSec=30s
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
export function agentCommand(o: { node: string; cli: string; dir: string }): string[] {
  return [o.node, ...AGENT_NODE_FLAGS, o.cli, 'agent', 'start', '--dir', o.dir];
}

/** The unit's Environment= and ExecStart= as one POSIX shell command, for starting an agent by hand. */
export function agentShellCommand(o: { node: string; cli: string; dir: string }): string {
  return [...Object.entries(AGENT_ENV).map(([k, v]) => `${k}=${shellArg(v)}`), ...agentCommand(o).map(shellArg)].join(
    ' ',
  );
}
