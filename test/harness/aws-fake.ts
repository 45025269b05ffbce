/**
 * A fake of the AWS services the `aws` integration calls — STS (GetCallerIdentity, AssumeRole), S3
 * (ListBuckets), EC2 (DescribeInstances), IAM (ListUsers) — on one loopback port, HTTP or HTTPS. It tells
 * the service from the signature's credential scope, refuses any request whose SigV4 signature does not
 * verify with the secret it was given (aws-sigv4-check.ts), answers in each service's wire format (XML,
 * as the SDK parses it), and records every request for tests to assert on. AssumeRole honours a role's
 * trust policy: the principals it trusts and the ExternalId it requires. Not IMDS (imds-fake.ts).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { checkSignature, type SignedRequestInfo, type SigningKey } from './aws-sigv4-check.js';

export interface FakeIdentity extends SigningKey {
  arn: string;
  account: string;
  /** IAM actions (`ec2:DescribeInstances`) this identity is refused. */
  denied?: string[];
}

export interface FakeRole {
  arn: string;
  /** Principal ARNs the trust policy admits. */
  trusts: string[];
  /** The sts:ExternalId condition, when the policy has one. */
  externalId?: string;
}

export interface RecordedAwsRequest {
  method: string;
  host: string;
  path: string;
  headers: IncomingMessage['headers'];
  /** The form of a query-protocol request (STS, EC2, IAM), e.g. Action, RoleArn, Filter.1.Name. */
  form: Record<string, string>;
  signed?: SignedRequestInfo;
  /** Whether the signature verified; false requests were answered with an auth error. */
  verified: boolean;
  /** The client's port, for socketOwner (which process made the request). */
  remotePort?: number;
}

/** A test's hook to answer a request itself: an AWS error, or 'hang' to never answer. */
export type FakeOverride = (r: RecordedAwsRequest) => { status: number; code: string } | 'hang' | undefined;

export class FakeAws {
  readonly identities = new Map<string, FakeIdentity>();
  readonly roles = new Map<string, FakeRole>();
  readonly requests: RecordedAwsRequest[] = [];
  override?: FakeOverride;
  /**
   * How many buckets, instances and users each account has; listed a page at a time as AWS does (max-buckets and
   * continuation-token, MaxResults and NextToken, MaxItems and Marker; the token is the next item's index).
   */
  readonly counts = { buckets: 1, instances: 1, users: 1 };
  private server?: Server;
  private readonly hanging = new Set<ServerResponse>();

  addIdentity(id: FakeIdentity): FakeIdentity {
    this.identities.set(id.accessKeyId, id);
    return id;
  }

  addRole(role: FakeRole): FakeRole {
    this.roles.set(role.arn, role);
    return role;
  }

  /** Listens on 127.0.0.1; with `tls`, as HTTPS (a certificate for the AWS host names a test routes here). */
  async start(tls?: { key: string; cert: string }): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse): void => void this.handle(req, res);
    this.server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
  }

  get port(): number {
    return (this.server!.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The recorded requests of one action (`AssumeRole`) or service (`s3`). */
  of(actionOrService: string): RecordedAwsRequest[] {
    return this.requests.filter((r) => r.form.Action === actionOrService || r.signed?.service === actionOrService);
  }

  async close(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const check = await checkSignature(req, body, (id) => this.identities.get(id));
    const record: RecordedAwsRequest = {
      method: req.method ?? '',
      host: String(req.headers.host ?? ''),
      path: req.url ?? '/',
      headers: req.headers,
      form: Object.fromEntries(new URLSearchParams(body.toString('utf8'))),
      signed: check.info,
      verified: check.ok,
      remotePort: req.socket.remotePort,
    };
    this.requests.push(record);
    const service = check.info?.service ?? 'sts';
    const forced = this.override?.(record);
    if (forced === 'hang') return void this.hanging.add(res);
    if (forced) return sendError(res, service, forced.status, forced.code, 'forced by the test');
    if (!check.ok) return refuseAuth(res, service, check.why);
    this.answer(res, service, record, this.identities.get(check.info.accessKeyId)!);
  }

  private answer(res: ServerResponse, service: string, r: RecordedAwsRequest, caller: FakeIdentity): void {
    const action = service === 's3' ? 'ListBuckets' : r.form.Action;
    const iamAction = `${service}:${service === 's3' ? 'ListAllMyBuckets' : action}`;
    if (caller.denied?.includes(iamAction))
      return sendError(res, service, 403, service === 'ec2' ? 'UnauthorizedOperation' : 'AccessDenied', 'denied');
    if (service === 'sts' && action === 'GetCallerIdentity')
      return sendXml(
        res,
        query(
          'GetCallerIdentity',
          `<Arn>${caller.arn}</Arn><UserId>AIDFAKE</UserId><Account>${caller.account}</Account>`,
        ),
      );
    if (service === 'sts' && action === 'AssumeRole') return this.assumeRole(res, r, caller);
    if (service === 's3') {
      const params = Object.fromEntries(new URL(r.path, 'http://s3').searchParams);
      return sendXml(res, listBuckets(caller, page(this.counts.buckets, params, 'max-buckets', 'continuation-token')));
    }
    if (service === 'ec2' && action === 'DescribeInstances') {
      if (r.form.MaxResults !== undefined && r.form['InstanceId.1'] !== undefined)
        return sendError(res, 'ec2', 400, 'InvalidParameterCombination', 'MaxResults with InstanceIds');
      return sendXml(res, describeInstances(caller, page(this.counts.instances, r.form, 'MaxResults', 'NextToken')));
    }
    if (service === 'iam' && action === 'ListUsers')
      return sendXml(res, listUsers(caller, page(this.counts.users, r.form, 'MaxItems', 'Marker')));
    sendError(res, service, 400, 'InvalidAction', `the fake does not do ${service}:${action}`);
  }

  private assumeRole(res: ServerResponse, r: RecordedAwsRequest, caller: FakeIdentity): void {
    const role = this.roles.get(r.form.RoleArn);
    const trusted =
      role?.trusts.includes(caller.arn) && (role.externalId === undefined || role.externalId === r.form.ExternalId);
    if (!role || !trusted)
      return sendError(
        res,
        'sts',
        403,
        'AccessDenied',
        `User: ${caller.arn} is not authorized to perform: sts:AssumeRole on resource: ${r.form.RoleArn}`,
      );
    const account = role.arn.split(':')[4];
    const roleName = role.arn.split('/').at(-1)!;
    const temp = this.addIdentity({
      accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
      secretAccessKey: randomBytes(20).toString('base64'),
      sessionToken: randomBytes(32).toString('base64'),
      arn: `arn:aws:sts::${account}:assumed-role/${roleName}/${r.form.RoleSessionName}`,
      account,
    });
    const expiration = new Date(Date.now() + Number(r.form.DurationSeconds ?? 3600) * 1000).toISOString();
    sendXml(
      res,
      query(
        'AssumeRole',
        `<Credentials><AccessKeyId>${temp.accessKeyId}</AccessKeyId><SecretAccessKey>${temp.secretAccessKey}</SecretAccessKey>` +
          `<SessionToken>${temp.sessionToken}</SessionToken><Expiration>${expiration}</Expiration></Credentials>` +
          `<AssumedRoleUser><Arn>${temp.arn}</Arn><AssumedRoleId>AROAFAKE:${r.form.RoleSessionName}</AssumedRoleId></AssumedRoleUser>`,
      ),
    );
  }
}

function query(action: string, result: string): string {
  return (
    `<${action}Response xmlns="https://fake.amazonaws.com/doc/"><${action}Result>${result}</${action}Result>` +
    `<ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`
  );
}

/** One page of `total` items: their indexes and the next page's token (the next index), as a request asks. */
interface Page {
  items: number[];
  next?: string;
}

function page(total: number, params: Record<string, string>, maxName: string, tokenName: string): Page {
  const from = Number(params[tokenName] ?? 0);
  const size = params[maxName] === undefined ? total : Number(params[maxName]);
  const to = Math.min(total, from + size);
  return {
    items: Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i),
    next: to < total ? String(to) : undefined,
  };
}

/** The first item of each list keeps the name tests know (logs-ACCOUNT, web-1, alice); later ones are numbered. */
const nth = (first: string, i: number): string => (i === 0 ? first : `${first}-${i + 1}`);

function listBuckets(caller: FakeIdentity, p: Page): string {
  const buckets = p.items.map(
    (i) =>
      `<Bucket><Name>${nth(`logs-${caller.account}`, i)}</Name><CreationDate>2026-01-02T03:04:05.000Z</CreationDate></Bucket>`,
  );
  return (
    `<ListAllMyBucketsResult><Owner><ID>owner-${caller.account}</ID><DisplayName>soc</DisplayName></Owner>` +
    `<Buckets>${buckets.join('')}</Buckets>${p.next ? `<ContinuationToken>${p.next}</ContinuationToken>` : ''}` +
    '</ListAllMyBucketsResult>'
  );
}

function describeInstances(caller: FakeIdentity, p: Page): string {
  const instances = p.items.map(
    (i) =>
      `<item><instanceId>i-${(0x0123456789abcdef0n + BigInt(i)).toString(16).padStart(17, '0')}</instanceId>` +
      '<instanceType>t3.micro</instanceType><instanceState><code>16</code><name>running</name></instanceState>' +
      '<privateIpAddress>10.0.0.5</privateIpAddress><launchTime>2026-02-03T04:05:06.000Z</launchTime>' +
      `<tagSet><item><key>Name</key><value>${nth('web-1', i)}</value></item></tagSet></item>`,
  );
  return (
    `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${randomUUID()}</requestId>` +
    `<reservationSet><item><reservationId>r-0123</reservationId><ownerId>${caller.account}</ownerId><instancesSet>` +
    `${instances.join('')}</instancesSet></item></reservationSet>` +
    `${p.next ? `<nextToken>${p.next}</nextToken>` : ''}</DescribeInstancesResponse>`
  );
}

function listUsers(caller: FakeIdentity, p: Page): string {
  const users = p.items.map((i) => {
    const name = nth('alice', i);
    return (
      `<member><Path>/</Path><UserName>${name}</UserName><UserId>AID${name.toUpperCase()}</UserId>` +
      `<Arn>arn:aws:iam::${caller.account}:user/${name}</Arn><CreateDate>2025-05-06T07:08:09Z</CreateDate></member>`
    );
  });
  const more = p.next
    ? `<IsTruncated>true</IsTruncated><Marker>${p.next}</Marker>`
    : '<IsTruncated>false</IsTruncated>';
  return query('ListUsers', `<Users>${users.join('')}</Users>${more}`);
}

/** What AWS answers a request it cannot authenticate, per service. */
function refuseAuth(res: ServerResponse, service: string, why: string): void {
  if (why === 'missing') return sendError(res, service, 403, 'MissingAuthenticationToken', 'no signature');
  if (why === 'bad-token')
    return sendError(res, service, 403, service === 'ec2' ? 'AuthFailure' : 'InvalidClientTokenId', 'bad token');
  if (service === 'ec2')
    return sendError(res, service, 401, 'AuthFailure', 'AWS was not able to validate the provided access credentials');
  if (service === 's3')
    return sendError(res, service, 403, why === 'unknown-key' ? 'InvalidAccessKeyId' : 'SignatureDoesNotMatch', why);
  sendError(res, service, 403, why === 'unknown-key' ? 'InvalidClientTokenId' : 'SignatureDoesNotMatch', why);
}

function sendError(res: ServerResponse, service: string, status: number, code: string, message: string): void {
  const id = randomUUID();
  const xml =
    service === 'ec2'
      ? `<Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>${id}</RequestID></Response>`
      : service === 's3'
        ? `<Error><Code>${code}</Code><Message>${message}</Message><RequestId>${id}</RequestId></Error>`
        : `<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>${id}</RequestId></ErrorResponse>`;
  sendXml(res, xml, status);
}

function sendXml(res: ServerResponse, xml: string, status = 200): void {
  res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': randomUUID() });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n${xml}`);
}
