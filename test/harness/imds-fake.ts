/**
 * A fake EC2 instance metadata service on loopback, speaking IMDSv2 the way EC2 does with
 * `HttpTokens=required`: PUT /latest/api/token (with a TTL header) issues a token; a GET without a valid
 * x-aws-ec2-metadata-token is an IMDSv1 call and is refused with 401. It serves one role's credentials
 * and records every request, so a test can assert that the token was fetched first and no token-less GET
 * was ever made. With `v1Only`, it behaves like an old IMDS that refuses the token PUT (405).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FakeIdentity } from './aws-fake.js';

export interface RecordedImdsRequest {
  method: string;
  path: string;
  token?: string;
  ttl?: string;
}

const TOKEN_PATH = '/latest/api/token';
const CREDENTIALS_PATH = '/latest/meta-data/iam/security-credentials/';

export class FakeImds {
  readonly requests: RecordedImdsRequest[] = [];
  readonly tokens = new Set<string>();
  private server?: Server;

  constructor(
    private readonly roleName: string,
    private readonly credentials: FakeIdentity,
    private readonly opts: { v1Only?: boolean } = {},
  ) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  /** GETs that carried no valid token: IMDSv1 calls. */
  get v1Calls(): RecordedImdsRequest[] {
    return this.requests.filter((r) => r.method === 'GET' && (r.token === undefined || !this.tokens.has(r.token)));
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const header = (name: string): string | undefined => {
      const v = req.headers[name];
      return typeof v === 'string' ? v : undefined;
    };
    const r: RecordedImdsRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      token: header('x-aws-ec2-metadata-token'),
      ttl: header('x-aws-ec2-metadata-token-ttl-seconds'),
    };
    this.requests.push(r);
    if (r.method === 'PUT' && r.path === TOKEN_PATH) {
      if (this.opts.v1Only || r.ttl === undefined) return send(res, this.opts.v1Only ? 405 : 400, '');
      const token = randomBytes(24).toString('base64');
      this.tokens.add(token);
      return send(res, 200, token);
    }
    if (r.method !== 'GET') return send(res, 405, '');
    if (r.token === undefined || !this.tokens.has(r.token)) return send(res, 401, '');
    if (r.path === CREDENTIALS_PATH) return send(res, 200, this.roleName);
    if (r.path === CREDENTIALS_PATH + this.roleName)
      return send(
        res,
        200,
        JSON.stringify({
          Code: 'Success',
          Type: 'AWS-HMAC',
          AccessKeyId: this.credentials.accessKeyId,
          SecretAccessKey: this.credentials.secretAccessKey,
          Token: this.credentials.sessionToken,
          Expiration: new Date(Date.now() + 3_600_000).toISOString(),
          LastUpdated: new Date().toISOString(),
        }),
      );
    send(res, 404, '');
  }
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(body);
}
