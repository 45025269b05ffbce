/**
 * The unit install.sh enables for an agent installed from its bundle, and the command it prints where there is
 * no systemd: the launcher of the `committed` release, the palisade user, a host's capabilities and nothing more.
 */
import { describe, expect, it } from 'vitest';
import { releaseShellCommand, releaseUnit, serviceUserOf } from '../../installer/systemd-unit.js';

const ENV = 'MALLOC_TRIM_THRESHOLD_=33554432 MALLOC_TOP_PAD_=8388608 MALLOC_MMAP_THRESHOLD_=2097152';
const CAPS = 'CAP_CHOWN CAP_SETGID CAP_SETUID';

/** The unit's settings as key → values (a key may repeat, as SystemCallFilter= does). */
function settings(unit: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of unit.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 1 || line.startsWith('#')) continue;
    m.set(line.slice(0, eq), [...(m.get(line.slice(0, eq)) ?? []), line.slice(eq + 1)]);
  }
  return m;
}

describe('installed agent unit', () => {
  it('runs the launcher of the known-good release as the palisade user, writing only its install', () => {
    const s = settings(releaseUnit({ kind: 'engine', name: 'e1', root: '/opt/palisade/e1' }));
    expect(s.get('ExecStart')).toEqual([
      '/opt/palisade/e1/committed/bin/node /opt/palisade/e1/committed/app/launcher.mjs --root /opt/palisade/e1',
    ]);
    expect(s.get('User')).toEqual(['palisade-e1']);
    expect(s.get('Group')).toEqual(['palisade-e1']);
    expect(s.get('Environment')).toEqual([ENV]);
    expect(s.get('ReadWritePaths')).toEqual(['/opt/palisade/e1']);
    expect(s.get('ProtectSystem')).toEqual(['strict']);
    expect(s.get('NoNewPrivileges')).toEqual(['yes']);
    expect(s.get('RestartPreventExitStatus')).toEqual(['2']);
    // An engine holds no capability and may not call the privileged system calls at all.
    expect(s.get('CapabilityBoundingSet')).toEqual(['']);
    expect(s.get('AmbientCapabilities')).toEqual(['']);
    expect(s.get('SystemCallFilter')).toEqual(['@system-service', '~@resources @privileged']);
    expect(s.get('ProtectProc')).toEqual(['invisible']);
    // V8's JIT needs writable executable memory; os.cpus() and os.freemem() read /proc/stat and /proc/meminfo.
    expect(s.has('MemoryDenyWriteExecute')).toBe(false);
    expect(s.has('ProcSubset')).toBe(false);
  });

  it('gives a host exactly the capabilities running tenants as their own users needs, and nothing of /etc', () => {
    const s = settings(releaseUnit({ kind: 'host', name: 'h1', root: '/srv/my agents/h1' }));
    expect(s.get('User')).toEqual(['palisade-h1']);
    expect(s.get('CapabilityBoundingSet')).toEqual([CAPS]);
    expect(s.get('AmbientCapabilities')).toEqual([CAPS]);
    // Its tenant users are made by install.sh (a pool), never at run time.
    expect(s.get('ReadWritePaths')).toEqual(['"/srv/my agents/h1"']);
    expect(s.get('SystemCallFilter')).toEqual(['@system-service', '~@resources']);
    // Its tenants report their own CPU and memory: their /proc entries need not be visible to it.
    expect(s.get('ProtectProc')).toEqual(['invisible']);
    expect(s.get('ExecStart')![0]).toMatch(/^"\/srv\/my agents\/h1\/committed\/bin\/node" /);
  });

  it('prints, for a machine without systemd, the same user, capabilities, environment and command', () => {
    const plus = '+chown,+setgid,+setuid';
    const run = `env ${ENV} /opt/palisade/h1/committed/bin/node /opt/palisade/h1/committed/app/launcher.mjs --root /opt/palisade/h1`;
    expect(releaseShellCommand({ kind: 'host', name: 'h1', root: '/opt/palisade/h1' })).toBe(
      `setpriv --reuid=palisade-h1 --regid=palisade-h1 --init-groups --inh-caps=${plus} --ambient-caps=${plus}` +
        ` --bounding-set=-all,${plus} ${run}`,
    );
    expect(releaseShellCommand({ kind: 'engine', name: 'h1', root: '/opt/palisade/h1' })).toBe(
      `setpriv --reuid=palisade-h1 --regid=palisade-h1 --init-groups --inh-caps=-all --bounding-set=-all ${run}`,
    );
    expect(releaseShellCommand({ kind: 'engine', name: 'e1', root: "/opt/it's" })).toContain(
      "'/opt/it'\\''s/committed/bin/node' '/opt/it'\\''s/committed/app/launcher.mjs'",
    );
  });

  it('gives each agent its own user, within the 32 characters useradd takes', () => {
    expect(serviceUserOf('h1')).toBe('palisade-h1');
    expect(serviceUserOf('a'.repeat(23))).toBe(`palisade-${'a'.repeat(23)}`);
    const long = serviceUserOf('a'.repeat(24));
    expect(long).toMatch(/^palisade-[0-9a-f]{12}$/);
    expect(serviceUserOf('b'.repeat(24))).not.toBe(long);
  });
});
