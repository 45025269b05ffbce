/**
 * The content CLI end to end with real processes (hosts h1 and h2, three labelled tenants): an item
 * created, updated, published, shared to every tenant and reported with --json and as text; a user error
 * exits 2 with one line. Split from content.test.ts (the library and its propagation), whose state it
 * does not share.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import { startTenants, type Item, type Status, type Version } from './content-fixtures.js';

/** An automation rule, as publishing checks it (docs/playbooks.md#automation-rules); its type no incident here has. */
const RULE_V1 =
  'name: Page on high\nactive: true\nwhen: {event: incident.created, type: page-test, match: [{field: severity, op: gte, value: 3}]}\nrun: {playbook: page}';
const RULE_V2 = RULE_V1.replace('value: 3', 'value: 2');

let d: Deployment;

beforeAll(async () => {
  d = await Deployment.create();
  await startTenants(d);
}, 180_000);
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('CLI', () => {
  it('creates, updates, publishes, shares and reports with --json; user errors exit 2 with one line', async () => {
    const file = join(d.dir, 'rule.yaml');
    await writeFile(file, RULE_V1);
    const c = await d.cli([
      'content',
      'create',
      '--type',
      'automation-rule',
      '--name',
      'Page on high',
      '--body-file',
      file,
      '--labels',
      'all',
      '--json',
    ]);
    expect(c.code, c.stdout + c.stderr).toBe(0);
    const id = (c.json as Item).id;
    expect(c.json).toMatchObject({ version: 1, labels: ['all'] });
    expect((await d.cli(['content', 'update', id, '--body', RULE_V2, '--json'])).json).toMatchObject({
      version: 2,
    });
    expect((await d.cli(['content', 'publish', id, '--json'])).json).toMatchObject({ published: 2 });
    const sh = await d.cli(['content', 'share', id, '--json']);
    expect(sh.code, sh.stdout + sh.stderr).toBe(0);
    const st = sh.json as Status;
    expect(st.rollup).toBe('Successful');
    expect(st.tenants.map((t) => [t.tenant, t.state, t.version]).sort()).toEqual([
      ['apac-a', 'shared', 2],
      ['emea-a', 'shared', 2],
      ['emea-b', 'shared', 2],
    ]);
    expect(((await d.cli(['content', 'status', id, '--json'])).json as Status).rollup).toBe('Successful');
    const list = (await d.cli(['content', 'list', '--type', 'automation-rule', '--json'])).json as Item[];
    expect(list.map((i) => i.id)).toEqual([id]);
    const show = (await d.cli(['content', 'show', id, '--json'])).json as { versions: Version[] };
    expect(show.versions.map((v) => v.body)).toEqual([RULE_V1, RULE_V2]);
    const text = await d.cli(['content', 'status', id]);
    expect(text.stdout).toContain('Successful');
    expect(((await d.cli(['content', 'unshare', id, '--json'])).json as Status).rollup).toBe('Not Shared');

    const bad = await d.cli(['content', 'create', '--type', 'nonsense', '--name', 'x', '--body', 'y']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('type');
    const missing = await d.cli(['content', 'show', 'cnt_000000000000', '--json']);
    expect(missing.code).toBe(2);
    expect((missing.json as ErrorBody).error.code).toBe('ERR_CONTENT_NOT_FOUND');
  });
});
