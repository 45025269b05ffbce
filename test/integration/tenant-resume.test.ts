/**
 * A tenant stopped for a move that then fails is started again where it was (TenantSupervisor.resume). While
 * it was stopped, another process may have taken its port — another host's tenant on the same machine did
 * so in a full test run — and the tenant must then move to a free port rather than fail to start.
 * Real tenant processes (dist/agent/tenant/tenant-main.js) and real sockets, in one test process.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { silentLogger } from '#common/logging.js';
import { TenantSupervisor } from '../../agent/host/tenant-supervisor.js';

const MAIN_KEY = Buffer.from(nacl.sign.keyPair().publicKey).toString('base64');
const plenty = async () => ({ memAvailable: 64 * 2 ** 30, diskFree: 64 * 2 ** 30 });

describe('resuming a suspended tenant', () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  it('starts it on a free port when its own was taken while it was stopped', async () => {
    const root = await mkdtemp(join(tmpdir(), 'palisade-resume-'));
    cleanup.push(() => rm(root, { recursive: true, force: true }));
    const sup = new TenantSupervisor(root, silentLogger(), plenty);
    cleanup.push(() => sup.stopAll());
    const first = await sup.create('resumed', MAIN_KEY);
    expect(first.state).toBe('running');

    await sup.suspend('resumed');
    const squatter: Server = createServer();
    await new Promise<void>((resolve, reject) => {
      squatter.once('error', reject);
      squatter.listen(first.port, '127.0.0.1', resolve);
    });
    cleanup.push(() => new Promise((resolve) => squatter.close(resolve)));

    const again = await sup.resume('resumed');
    expect(again.state).toBe('running');
    expect(again.port).not.toBe(first.port);
    expect(sup.list().find((t) => t.name === 'resumed')).toMatchObject({ state: 'running', port: again.port });
  });
});
