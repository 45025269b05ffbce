/**
 * The AWS list commands answer one page at a time (agent/integrations/aws/commands.ts): a default page size
 * when the caller gives none, `maxResults` and `nextToken` in the args, the next page's token in the result,
 * and no answer larger than MAX_RESULT_BYTES (refused, not cut). Against the AWS fake, which pages as AWS does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpStatusOf } from '#common/error-codes.js';
import { DEFAULT_PAGE_SIZE } from '../../agent/integrations/aws/commands.js';
import { runAwsCommand } from '../../agent/integrations/aws/run.js';
import { MAX_RESULT_BYTES } from '../../agent/integrations/call-limits.js';
import { allowLocalTargets } from '../../agent/integrations/target-guard.js';
import { FakeAws, type FakeIdentity } from '../harness/aws-fake.js';
import { isolateAwsEnv, restoreAwsEnv } from '../harness/aws-env.js';

let fake: FakeAws;
let soc: FakeIdentity;

beforeAll(async () => {
  isolateAwsEnv();
  fake = new FakeAws();
  await fake.start();
  allowLocalTargets([`127.0.0.1:${fake.port}`]);
  soc = fake.addIdentity({
    accessKeyId: 'AKIASOCFAKE000000002',
    secretAccessKey: 'soc-secret-paging-0123456789',
    arn: 'arn:aws:iam::444455556666:user/soc',
    account: '444455556666',
  });
});
afterAll(async () => {
  await fake.close();
  allowLocalTargets([]);
  restoreAwsEnv();
});

const run = (command: string, args: Record<string, unknown> = {}) =>
  runAwsCommand({
    tenant: 'acme',
    externalId: 'palisade-acme-0123456789abcdef0123456789abcdef',
    command,
    args,
    connection: {
      region: 'eu-west-1',
      accessKeyId: soc.accessKeyId,
      secret: soc.secretAccessKey,
      endpointUrl: fake.url,
      stsEndpointUrl: fake.url,
    },
  });
const failure = async (p: Promise<unknown>) => {
  const e = (await p.then(
    () => undefined,
    (err: unknown) => err,
  )) as (Error & { code: string; category: string; field?: string }) | undefined;
  if (!e) throw new Error('expected a failure');
  return {
    code: e.code,
    field: e.field,
    status: httpStatusOf(e as Parameters<typeof httpStatusOf>[0]),
    message: e.message,
  };
};
const s3Params = () => Object.fromEntries(new URL(fake.of('s3').at(-1)!.path, 'http://s3').searchParams);

/** [command, the result's list, what the request called the page size, how to read it from the last request] */
const LISTS: [string, string, () => string | undefined][] = [
  ['ec2.describe-instances', 'instances', () => fake.of('DescribeInstances').at(-1)?.form.MaxResults],
  ['iam.list-users', 'users', () => fake.of('ListUsers').at(-1)?.form.MaxItems],
  ['s3.list-buckets', 'buckets', () => s3Params()['max-buckets']],
];

describe('AWS list commands page', () => {
  it('ask for a default page, return its nextToken, and follow a nextToken to the end', async () => {
    Object.assign(fake.counts, { buckets: 150, instances: 150, users: 150 });
    for (const [command, list, pageSize] of LISTS) {
      const first = (await run(command)).result as Record<string, unknown[]> & { nextToken?: string };
      expect(pageSize(), command).toBe(String(DEFAULT_PAGE_SIZE));
      expect(first[list], command).toHaveLength(DEFAULT_PAGE_SIZE);
      expect(first.nextToken, command).toEqual(expect.any(String));
      const rest = (await run(command, { nextToken: first.nextToken, maxResults: 60 })).result as typeof first;
      expect(pageSize(), command).toBe('60');
      expect(rest[list], command).toHaveLength(50);
      expect(rest.nextToken, `${command}: the last page has no nextToken`).toBeUndefined();
    }
  });

  it('ec2.describe-instances by ids sends no MaxResults, and refuses maxResults with ids before sending', async () => {
    const ids = ['i-0123456789abcdef0'];
    await run('ec2.describe-instances', { instanceIds: ids });
    const sent = fake.of('DescribeInstances').at(-1)!.form;
    expect(sent['InstanceId.1']).toBe(ids[0]);
    expect(sent.MaxResults).toBeUndefined();
    const before = fake.requests.length;
    const r = await failure(run('ec2.describe-instances', { instanceIds: ids, maxResults: 10 }));
    expect(r).toMatchObject({ code: 'ERR_AWS_ARGS', field: 'args.maxResults', status: 400 });
    expect(r.message).toContain('cannot go with instanceIds');
    expect(fake.requests.length, 'nothing was sent').toBe(before);
  });

  it('by instanceIds, an answer too large says to ask for fewer ids (maxResults is refused there); ids are capped', async () => {
    fake.counts.instances = 5_000; // the fake answers every instance whatever the ids: a stand-in for large ones
    const one = ['i-0123456789abcdef0'];
    const r = await failure(run('ec2.describe-instances', { instanceIds: one }));
    expect(r).toMatchObject({ code: 'ERR_AWS_RESULT_TOO_LARGE', field: 'args.instanceIds', status: 400 });
    expect(r.message).toContain('fewer instanceIds');
    expect(r.message).not.toContain('maxResults');
    const ids = Array.from({ length: DEFAULT_PAGE_SIZE + 1 }, (_, i) => `i-${String(i).padStart(17, '0')}`);
    const before = fake.requests.length;
    const many = await failure(run('ec2.describe-instances', { instanceIds: ids }));
    expect(many).toMatchObject({ code: 'ERR_AWS_ARGS', status: 400 });
    expect(many.message).toContain('instanceIds');
    expect(fake.requests.length, 'nothing was sent').toBe(before);
    fake.counts.instances = 1;
  });

  it('refuses an answer over MAX_RESULT_BYTES of JSON, saying to ask for smaller pages; a smaller page passes', async () => {
    fake.counts.buckets = 10_000;
    const r = await failure(run('s3.list-buckets', { maxResults: 10_000 }));
    expect(r).toMatchObject({ code: 'ERR_AWS_RESULT_TOO_LARGE', field: 'args.maxResults', status: 400 });
    expect(r.message).toMatch(new RegExp(`answered \\d+ bytes of JSON, more than the ${MAX_RESULT_BYTES}`));
    expect(r.message).toContain('args.maxResults');
    const page = (await run('s3.list-buckets', { maxResults: 1000 })).result as {
      buckets: unknown[];
      nextToken: string;
    };
    expect(page.buckets).toHaveLength(1000);
    expect(page.nextToken).toBe('1000');
  });
});
