/**
 * Backup and restore of main with real processes (main/backup/): a backup taken while a host and its tenant are
 * connected, restored into a new data directory, and main started there on the same port: the same host reconnects
 * with its certificate (no enrolment), its tenant answers a relayed request, and the content library, users and API
 * keys are as they were at the backup — what came after it is not. Bad input (passphrase file, existing --out,
 * wrong passphrase, a flipped byte, a non-empty target) exits 2 with one line and changes nothing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { until } from '../harness/processes.js';
import { createIncident, tenantAnswering, allIncidents } from '../harness/tenant-api.js';

const HOST = 'bk-host';
const TENANT = 'bk-tenant';
const PASSPHRASE = 'backup passphrase for the e2e test';

interface HostView {
  id: string;
  name: string;
  status: string;
  fingerprint: string;
  connectedAt: string | null;
}
interface BackupJson {
  out: string;
  from: string;
  files: string[];
  records: Record<string, number>;
  bytes: number;
}
interface AuditEntry {
  actor: string;
  action: string;
  target?: string;
  outcome: string;
}

let d: Deployment;
let pass: string;
let backup: string;
let restored: string;
let analystKey: string;
let itemId: string;

const errorOf = (json: unknown) => (json as { error: { code: string } }).error.code;
const host = async () => (await d.api<HostView[]>('GET', '/hosts')).body.find((h) => h.name === HOST);
const modeOf = async (p: string) => (await stat(p)).mode & 0o777;

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', HOST);
  await d.startAgent(HOST);
  await d.createTenant(TENANT, HOST);
  await createIncident(d, TENANT, { name: 'before the backup' });
  const item = await d.api<{ id: string }>('POST', '/content', {
    type: 'playbook',
    name: 'Triage',
    body: 'steps: [a]',
  });
  expect(item.status).toBe(201);
  itemId = item.body.id;
  const analyst = await d.createUser({ name: 'backup-analyst', roles: ['analyst'] });
  analystKey = await d.createKey(analyst.id);
  pass = join(d.dir, 'passphrase');
  await writeFile(pass, `${PASSPHRASE}\n`, { mode: 0o600 });
  backup = join(d.dir, 'main.backup');
  restored = join(d.dir, 'main-restored');
}, 180_000);
afterAll(async () => {
  await d?.stop();
});
afterEach(async (ctx) => {
  if (ctx.task.result?.state === 'fail')
    console.error(d.logs(), await readFile(join(restored, 'logs', 'main.log'), 'utf8').catch(() => ''));
});

describe('main backup', () => {
  it('refuses a missing or short passphrase file, a bad --out and a directory without main: exit 2', async () => {
    const short = join(d.dir, 'short');
    await writeFile(short, 'too short\n');
    const taken = join(d.dir, 'taken');
    await writeFile(taken, 'keep me');
    const cases: [string[], string][] = [
      [['--out', backup, '--passphrase-file', join(d.dir, 'nope')], 'ERR_BACKUP_PASSPHRASE_FILE'],
      [['--out', backup, '--passphrase-file', short], 'ERR_BACKUP_PASSPHRASE_FILE'],
      [['--out', taken, '--passphrase-file', pass], 'ERR_BACKUP_OUT_EXISTS'],
      [['--out', join(d.dir, 'no-such-dir', 'b'), '--passphrase-file', pass], 'ERR_BACKUP_OUT_WRITE'],
    ];
    for (const [args, code] of cases) {
      const r = await d.cli(['main', 'backup', '--data', d.mainDir, ...args, '--json']);
      expect(r.code, r.stderr).toBe(2);
      expect(errorOf(r.json)).toBe(code);
    }
    const r = await d.cli(['main', 'backup', '--data', d.dir, '--out', backup, '--passphrase-file', pass]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('ERR_MAIN_NOT_INITIALISED');
    expect(await readFile(taken, 'utf8')).toBe('keep me');
    expect((await readdir(d.dir)).filter((n) => n.includes('main.backup'))).toEqual([]);
  });

  it('backs up the running main: a 0600 file, counts per kind, progress on stderr, an audit entry', async () => {
    const r = await d.cli([
      'main',
      'backup',
      '--data',
      d.mainDir,
      '--out',
      backup,
      '--passphrase-file',
      pass,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json as BackupJson;
    expect(j.from).toBe('running');
    expect(j.files).toEqual(expect.arrayContaining(['main.json', 'pki/ca-key.pem', 'pki/signing-key.json']));
    expect(j.records).toMatchObject({ agents: 1, tenants: 1, content: 1, users: 2, 'api-keys': 2 });
    expect(j.bytes).toBe((await stat(backup)).size);
    expect(await modeOf(backup)).toBe(0o600);
    expect(r.stderr).toMatch(/backup: taking a snapshot from the running main/);
    expect(await readFile(backup, 'latin1')).not.toContain('BEGIN');
    const audit = await d.api<AuditEntry[]>('GET', '/audit?action=main.backup');
    expect(audit.body).toEqual([expect.objectContaining({ action: 'main.backup', target: backup, outcome: 'ok' })]);
    expect(audit.body[0].actor).toMatch(/^os:/);
    expect(await readFile(d.mainLog, 'utf8')).not.toContain(PASSPHRASE);
    // After the backup: must not come back with it.
    await d.createUser({ name: 'after-backup', roles: ['analyst'] });
  });
});

describe('main restore', () => {
  it('refuses a wrong passphrase, a flipped byte and a non-empty target: exit 2, nothing written', async () => {
    const wrong = join(d.dir, 'wrong');
    await writeFile(wrong, 'not the passphrase at all\n');
    const flipped = join(d.dir, 'flipped.backup');
    const bytes = await readFile(backup);
    bytes[Math.floor(bytes.length / 2)] ^= 0x01;
    await writeFile(flipped, bytes);
    const before = await readdir(d.dir);
    const cases: [string[], string][] = [
      [['--in', backup, '--data', restored, '--passphrase-file', wrong], 'ERR_BACKUP_PASSPHRASE_WRONG'],
      [['--in', flipped, '--data', restored, '--passphrase-file', pass], 'ERR_BACKUP_DAMAGED'],
      [['--in', backup, '--data', d.mainDir, '--passphrase-file', pass], 'ERR_RESTORE_TARGET_NOT_EMPTY'],
      [['--in', join(d.dir, 'none'), '--data', join(d.dir, 'fresh'), '--passphrase-file', pass], 'ERR_BACKUP_IN_READ'],
    ];
    for (const [args, code] of cases) {
      const r = await d.cli(['main', 'restore', ...args]);
      expect(r.code, r.stderr).toBe(2);
      expect(
        r.stderr
          .trim()
          .split('\n')
          .filter((l) => l.startsWith('palisade:')),
      ).toEqual([expect.stringContaining(code)]);
    }
    expect(await readdir(d.dir)).toEqual(before);
  });

  it('restores into a new directory that main then serves: the same host reconnects without enrolling', async () => {
    const hostBefore = (await host())!;
    const agentCert = join(d.agents.get(HOST)!.dir, 'pki', 'agent.pem');
    const certBefore = await readFile(agentCert, 'utf8');
    const r = await d.cli(['main', 'restore', '--in', backup, '--data', restored, '--passphrase-file', pass, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect((r.json as BackupJson).records).toMatchObject({ agents: 1, users: 2, 'api-keys': 2 });
    expect(await modeOf(restored)).toBe(0o700);
    expect(await modeOf(join(restored, 'pki', 'ca-key.pem'))).toBe(0o600);
    expect(await modeOf(join(restored, 'pki', 'server-key.pem'))).toBe(0o600);

    const agent = d.agents.get(HOST)!.proc!;
    const count = (what: string) => agent.output.split(what).length - 1;
    const connections = () => count('connected to');
    const seen = connections();
    const enrolments = count('enrolled as');
    expect(await d.main!.stop('SIGTERM')).toBe(0);
    // With main stopped, the command reads the directory itself.
    const offline = join(d.dir, 'stopped.backup');
    const b = await d.cli([
      'main',
      'backup',
      '--data',
      d.mainDir,
      '--out',
      offline,
      '--passphrase-file',
      pass,
      '--json',
    ]);
    expect(b.code, b.stderr).toBe(0);
    expect(b.json).toMatchObject({ from: 'stopped', records: { agents: 1, users: 3 } });
    await d.startMain(restored);
    await until('host reconnected to the restored main', () => connections() > seen, 60_000, 200);
    const hostAfter = await until('host online', async () =>
      (await host())?.status === 'online' ? host() : undefined,
    );
    expect(hostAfter).toMatchObject({ id: hostBefore.id, fingerprint: hostBefore.fingerprint });
    expect(hostAfter!.connectedAt).not.toBe(hostBefore.connectedAt);
    expect(count('enrolled as')).toBe(enrolments);
    expect(await readFile(agentCert, 'utf8')).toBe(certBefore);

    await tenantAnswering(d, TENANT);
    expect((await allIncidents(d, TENANT)).map((i) => i.name)).toContain('before the backup');
    expect((await d.api<{ id: string }>('GET', `/content/${itemId}`)).status).toBe(200);
    const users = (await d.api<{ name: string }[]>('GET', '/users')).body.map((u) => u.name);
    expect(users).toEqual(expect.arrayContaining(['admin', 'backup-analyst']));
    expect(users).not.toContain('after-backup');
    expect((await d.api('GET', '/hosts', undefined, { key: analystKey })).status).toBe(200);
    const audit = (await d.api<AuditEntry[]>('GET', '/audit')).body.map((a) => a.action);
    expect(audit).toContain('main.restore');
  });
});
