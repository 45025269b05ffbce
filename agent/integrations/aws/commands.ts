/**
 * The commands of the built-in `aws` integration, as one table: each command's name, argument schema
 * (JSON Schema), whether it only reads, the IAM action it needs (for messages), and how it runs with SDK
 * clients. Every command takes `roleArn`, which overrides the connection's role for that one call.
 * Results are plain JSON (dates as ISO strings, no SDK metadata), so they can be stored and audited as
 * they are. Not credentials or error translation: run.ts resolves those around `run`.
 */
import { DescribeInstancesCommand, EC2Client, type Instance } from '@aws-sdk/client-ec2';
import { IAMClient, ListUsersCommand } from '@aws-sdk/client-iam';
import { ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
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
  run(ctx: CommandContext, args: Record<string, unknown>): Promise<unknown>;
}

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
  args: argsSchema({
    maxBuckets: { type: 'integer', minimum: 1, maximum: 10_000 },
    nextToken: { type: 'string', minLength: 1 },
  }),
  async run({ settings, abortSignal }, args) {
    // Path-style: a custom endpoint (a fake, PrivateLink's bucket.vpce-… form aside) is addressed as given.
    const s3 = new S3Client({ ...settings, forcePathStyle: settings.endpoint !== undefined });
    const out = await s3.send(
      new ListBucketsCommand({
        MaxBuckets: args.maxBuckets as number | undefined,
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
    instanceIds: { type: 'array', items: { type: 'string', pattern: '^i-[0-9a-f]{8,17}$' }, maxItems: 1000 },
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
    maxResults: { type: 'integer', minimum: 5, maximum: 1000 },
    nextToken: { type: 'string', minLength: 1 },
  }),
  async run({ settings, abortSignal }, args) {
    const filters = args.filters as { name: string; values: string[] }[] | undefined;
    const out = await new EC2Client(settings).send(
      new DescribeInstancesCommand({
        InstanceIds: args.instanceIds as string[] | undefined,
        Filters: filters?.map((f) => ({ Name: f.name, Values: f.values })),
        MaxResults: args.maxResults as number | undefined,
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
    maxItems: { type: 'integer', minimum: 1, maximum: 1000 },
    nextToken: { type: 'string', minLength: 1 },
  }),
  async run({ settings, abortSignal }, args) {
    const out = await new IAMClient(settings).send(
      new ListUsersCommand({
        PathPrefix: args.pathPrefix as string | undefined,
        MaxItems: args.maxItems as number | undefined,
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
