/**
 * Where tenant isolation meets the file system (agent/host/tenant-isolation.ts, agent/host/host-role.ts),
 * on real directories in a temp dir: the host finds where the way to the tenant code is closed to other
 * users, and its tenant.remove command never takes a tenant name from main as a path.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { access, chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '#common/logging.js';
import { closedToOthers } from '../../agent/host/tenant-isolation.js';
import { HostRole } from '../../agent/host/host-role.js';
import type { Envelope } from '#common/codec.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('tenant isolation', () => {
  it('finds where the way to the tenant code is closed to other users', async () => {
    const top = await mkdtemp(join(tmpdir(), 'palisade-test-'));
    dirs.push(top);
    const file = join(top, 'code', 'tenant-main.js');
    await mkdir(join(top, 'code'), { mode: 0o755 });
    await writeFile(file, '', { mode: 0o644 });
    await chmod(top, 0o700); // as mktemp makes it
    expect(closedToOthers(file)).toBe(top);
    await chmod(top, 0o711); // enter, not list: enough
    expect(closedToOthers(file)).toBeUndefined();
    await chmod(file, 0o600);
    expect(closedToOthers(file)).toBe(file);
  });
});

describe("the host's tenant.remove command", () => {
  it('refuses a name that is a path, and removes nothing outside the tenants directory', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'palisade-host-'));
    dirs.push(dataDir);
    await mkdir(join(dataDir, 'pki'));
    await writeFile(join(dataDir, 'pki', 'agent-key.pem'), 'the host key');
    await mkdir(join(dataDir, 'tenants', 'acme'), { recursive: true });
    const remove = new HostRole(join(dataDir, 'tenants'), dataDir, silentLogger(), { tenantUsers: false }).handlers()[
      'tenant.remove'
    ];
    for (const name of ['../pki', '..', '.', 'acme/../../pki', '/etc', '', 'ACME', 'a'.repeat(64), 42]) {
      await expect(remove({ name }, {} as Envelope), String(name)).rejects.toMatchObject({ code: 'ERR_BAD_NAME' });
    }
    await access(join(dataDir, 'pki', 'agent-key.pem'));
    await access(join(dataDir, 'tenants', 'acme'));
  });
});
