/**
 * The systemd unit that runs main as a service: text only, no I/O (main/service-install.ts writes and enables
 * it). Hardened to what main needs and no more: it writes only its data directory, binds one TCP port, and
 * logs JSON to stdout for journald. Not the agents' unit (installer/systemd-unit.ts): a host must make
 * per-tenant users, main never does, so main gets a far tighter sandbox.
 */
import { shellArg, systemdArg } from '#common/systemd-text.js';

export const MAIN_UNIT_NAME = 'palisade-main.service';

export interface MainUnitOptions {
  /** Absolute data directory (main init made it). */
  data: string;
  /** User= : a name or a numeric uid; never root (service-install refuses it). */
  user: string;
  /** The port from main.json: below 1024 it needs CAP_NET_BIND_SERVICE, else no capability at all. */
  port: number;
  node: string;
  cli: string;
}

/** Paths ProtectHome=yes makes inaccessible; read-only there instead when main's code or data lives in one. */
const HOME_PREFIXES = ['/home/', '/root/', '/run/user/'];

/** The command line the unit runs, also printed as a shell command where there is no systemd. */
export function mainServiceCommand(o: Pick<MainUnitOptions, 'node' | 'cli' | 'data'>): string[] {
  return [o.node, o.cli, 'main', 'start', '--data', o.data, '--log', 'stdout'];
}

export function mainServiceShellCommand(o: Pick<MainUnitOptions, 'node' | 'cli' | 'data'>): string {
  return mainServiceCommand(o).map(shellArg).join(' ');
}

export function mainServiceUnit(o: MainUnitOptions): string {
  const lowPort = o.port > 0 && o.port < 1024;
  const inHome = [o.data, o.cli, o.node].some((p) => HOME_PREFIXES.some((h) => `${p}/`.startsWith(h)));
  return `[Unit]
Description=Palisade main
Documentation=https://palisade.invalid/docs/operations.md
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
User=${systemdArg(o.user)}
ExecStart=${mainServiceCommand(o).map(systemdArg).join(' ')}
Restart=on-failure
RestartSec=5s
# Exit code 2 is a user error (bad main.json, data directory gone): restarting cannot help.
RestartPreventExitStatus=2
KillSignal=SIGTERM
TimeoutStopSec=45s
UMask=0077
${lowPort ? `# Port ${o.port} is below 1024: the one capability main needs to bind it.\nAmbientCapabilities=CAP_NET_BIND_SERVICE\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE` : 'CapabilityBoundingSet='}
NoNewPrivileges=yes
ProtectSystem=strict
${inHome ? '# Main or its data lives under a home directory: readable there, writable only in ReadWritePaths.\nProtectHome=read-only' : 'ProtectHome=yes'}
ReadWritePaths=${systemdArg(o.data)}
PrivateTmp=yes
PrivateDevices=yes
${lowPort ? '' : '# A user namespace of its own; not with a low port, whose capability must hold in the host namespace.\nPrivateUsers=yes\n'}ProtectClock=yes
ProtectHostname=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
DevicePolicy=closed
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
# No MemoryDenyWriteExecute=: V8's JIT maps memory writable and executable and aborts under it.

[Install]
WantedBy=multi-user.target
`;
}
