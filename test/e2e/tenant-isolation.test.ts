/**
 * Tenants on one host are apart at the OS level when the host runs as root (as in these tests): each runs
 * as its own system user, owns its directory (0700) and the files it writes, can read neither another
 * tenant's store nor the host's private key, and starts with a minimal environment. Removing a tenant
 * deletes its user, with whatever the tenant left running as it; a user gone missing is made again when
 * the host starts; a tenant new on the host never takes over a user its name had before. A host that is not
 * root says once that isolation is by process only, and its tenants still run. Real main, hosts and tenants.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { Proc } from '../harness/processes.js';
import { within } from '../harness/tunnel-hold.js';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '#common/agent-runtime.js';
import { closedToOthers, deleteUser, passwdEntries, tenantUserName } from '../../agent/host/tenant-isolation.js';
import { TENANT_MAIN } from '../../agent/program-files.js';
import { SHARED_FILES_NOWHERE } from '../../agent/integrations/aws/sdk-environment.js';

const A = 'iso-a',
  B = 'iso-b',
  C = 'iso-c';
/**
 * Where other users cannot reach this checkout's code (e.g. a clone under /root or mktemp -d): no tenant user
 * or non-root host could load it, so only the host's fallback can be checked there. .ci/run opens the way.
 */
const CODE_CLOSED_AT = closedToOthers(TENANT_MAIN);
/** A user and group that exist on any Linux: the non-root host runs as them. */
const NOBODY = 65534;
/** Set for the host only: a tenant must not inherit it. */
const HOST_ONLY_SECRET = 'host-only-secret-value';
let d: Deployment;
let hostDir = '';
/** Processes started as a tenant's user, as a compromised tenant would: killed at the end if still there. */
const strays: ChildProcess[] = [];

const tenantDir = (t: string) => join(hostDir, 'tenants', t);
const pidOf = async (t: string) => (await d.tenant(t))?.pid ?? 0;
/** Real, effective, saved and filesystem uid of a process. */
const uidsOf = (pid: number) =>
  /^Uid:\s+(.*)$/m
    .exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]
    .split(/\s+/)
    .map(Number);
const envOf = (pid: number) =>
  readFileSync(`/proc/${pid}/environ`, 'utf8')
    .split('\0')
    .filter(Boolean)
    .map((kv) => kv.slice(0, kv.indexOf('=')));
const userOf = async (name: string) => (await passwdEntries()).find((e) => e.user === name);
/** Every process whose real uid is `uid`. */
const pidsOf = (uid: number) =>
  readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => {
      try {
        return uidsOf(pid)[0] === uid;
      } catch {
        return false;
      } // gone meanwhile
    });

/** A long-running process of its own as `uid`, detached (its own session): what a compromised tenant leaves behind. */
function strayAs(u: { uid: number; gid: number }): { pid: number; killed: Promise<NodeJS.Signals | null> } {
  const p = spawn('sleep', ['300'], { uid: u.uid, gid: u.gid, cwd: '/', detached: true, stdio: 'ignore' });
  strays.push(p);
  return { pid: p.pid!, killed: new Promise((r) => p.once('exit', (_code, signal) => r(signal))) };
}

async function running(t: string): Promise<number> {
  return (await d.tenantRunning(t, { timeoutMs: 30_000 })).pid!;
}

beforeAll(async () => {
  process.env.PALISADE_API_KEY = HOST_ONLY_SECRET; // the harness hands its environment to the processes it starts
  d = await Deployment.create();
  hostDir = await d.install('host', 'iso-h');
  await d.startAgent('iso-h');
  for (const t of [A, B]) {
    await d.createTenant(t, 'iso-h');
    const w = await d.api('POST', `/tenants/${t}/api/incidents`, { name: `first of ${t}`, type: 'test', severity: 1 });
    if (w.status !== 201) throw new Error(`write to ${t}: ${w.status} ${w.raw}`);
  }
}, 120_000);
afterAll(async () => {
  for (const p of strays) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await d?.stop();
  delete process.env.PALISADE_API_KEY;
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe.runIf(!CODE_CLOSED_AT)('tenants of a host running as root', () => {
  it('run as two different system users, each owning its directory (0700) and the files it wrote', async () => {
    const uids: number[] = [];
    for (const t of [A, B]) {
      const ids = uidsOf(await pidOf(t));
      expect(new Set(ids).size, `${t}: ${ids.join(' ')}`).toBe(1);
      const user = await userOf(tenantUserName(hostDir, t));
      expect(user, `user of ${t}`).toBeDefined();
      expect(ids[0]).toBe(user!.uid);
      expect(ids[0]).not.toBe(0);
      uids.push(ids[0]);
      const dir = statSync(tenantDir(t));
      expect({ mode: (dir.mode & 0o777).toString(8), uid: dir.uid, gid: dir.gid }).toEqual({
        mode: '700',
        uid: user!.uid,
        gid: user!.gid,
      });
      // What the tenant process wrote itself: its LevelDB and its log.
      for (const f of [
        ...readdirSync(join(tenantDir(t), 'store')).map((n) => join('store', n)),
        join('logs', 'tenant.log'),
      ]) {
        expect(statSync(join(tenantDir(t), f)).uid, f).toBe(user!.uid);
      }
    }
    expect(uids[0]).not.toBe(uids[1]);
    const root = statSync(join(hostDir, 'tenants'));
    expect({ mode: (root.mode & 0o777).toString(8), uid: root.uid }).toEqual({ mode: '700', uid: 0 });
  });

  it("a process running as tenant A's user can read neither B's store nor the host's private key (EACCES)", async () => {
    const a = (await userOf(tenantUserName(hostDir, A)))!;
    const targets = [
      join(tenantDir(B), 'store', 'CURRENT'),
      join(tenantDir(B), 'tenant-key.json'),
      join(hostDir, 'pki', 'agent-key.pem'),
      // As a tenant would try it: from its own directory, upwards.
      join('..', B, 'store', 'CURRENT'),
      join('..', '..', 'pki', 'agent-key.pem'),
    ];
    const probe = `const fs = require('fs'); console.log(JSON.stringify(${JSON.stringify(targets)}.map((p) => { try { fs.readFileSync(p); return 'read'; } catch (e) { return e.code; } })))`;
    const r = spawnSync(process.execPath, ['-e', probe], {
      uid: a.uid,
      gid: a.gid,
      cwd: tenantDir(A),
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(targets.map(() => 'EACCES'));
    // Each barrier holds on its own too: B's directory is B's alone, and the key file is root's alone.
    const key = statSync(join(hostDir, 'pki', 'agent-key.pem'));
    expect({ mode: (key.mode & 0o777).toString(8), uid: key.uid }).toEqual({ mode: '600', uid: 0 });
    expect(statSync(tenantDir(B)).uid).not.toBe(a.uid);
  });

  it('a tenant process starts with only the variables a tenant needs', async () => {
    const host = d.agents.get('iso-h')!.proc!.child.pid!;
    expect(readFileSync(`/proc/${host}/environ`, 'utf8')).toContain(`PALISADE_API_KEY=${HOST_ONLY_SECRET}`);
    const allowed = new Set([
      'PATH',
      'PALISADE_LOG_LEVEL',
      'PALISADE_NATIVE_AEAD',
      ...Object.keys(AGENT_ENV),
      ...Object.keys(SHARED_FILES_NOWHERE), // the AWS SDK's files, pointed where none can be
      'NODE_CHANNEL_FD',
      'NODE_CHANNEL_SERIALIZATION_MODE',
    ]); // the last two: Node's fork sets up the IPC channel with them
    const env = envOf(await pidOf(A));
    expect(env.filter((k) => !allowed.has(k))).toEqual([]);
    expect(env).toEqual(expect.arrayContaining(['PATH', ...Object.keys(AGENT_ENV)]));
  });

  it('a host restart keeps its tenants with their users, and makes a missing user again', async () => {
    const userA = tenantUserName(hostDir, A);
    const before = (await userOf(userA))!;
    expect(await d.agents.get('iso-h')!.proc!.stop()).toBe(0);
    expect(await deleteUser(userA)).toBe(true);
    await d.startAgent('iso-h');
    const pid = await running(A);
    const after = (await userOf(userA))!;
    expect(after).toBeDefined();
    expect(uidsOf(pid)[0]).toBe(after.uid);
    expect(statSync(join(tenantDir(A), 'store', 'CURRENT')).uid).toBe(after.uid);
    expect(uidsOf(await running(B))[0]).toBe((await userOf(tenantUserName(hostDir, B)))!.uid);
    const list = await d.api<{ items: { name: string }[] }>('GET', `/tenants/${A}/api/incidents`);
    expect(list.body.items.map((i) => i.name)).toEqual([`first of ${A}`]);
    expect(before.user).toBe(after.user);
  });

  it('tenant remove deletes its user once its process has exited', async () => {
    const user = tenantUserName(hostDir, B);
    const pid = await pidOf(B);
    const r = await d.cli(['tenant', 'remove', B, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((r.json as { removed: string[] }).removed).toContain(`system user ${user}`);
    expect(await userOf(user)).toBeUndefined();
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it("tenant remove kills a process the tenant left running on its own before deleting its user; the name's next tenant runs as a user made anew, alone", async () => {
    const user = tenantUserName(hostDir, A);
    const old = (await userOf(user))!;
    const stray = strayAs(old);
    expect(uidsOf(stray.pid)).toEqual([old.uid, old.uid, old.uid, old.uid]);
    const r = await d.cli(['tenant', 'remove', A, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await within(stray.killed, 10_000, 'the stray process to be killed')).toBe('SIGKILL');
    expect((r.json as { removed: string[] }).removed).toEqual(
      expect.arrayContaining([`processes its user left running (${stray.pid})`, `system user ${user}`]),
    );
    expect(await userOf(user)).toBeUndefined();
    expect(pidsOf(old.uid)).toEqual([]);
    // The same name again: a user of that name made anew, with nothing of the old tenant's running as it or kept.
    const again = await d.cli(['tenant', 'create', A, '--host', 'iso-h', '--json']);
    expect(again.code, again.stdout + again.stderr).toBe(0);
    const pid = await running(A);
    const now = (await userOf(user))!;
    expect(uidsOf(pid)[0]).toBe(now.uid);
    expect(pidsOf(now.uid)).toEqual([pid]);
    expect((await d.api<{ items: unknown[] }>('GET', `/tenants/${A}/api/incidents`)).body.items).toEqual([]);
  });

  it('a tenant new on the host never takes over a user its name left behind (a removal that could not finish): that user is deleted with its processes and made anew', async () => {
    const user = tenantUserName(hostDir, C);
    // What a removal cut short leaves: the user, and a process running as it. (Its comment names the host's
    // directory, so the harness deletes it if this test fails.)
    const made = spawnSync(
      'useradd',
      [
        '--system',
        '--user-group',
        '--no-create-home',
        '--shell',
        '/bin/false',
        '--comment',
        `left over of ${hostDir}`,
        user,
      ],
      { encoding: 'utf8' },
    );
    expect(made.status, made.stderr).toBe(0);
    const stray = strayAs((await userOf(user))!);
    const r = await d.cli(['tenant', 'create', C, '--host', 'iso-h', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await within(stray.killed, 10_000, 'the stray process to be killed')).toBe('SIGKILL');
    const now = (await userOf(user))!;
    expect(now.comment).toBe(`palisade tenant of ${hostDir}`); // the host's own, not the one left over
    const pid = await running(C);
    expect(uidsOf(pid)[0]).toBe(now.uid);
    expect(pidsOf(now.uid)).toEqual([pid]);
    expect(readFileSync(d.agentLog('iso-h'), 'utf8')).toContain(
      'a user of an earlier tenant of this name was still there',
    );
  });
});

describe.runIf(CODE_CLOSED_AT)('a host whose code other users cannot read', () => {
  it('runs its tenants as its own user and says why, naming the closed directory', async () => {
    expect(uidsOf(await pidOf(A))).toEqual([0, 0, 0, 0]);
    const lines = readFileSync(d.agentLog('iso-h'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('tenant isolation is by process only'));
    expect(lines).toHaveLength(1);
    expect((JSON.parse(lines[0]) as { reason: string }).reason).toContain(`${CODE_CLOSED_AT} is closed to other users`);
  });
});

describe.runIf(!CODE_CLOSED_AT)('a host that is not root', () => {
  it('says once that isolation is by process only, and its tenants run as its own user', async () => {
    const dir = await d.install('host', 'iso-nr');
    chmodSync(d.dir, 0o711); // the test's directory: passable for the host's user
    chownTree(dir, NOBODY);
    const a = d.agents.get('iso-nr')!;
    a.proc = d.track(
      new Proc('agent iso-nr', ['agent', 'start', '--dir', dir], AGENT_ENV, AGENT_NODE_FLAGS, {
        uid: NOBODY,
        gid: NOBODY,
      }),
    );
    await a.proc.waitFor(/connected to/);
    const r = await d.cli(['tenant', 'create', 'iso-nr-t', '--host', 'iso-nr', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(uidsOf(await running('iso-nr-t'))).toEqual([NOBODY, NOBODY, NOBODY, NOBODY]);
    const lines = readFileSync(d.agentLog('iso-nr'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('tenant isolation is by process only'));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0])).toMatchObject({
      reason: expect.stringContaining('the host agent runs neither as root nor with') as string,
    });
    expect((await passwdEntries()).filter((e) => e.comment.includes(dir))).toEqual([]);
  });
});

function chownTree(path: string, id: number): void {
  chownSync(path, id, id);
  if (!statSync(path).isDirectory()) return;
  for (const e of readdirSync(path)) chownTree(join(path, e), id);
}
