/**
 * main's systemd unit as text: the sandbox holds what main needs (its data directory writable, one port) and no
 * more; a port below 1024 adds exactly the one capability to bind it; never MemoryDenyWriteExecute (V8's JIT).
 */
import { describe, expect, it } from 'vitest';
import { mainServiceShellCommand, mainServiceUnit } from '../../main/service-unit.js';

const base = { user: 'palisade', node: '/usr/bin/node', cli: '/opt/palisade/bin/palisade.js' };
const directives = (unit: string) => unit.split('\n').filter((l) => /^[A-Z]\w+=/.test(l));

describe('main service unit', () => {
  it('runs main as its user, logging to stdout, writing only the data directory, with no capability', () => {
    const unit = mainServiceUnit({ ...base, data: '/var/lib/palisade main', port: 8443 });
    const d = directives(unit);
    expect(d).toContain('User=palisade');
    expect(d).toContain(
      'ExecStart=/usr/bin/node /opt/palisade/bin/palisade.js main start --data "/var/lib/palisade main" --log stdout',
    );
    expect(d).toContain('ReadWritePaths="/var/lib/palisade main"');
    expect(d).toContain('CapabilityBoundingSet=');
    expect(unit).not.toContain('AmbientCapabilities');
    for (const line of [
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'PrivateUsers=yes',
      'NoNewPrivileges=yes',
      'ProtectKernelTunables=yes',
      'ProtectKernelModules=yes',
      'ProtectKernelLogs=yes',
      'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
      'SystemCallFilter=@system-service',
      'UMask=0077',
      'WantedBy=multi-user.target',
    ])
      expect(d, line).toContain(line);
    expect(d.some((l) => l.startsWith('MemoryDenyWriteExecute='))).toBe(false);
  });

  it('adds only CAP_NET_BIND_SERVICE, and no user namespace, for a port below 1024', () => {
    const d = directives(mainServiceUnit({ ...base, data: '/var/lib/palisade', port: 443 }));
    expect(d).toContain('AmbientCapabilities=CAP_NET_BIND_SERVICE');
    expect(d).toContain('CapabilityBoundingSet=CAP_NET_BIND_SERVICE');
    expect(d.some((l) => l.startsWith('PrivateUsers='))).toBe(false);
  });

  it('keeps a home directory readable (not hidden) when main or its data lives there', () => {
    const d = directives(mainServiceUnit({ ...base, data: '/home/soc/palisade', port: 8443 }));
    expect(d).toContain('ProtectHome=read-only');
    expect(d).toContain('ReadWritePaths=/home/soc/palisade');
    expect(d).not.toContain('ProtectHome=yes');
  });

  it('prints the same argv as a shell command where there is no systemd', () => {
    expect(mainServiceShellCommand({ ...base, data: "/srv/it's" })).toBe(
      `/usr/bin/node /opt/palisade/bin/palisade.js main start --data '/srv/it'\\''s' --log stdout`,
    );
  });
});
