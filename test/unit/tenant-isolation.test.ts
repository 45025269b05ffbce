/**
 * The decisions behind tenant isolation (agent/host/tenant-isolation.ts): when tenants get their own
 * users and what the host says when they do not, what a tenant user is called, and what of the host's
 * environment a tenant gets. No I/O: the checks on real directories are in
 * test/integration/tenant-paths.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { AGENT_ENV } from '#common/agent-runtime.js';
import {
  TENANT_USER_PREFIX,
  hasUserAdminCaps,
  tenantEnv,
  tenantIsolation,
  tenantUserName,
} from '../../agent/host/tenant-isolation.js';
import { HostRole } from '../../agent/host/host-role.js';

describe('tenant isolation', () => {
  it('gives tenants their own users only when the host is root and the operator did not turn it off', () => {
    expect(tenantIsolation(0, undefined)).toEqual({ users: true });
    expect(tenantIsolation(0, true)).toEqual({ users: true });
    const notRoot = {
      users: false,
      reason:
        'the host agent runs neither as root nor with CAP_CHOWN, CAP_SETGID, CAP_SETUID, a pool of tenant users (install.sh) and setpriv',
    };
    expect(tenantIsolation(1000, undefined)).toEqual(notRoot);
    expect(tenantIsolation(undefined, undefined)).toEqual(notRoot); // no uids (not POSIX)
    // An installed host: the palisade user with the capabilities its unit grants.
    expect(tenantIsolation(998, undefined, undefined, true)).toEqual({ users: true });
    expect(tenantIsolation(998, false, undefined, true)).toEqual({
      users: false,
      reason: 'tenantUsers is false in agent.json',
    });
    expect(tenantIsolation(0, false)).toEqual({ users: false, reason: 'tenantUsers is false in agent.json' });
    // Code a tenant user could not load: by default as the host's user (and why); set true, users all the same.
    expect(tenantIsolation(0, undefined, '/root')).toEqual({
      users: false,
      reason: expect.stringContaining('/root is closed to other users') as string,
    });
    expect(tenantIsolation(0, true, '/root')).toEqual({ users: true });
  });

  it('reads the capabilities that stand in for root from a CapEff mask', () => {
    expect(hasUserAdminCaps('00000000000000c1')).toBe(true); // exactly the three an installed host's unit grants
    expect(hasUserAdminCaps('000001ffffffffff')).toBe(true); // root's full set
    expect(hasUserAdminCaps('0000000000000041')).toBe(false); // no CAP_SETUID: no fork as the tenant's user
    expect(hasUserAdminCaps('0000000000000000')).toBe(false);
  });

  it('a host that does not isolate by user says so once, with why', () => {
    const lines: string[] = [];
    const log = pino(
      {},
      {
        write: (l: string) => {
          lines.push(l);
        },
      },
    );
    void new HostRole('/nonexistent/tenants', '/nonexistent', log, { tenantUsers: false });
    expect(lines.map((l) => JSON.parse(l) as { msg: string; reason?: string })).toEqual([
      expect.objectContaining({
        msg: "tenant isolation is by process only: tenants run as the host agent's user",
        reason: 'tenantUsers is false in agent.json',
      }),
    ]);
  });

  it('names a tenant user within 32 characters, unique per host directory and tenant, without the tenant name', () => {
    const long = 'a'.repeat(63);
    const names = [
      tenantUserName('/var/lib/palisade/h1', 'acme'),
      tenantUserName('/var/lib/palisade/h2', 'acme'),
      tenantUserName('/var/lib/palisade/h1', 'globex'),
      tenantUserName('/var/lib/palisade/h1', long),
      tenantUserName('/var/lib/palisade/h1', `${long.slice(0, 62)}b`),
    ];
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) {
      expect(n.startsWith(TENANT_USER_PREFIX)).toBe(true);
      expect(n.length).toBeLessThanOrEqual(32);
      expect(n).toMatch(/^[a-z_][a-z0-9_-]*$/); // what useradd accepts
      expect(n).not.toMatch(/acme|globex|aaaa/); // /etc/passwd is world-readable: no customer names in it
    }
    expect(tenantUserName('/var/lib/palisade/h1/', 'acme')).toBe(names[0]); // the same directory however written
  });

  it("gives a tenant only the variables it reads, with the agent runtime's defaults, and no AWS setup", () => {
    const env = tenantEnv({
      PATH: '/usr/bin',
      HOME: '/root',
      PALISADE_API_KEY: 'secret',
      PALISADE_LOG_LEVEL: 'debug',
      SSH_AUTH_SOCK: '/tmp/x',
      MALLOC_TOP_PAD_: '1',
      AWS_ACCESS_KEY_ID: 'AKIAHOSTKEY000000001',
      AWS_PROFILE: 'mssp',
      AWS_CONFIG_FILE: '/root/.aws/config',
    });
    expect(env).toEqual({
      ...AGENT_ENV,
      PATH: '/usr/bin',
      PALISADE_LOG_LEVEL: 'debug',
      MALLOC_TOP_PAD_: '1',
      AWS_CONFIG_FILE: '/dev/null/palisade-no-aws-config',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null/palisade-no-aws-credentials',
    });
    expect(tenantEnv({}, ['127.0.0.1:9000', '[::1]:9001'])).toMatchObject({
      PALISADE_INTEGRATION_LOOPBACK_ALLOW: '127.0.0.1:9000,[::1]:9001',
    });
  });
});
