/**
 * The HTTP service the playbook tests call (test/e2e/playbooks.test.ts): `/lookup/NAME` says whether NAME is a VIP,
 * any other path records a write; every call is recorded with its bearer token and body, and calls under chosen
 * path prefixes are held until `release()` (to kill a tenant while a call is under way). Also the deployment those
 * tests share: one host allowed to reach the service, and tenants each with their own `svc` connection to it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Deployment } from './deployment.js';
import { runCli } from './processes.js';

/** The service playbooks call: `/lookup/NAME` says whether NAME is a VIP, `/act` records a write. */
export class FakeService {
  readonly seen: { method: string; path: string; authorization?: string; body: string }[] = [];
  /** Paths starting with one of these are answered only at release(). */
  readonly hold = new Set<string>();
  private readonly held: (() => void)[] = [];
  private server!: Server;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => this.answer(req, res, body));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  private answer(req: IncomingMessage, res: ServerResponse, body: string): void {
    const path = req.url ?? '';
    this.seen.push({ method: req.method ?? '', path, authorization: req.headers.authorization, body });
    const send = () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(path.includes('/lookup/alice') ? { vip: true } : { vip: false, done: true }));
    };
    if ([...this.hold].some((h) => path.startsWith(h))) this.held.push(send);
    else send();
  }

  /** Calls whose path starts with `prefix` and carry `incident=ID` (each run's calls name its incident). */
  calls(prefix: string, incident: string): { authorization?: string; body: string }[] {
    return this.seen.filter(
      (s) => s.path.startsWith(prefix) && new URL(s.path, 'http://x').searchParams.get('incident') === incident,
    );
  }

  release(): void {
    this.hold.clear();
    for (const send of this.held.splice(0)) send();
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => (this.server ? this.server.close(r) : r(undefined)));
  }
}

/**
 * A deployment with host h1, which lets its tenants reach `svc` (a loopback service, so by name in its agent.json),
 * and one tenant per entry of `tokens`, each with an http connection `svc` to it carrying that tenant's bearer token.
 */
export async function deployWithService(svc: FakeService, tokens: Record<string, string>): Promise<Deployment> {
  const d = await Deployment.create();
  await d.install('host', 'h1');
  d.configure('h1', { integrationLoopbackAllow: [`127.0.0.1:${svc.port}`] });
  await d.startAgent('h1');
  for (const [tenant, token] of Object.entries(tokens)) {
    await d.createTenant(tenant, 'h1');
    const args = ['connections', 'create', 'svc', '--tenant', tenant, '--type', 'http'].concat(
      ...['--set', `baseUrl=http://127.0.0.1:${svc.port}`, '--set', 'authType=bearer', '--secret-stdin'],
    );
    const r = await runCli(args, d.env, 60_000, `${token}\n`);
    if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
  return d;
}
