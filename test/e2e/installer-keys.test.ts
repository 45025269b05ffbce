/**
 * Enrolment keys can be listed and revoked, with real processes: `installer list` shows each bundle's
 * one-time key with its status (never the key itself); `installer revoke ID` makes that bundle enrol
 * nothing (ERR_ENROL_KEY_REVOKED) while another still works; a used key, an unknown id or a bad filter is
 * refused with one line; a key revoked twice is said to be so already (exit 0, nothing changed). Removing a
 * host or an engine voids any unused key made for its name, so a leftover bundle cannot bring the removed agent back.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { runCli } from '../harness/processes.js';

let d: Deployment;
const ids = new Map<string, string>();

interface KeyRow {
  id: string;
  kind: string;
  name: string;
  tenant: string | null;
  status: string;
  createdAt: string;
  createdBy: string;
  expiresAt: string;
  usedBy: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
}
interface CliError {
  error: { code: string; message: string };
}

const keys = async (...args: string[]) => (await d.cli(['installer', 'list', '--json', ...args])).json as KeyRow[];
const keyOf = async (label: string) => (await keys()).find((k) => k.id === ids.get(label));

/** Creates a bundle for `name` and remembers its key id under `label`; returns the bundle's path. */
async function bundle(label: string, kind: 'host' | 'engine', name: string, tenant?: string): Promise<string> {
  const out = join(d.dir, `${label}.tar.gz`);
  const c = await d.cli([
    'installer',
    'create',
    '--kind',
    kind,
    '--name',
    name,
    ...(tenant ? ['--tenant', tenant] : []),
    '--out',
    out,
    '--json',
  ]);
  if (c.code !== 0) throw new Error(c.stdout + c.stderr);
  ids.set(label, (c.json as { enrolKeyId: string }).enrolKeyId);
  return out;
}

/**
 * Installs a bundle into its own directory and runs `agent start`, which must be refused (a started agent would run
 * into the timeout).
 */
async function enrolRefused(label: string, path: string): Promise<{ code: number; stdout: string }> {
  const dir = join(d.dir, `agent-${label}`);
  const i = await runCli(['agent', 'install', '--bundle', path, '--dir', dir, '--json']);
  if (i.code !== 0) throw new Error(i.stdout + i.stderr);
  return runCli(['agent', 'start', '--dir', dir, '--json'], {}, 30_000);
}

beforeAll(async () => {
  d = await Deployment.create();
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('installer list and revoke', () => {
  it("lists each bundle's key, newest first, with its status and never the key itself", async () => {
    const k1 = await bundle('k1', 'host', 'k1');
    await bundle('k2', 'host', 'k2');
    const list = await keys();
    expect(list.map((k) => k.id)).toEqual([ids.get('k2'), ids.get('k1')]);
    expect(list[1]).toMatchObject({
      kind: 'host',
      name: 'k1',
      tenant: null,
      status: 'unused',
      usedBy: null,
      revokedAt: null,
    });
    expect(Date.parse(list[1].expiresAt)).toBeGreaterThan(Date.now());
    expect(list[1].createdBy).toMatch(/^usr_/);
    // The secret half of the key is in the bundle only.
    d.agents.set('k1', { dir: join(d.dir, 'agent-k1') });
    await runCli(['agent', 'install', '--bundle', k1, '--dir', d.agents.get('k1')!.dir]);
    const secret = (await readFile(join(d.agents.get('k1')!.dir, 'enrol-key'), 'utf8')).trim().split('.')[1];
    const text = await d.cli(['installer', 'list']);
    expect(text.stdout).toMatch(/^ID\s+KIND\s+NAME\s+TENANT\s+STATUS/);
    expect(text.stdout + JSON.stringify(list)).not.toContain(secret);
  });

  it('a revoked key enrols nothing (ERR_ENROL_KEY_REVOKED, audited); the other bundle still enrols', async () => {
    const r = await d.cli(['installer', 'revoke', ids.get('k1')!, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json).toMatchObject({
      id: ids.get('k1'),
      status: 'revoked',
      revokedBy: expect.stringMatching(/^usr_/),
      alreadyRevoked: false,
    });
    const refused = await runCli(['agent', 'start', '--dir', d.agents.get('k1')!.dir, '--json'], {}, 30_000);
    expect(refused.code).toBe(2);
    expect((JSON.parse(refused.stdout) as CliError).error.code).toBe('ERR_ENROL_KEY_REVOKED');
    const audit = (
      await d.api<{ action: string; target: string; outcome: string; detail?: { code?: string; keyId?: string } }[]>(
        'GET',
        '/audit?action=enrol-key.revoke',
      )
    ).body;
    expect(audit.find((a) => a.detail?.keyId === ids.get('k1'))).toMatchObject({ target: 'host:k1', outcome: 'ok' });

    const k2dir = join(d.dir, 'agent-k2');
    expect((await runCli(['agent', 'install', '--bundle', join(d.dir, 'k2.tar.gz'), '--dir', k2dir])).code).toBe(0);
    d.agents.set('k2', { dir: k2dir });
    await d.startAgent('k2');
    expect(await keyOf('k1')).toMatchObject({ status: 'revoked' });
    expect(await keyOf('k2')).toMatchObject({ status: 'used', usedBy: expect.stringMatching(/^hst_/) });
    const unused = (await keys('--status', 'unused')).map((k) => k.id);
    expect(unused).not.toContain(ids.get('k1'));
    expect(unused).not.toContain(ids.get('k2'));
  });

  it('refuses a used key (409), an unknown id (404) and a bad filter (400), with one line; revoking twice answers the same', async () => {
    const used = await d.cli(['installer', 'revoke', ids.get('k2')!, '--json']);
    expect(used.code).toBe(2);
    expect((used.json as CliError).error.code).toBe('ERR_ENROL_KEY_USED');
    const unknown = await d.cli(['installer', 'revoke', 'nosuchkey123']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^palisade: no enrolment key "nosuchkey123".* \(ERR_ENROL_KEY_NOT_FOUND\)\n$/);
    const bad = await d.api<CliError>('GET', '/installers?status=lost');
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toEqual(expect.any(String));
    expect((await d.cli(['installer', 'list', '--status', 'lost'])).code).toBe(2);
    const again = await d.api<KeyRow>('DELETE', `/installers/${ids.get('k1')}`);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('revoked');
  });

  it('revoking a revoked key says it was already revoked and when, exits 0, and changes or audits nothing', async () => {
    const revokes = async () =>
      (await d.api<{ detail?: { keyId?: string } }[]>('GET', '/audit?action=enrol-key.revoke')).body.filter(
        (a) => a.detail?.keyId === ids.get('k1'),
      ).length;
    const before = await keyOf('k1');
    expect(before).toMatchObject({ status: 'revoked', revokedAt: expect.any(String) });
    expect(await revokes()).toBe(1);
    const text = await d.cli(['installer', 'revoke', ids.get('k1')!]);
    expect(text.code, text.stdout + text.stderr).toBe(0);
    expect(text.stdout).toBe(
      `enrolment key ${ids.get('k1')} (host "k1") was already revoked at ${before!.revokedAt} by ${before!.revokedBy};` +
        ' nothing changed\n',
    );
    expect(text.stdout).not.toMatch(/\) revoked/);
    const json = await d.cli(['installer', 'revoke', ids.get('k1')!, '--json']);
    expect(json.code).toBe(0);
    expect(json.json).toMatchObject({ id: ids.get('k1'), alreadyRevoked: true, revokedAt: before!.revokedAt });
    expect(await keyOf('k1')).toEqual(before);
    expect(await revokes()).toBe(1);
  });

  it("removing a host voids its name's unused key: a leftover bundle cannot bring the removed host back", async () => {
    await bundle('h3a', 'host', 'h3');
    const leftover = await bundle('h3b', 'host', 'h3');
    d.agents.set('h3', { dir: join(d.dir, 'agent-h3a') });
    expect(
      (await runCli(['agent', 'install', '--bundle', join(d.dir, 'h3a.tar.gz'), '--dir', d.agents.get('h3')!.dir]))
        .code,
    ).toBe(0);
    await d.startAgent('h3');
    expect(await keyOf('h3b')).toMatchObject({ status: 'unused' });
    const r = await d.cli(['hosts', 'remove', 'h3', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await d.agents.get('h3')!.proc!.waitExit()).toBe(2); // told it was revoked, it stops for good
    expect(await keyOf('h3b')).toMatchObject({ status: 'revoked' });
    const audit = (
      await d.api<{ target: string; detail?: { voidedKeys?: string[] } }[]>('GET', '/audit?action=agent.revoke')
    ).body;
    expect(audit.find((a) => a.target === 'host:h3')?.detail?.voidedKeys).toEqual([ids.get('h3b')]);
    const back = await enrolRefused('h3b', leftover);
    expect(back.code).toBe(2);
    expect((JSON.parse(back.stdout) as CliError).error.code).toBe('ERR_ENROL_KEY_REVOKED');
  });

  it("removing an engine voids its name's unused key too", async () => {
    await d.createTenant('kt', 'k2');
    await bundle('e1a', 'engine', 'e1', 'kt');
    const leftover = await bundle('e1b', 'engine', 'e1', 'kt');
    d.agents.set('e1', { dir: join(d.dir, 'agent-e1a') });
    expect(
      (await runCli(['agent', 'install', '--bundle', join(d.dir, 'e1a.tar.gz'), '--dir', d.agents.get('e1')!.dir]))
        .code,
    ).toBe(0);
    await d.startAgent('e1');
    expect((await d.cli(['engines', 'remove', 'e1', '--json'])).code).toBe(0);
    expect(await d.agents.get('e1')!.proc!.waitExit()).toBe(2);
    expect(await keyOf('e1b')).toMatchObject({ status: 'revoked', tenant: 'kt' });
    const back = await enrolRefused('e1b', leftover);
    expect(back.code).toBe(2);
    expect((JSON.parse(back.stdout) as CliError).error.code).toBe('ERR_ENROL_KEY_REVOKED');
  });
});
