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
    if (service === 's3')
      return sendXml(
        res,
        `<ListAllMyBucketsResult><Owner><ID>owner-${caller.account}</ID><DisplayName>soc</DisplayName></Owner>` +
          `<Buckets><Bucket><Name>logs-${caller.account}</Name><CreationDate>2026-01-02T03:04:05.000Z</CreationDate></Bucket></Buckets></ListAllMyBucketsResult>`,
      );
    if (service === 'ec2' && action === 'DescribeInstances') return sendXml(res, describeInstances(caller));
    if (service === 'iam' && action === 'ListUsers')
      return sendXml(
        res,
        query(
          'ListUsers',
          `<Users><member><Path>/</Path><UserName>alice</UserName><UserId>AIDALICE</UserId>` +
            `<Arn>arn:aws:iam::${caller.account}:user/alice</Arn><CreateDate>2025-05-06T07:08:09Z</CreateDate></member></Users><IsTruncated>false</IsTruncated>`,
        ),
      );
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

function describeInstances(caller: FakeIdentity): string {
  return (
    `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>${randomUUID()}</requestId>` +
    `<reservationSet><item><reservationId>r-0123</reservationId><ownerId>${caller.account}</ownerId><instancesSet><item>` +
    '<instanceId>i-0123456789abcdef0</instanceId><instanceType>t3.micro</instanceType><instanceState><code>16</code><name>running</name></instanceState>' +
    '<privateIpAddress>10.0.0.5</privateIpAddress><launchTime>2026-02-03T04:05:06.000Z</launchTime>' +
    '<tagSet><item><key>Name</key><value>web-1</value></item></tagSet></item></instancesSet></item></reservationSet></DescribeInstancesResponse>'
  );
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
