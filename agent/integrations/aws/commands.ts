/**
 * The commands of the built-in `aws` integration, as one table: each command's name, argument schema
 * (JSON Schema), whether it only reads, the IAM action it needs (for messages), and how it runs with SDK
 * clients. Every command takes `roleArn`, which overrides the connection's role for that one call.
 * Results are plain JSON (dates as ISO strings, no SDK metadata), so they can be stored and audited as
 * they are. Every list command answers one page: `maxResults` (default DEFAULT_PAGE_SIZE) and `nextToken` in
 * its args, the next page's `nextToken` in its result; run.ts caps the JSON of any answer (MAX_RESULT_BYTES).
 * Not credentials or error translation: run.ts resolves those around `run`.
 */
import { DescribeInstancesCommand, EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { IAMClient, ListUsersCommand } from '@aws-sdk/client-iam';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { BadParameterError } from '#common/errors.js';
import type { ClientSettings } from './client-config.js';
import { ROLE_ARN } from './connection.js';

export type AwsService = 'sts' | 's3' | 'ec2' | 'iam';

/** What a command's `run` gets: settings for its service's client and the call's deadline. */
export interface CommandContext {
  settings: ClientSettings;
  abortSignal: AbortSignal;
}

export interface AwsCommand {
  readonly name: string;
  readonly description: string;
  readonly readOnly: boolean;
  readonly service: AwsService;
  /** The IAM action the identity needs, named when AWS denies it. */
  readonly action: string;
  readonly args: Readonly<Record<string, unknown>>;
  /** What the schema cannot say of the args (a combination AWS refuses); throws ERR_AWS_ARGS. */
  checkArgs?(args: Record<string, unknown>): void;
  run(ctx: CommandContext, args: Record<string, unknown>): Promise<unknown>;
}

/**
 * Items per page when the caller gives no maxResults: without one, S3 answers every bucket (10 000 with a raised
 * quota) and EC2 every instance of the region in one answer. 100 is IAM's own default and keeps a page of EC2
 * instances (about 400 bytes of JSON each) near 40 KiB, far under MAX_RESULT_BYTES; callers follow nextToken.
 */
export const DEFAULT_PAGE_SIZE = 100;

/** The paging args of a list command: at most `max` items a page (AWS's own bound), from `min`. */
const pageArgs = (min: number, max: number) => ({
  maxResults: { type: 'integer', minimum: min, maximum: max, description: `Items per page (${DEFAULT_PAGE_SIZE}).` },
  nextToken: { type: 'string', minLength: 1, maxLength: 4096, description: "The previous page's nextToken." },
});

const roleArn = { type: 'string', pattern: ROLE_ARN.source, description: "Overrides the connection's role." };
const argsSchema = (properties: Record<string, unknown> = {}): Record<string, unknown> =>
  Object.freeze({ type: 'object', additionalProperties: false, properties: { roleArn, ...properties } });
const iso = (d: Date | undefined): string | undefined => d?.toISOString();

const getCallerIdentity: AwsCommand = {
  name: 'sts.get-caller-identity',
  description: 'The account, ARN and user id the call is made as (the connection test).',
  readOnly: true,
  service: 'sts',
  action: 'sts:GetCallerIdentity',
  args: argsSchema(),
  async run({ settings, abortSignal }) {
    const out = await new STSClient(settings).send(new GetCallerIdentityCommand({}), { abortSignal });
    return { account: out.Account, arn: out.Arn, userId: out.UserId };
  },
};

const listBuckets: AwsCommand = {
  name: 's3.list-buckets',
  description: "The account's S3 buckets.",
  readOnly: true,
  service: 's3',
  action: 's3:ListAllMyBuckets',
  args: argsSchema(pageArgs(1, 10_000)),
  async run({ settings, abortSignal }, args) {
    // Path-style: a custom endpoint (a fake, PrivateLink's bucket.vpce-… form aside) is addressed as given.
    const s3 = new S3Client({ ...settings, forcePathStyle: settings.endpoint !== undefined });
    const out = await s3.send(
      new ListBucketsCommand({
        MaxBuckets: (args.maxResults as number | undefined) ?? DEFAULT_PAGE_SIZE,
        ContinuationToken: args.nextToken as string | undefined,
      }),
      { abortSignal },
    );
    return {
      buckets: (out.Buckets ?? []).map((b) => ({
        name: b.Name,
        creationDate: iso(b.CreationDate),
        region: b.BucketRegion,
      })),
      owner: out.Owner ? { id: out.Owner.ID, displayName: out.Owner.DisplayName } : undefined,
      nextToken: out.ContinuationToken,
    };
  },
};

const describeInstances: AwsCommand = {
  name: 'ec2.describe-instances',
  description: 'EC2 instances of the region, optionally by id or filters (e.g. tag:Name, instance-state-name).',
  readOnly: true,
  service: 'ec2',
  action: 'ec2:DescribeInstances',
  args: argsSchema({
    // AWS does not page an answer by ids, so the ids are the page: a default page's worth, whose answer fits
    // MAX_RESULT_BYTES even at 5 KiB of JSON an instance (tags, interfaces, volumes).
    instanceIds: {
      type: 'array',
      items: { type: 'string', pattern: '^i-[0-9a-f]{8,17}$' },
      maxItems: DEFAULT_PAGE_SIZE,
    },
    filters: {
      type: 'array',
      maxItems: 50,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'values'],
        properties: {
          name: { type: 'string', minLength: 1 },
          values: { type: 'array', minItems: 1, maxItems: 200, items: { type: 'string' } },
        },
      },
    },
    ...pageArgs(5, 1000),
  }),
  checkArgs(args) {
    // AWS refuses MaxResults with InstanceIds (InvalidParameterCombination); the ids bound the answer already.
    if (args.instanceIds !== undefined && args.maxResults !== undefined)
      throw new BadParameterError(
        'ERR_AWS_ARGS',
        'args.maxResults: cannot go with instanceIds (AWS refuses the pair; the ids already bound the answer)',
        { field: 'args.maxResults' },
      );
  },
  async run({ settings, abortSignal }, args) {
    const filters = args.filters as { name: string; values: string[] }[] | undefined;
    const byId = args.instanceIds !== undefined;
    const out = await new EC2Client(settings).send(
      new DescribeInstancesCommand({
        InstanceIds: args.instanceIds as string[] | undefined,
        Filters: filters?.map((f) => ({ Name: f.name, Values: f.values })),
        MaxResults: byId ? undefined : ((args.maxResults as number | undefined) ?? DEFAULT_PAGE_SIZE),
        NextToken: args.nextToken as string | undefined,
      }),
      { abortSignal },
    );
    const instances = (out.Reservations ?? []).flatMap((r) => (r.Instances ?? []).map(instanceJson));
    return { instances, nextToken: out.NextToken };
  },
};

function instanceJson(i: Instance): Record<string, unknown> {
  return {
    instanceId: i.InstanceId,
    instanceType: i.InstanceType,
    state: i.State?.Name,
    privateIpAddress: i.PrivateIpAddress,
    publicIpAddress: i.PublicIpAddress,
    vpcId: i.VpcId,
    subnetId: i.SubnetId,
    launchTime: iso(i.LaunchTime),
    tags: Object.fromEntries((i.Tags ?? []).map((t) => [t.Key ?? '', t.Value ?? ''])),
  };
}

const listUsers: AwsCommand = {
  name: 'iam.list-users',
  description: "The account's IAM users, optionally under a path prefix.",
  readOnly: true,
  service: 'iam',
  action: 'iam:ListUsers',
  args: argsSchema({
    pathPrefix: { type: 'string', pattern: '^/([\\x21-\\x7E]*/)?$', maxLength: 512 },
    ...pageArgs(1, 1000),
  }),
  async run({ settings, abortSignal }, args) {
    const out = await new IAMClient(settings).send(
      new ListUsersCommand({
        PathPrefix: args.pathPrefix as string | undefined,
        MaxItems: (args.maxResults as number | undefined) ?? DEFAULT_PAGE_SIZE,
        Marker: args.nextToken as string | undefined,
      }),
      { abortSignal },
    );
    const users = (out.Users ?? []).map((u) => ({
      userName: u.UserName,
      userId: u.UserId,
      arn: u.Arn,
      path: u.Path,
      createDate: iso(u.CreateDate),
      passwordLastUsed: iso(u.PasswordLastUsed),
    }));
    return { users, nextToken: out.IsTruncated ? out.Marker : undefined };
  },
};

/** The `aws` integration's commands by name. */
export const AWS_COMMANDS: ReadonlyMap<string, AwsCommand> = new Map(
  [getCallerIdentity, listBuckets, describeInstances, listUsers].map((c) => [c.name, Object.freeze(c)]),
);
