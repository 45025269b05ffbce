/**
 * A real deployment for end-to-end tests: `palisade main init` + `main start` on a fixed free port,
 * agents installed from real bundles and started as processes. One per test file; logs on failure;
 * `stop()` removes its temp dir.
 */
import { request } from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Proc, freePort, runCli, tempDir, type CliResult } from './processes.js';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '#common/agent-runtime.js';
import { removeTenantUsers } from './tenant-users.js';

export interface ApiReply<T = unknown> { status: number; body: T; raw: string }

export class Deployment {
  dir = '';
  port = 0;
  url = '';
  apiKey = '';
  caCertPath = '';
  main?: Proc;
  readonly agents = new Map<string, { dir: string; proc?: Proc }>();

  /** Extra environment for main (e.g. a diagnostic switch a test inspects). */
  mainEnv: NodeJS.ProcessEnv = {};

  /** `mainConfig` is merged into main.json before main first starts (e.g. a low authFailuresPerMinute). */
  static async create(opts: { mainEnv?: NodeJS.ProcessEnv; mainConfig?: Record<string, unknown> } = {}): Promise<Deployment> {
    const d = new Deployment();
    d.mainEnv = opts.mainEnv ?? {};
    d.dir = await tempDir();
    try {
      d.port = await freePort();
      const init = await runCli(['main', 'init', '--data', d.mainDir, '--hostname', '127.0.0.1', '--port', String(d.port), '--json']);
      if (init.code !== 0) throw new Error(`main init failed: ${init.stdout}${init.stderr}`);
      const j = init.json as { url: string; adminApiKey: string; caCertPath: string };
      d.url = j.url; d.apiKey = j.adminApiKey; d.caCertPath = j.caCertPath;
      if (opts.mainConfig) {
        const path = join(d.mainDir, 'main.json');
        writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')) as object, ...opts.mainConfig }, null, 2));
      }
      await d.startMain();
    } catch (e) {
      // The test file never gets the deployment to stop: clean up here, then fail its beforeAll.
      await d.stop();
      throw e;
    }
    return d;
  }

  get mainDir(): string { return join(this.dir, 'main'); }
  get mainLog(): string { return join(this.mainDir, 'logs', 'main.log'); }
  get env(): NodeJS.ProcessEnv { return { PALISADE_URL: this.url, PALISADE_API_KEY: this.apiKey, PALISADE_CA_CERT: this.caCertPath }; }

  async startMain(): Promise<Proc> {
    this.main = new Proc('main', ['main', 'start', '--data', this.mainDir, '--bind', '127.0.0.1'], this.mainEnv);
    await this.main.waitFor(/listening on https:\/\/\S+/);
    return this.main;
  }

  cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
    return runCli(args, { ...this.env, ...env });
  }

  /** Creates a bundle and installs it; returns the agent dir. */
  async install(kind: 'host' | 'engine', name: string, extra: string[] = [], tenant?: string): Promise<string> {
    const bundle = join(this.dir, `${kind}-${name}.tar.gz`);
    const c = await this.cli(['installer', 'create', '--kind', kind, '--name', name, ...(tenant ? ['--tenant', tenant] : []), '--out', bundle, '--json']);
    if (c.code !== 0) throw new Error(`installer create failed: ${c.stdout}${c.stderr}`);
    const dir = join(this.dir, `${kind}-${name}`);
    const i = await runCli(['agent', 'install', '--bundle', bundle, '--dir', dir, '--json', ...extra]);
    if (i.code !== 0) throw new Error(`agent install failed: ${i.stdout}${i.stderr}`);
    this.agents.set(name, { dir });
    return dir;
  }

  /** Merges settings into an installed (not yet started) agent's agent.json. */
  configure(name: string, patch: Record<string, unknown>): void {
    const path = join(this.agents.get(name)!.dir, 'agent.json');
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')) as object, ...patch }, null, 2));
  }

  /**
   * Starts an installed agent and waits until it is connected: as its systemd unit runs it, or `bare`
   * (plain `node`, without the unit's node flags and malloc variables, as an admin might by hand).
   */
  async startAgent(name: string, waitConnected = true, runtime: 'unit' | 'bare' = 'unit'): Promise<Proc> {
    const a = this.agents.get(name);
    if (!a) throw new Error(`no agent ${name} installed`);
    const args = ['agent', 'start', '--dir', a.dir];
    a.proc = runtime === 'unit'
      ? new Proc(`agent ${name}`, args, AGENT_ENV, AGENT_NODE_FLAGS)
      : new Proc(`agent ${name}`, args, Object.fromEntries(Object.keys(AGENT_ENV).map((k) => [k, undefined])));
    if (waitConnected) await a.proc.waitFor(/connected to/);
    return a.proc;
  }

  agentLog(name: string): string { return join(this.agents.get(name)!.dir, 'logs', 'agent.log'); }

  api<T = unknown>(method: string, path: string, body?: unknown, opts: { key?: string | null; rawBody?: string | Buffer; headers?: Record<string, string> } = {}): Promise<ApiReply<T>> {
    const ca = readFileSync(this.caCertPath);
    const key = opts.key === undefined ? this.apiKey : opts.key;
    const payload = opts.rawBody ?? (body === undefined ? undefined : JSON.stringify(body));
    return new Promise((res, rej) => {
      const req = request(new URL(path.startsWith('/api/') || path.startsWith('/docs') ? path : `/api/v1${path}`, this.url), {
        method, ca,
        headers: {
          ...(key ? { authorization: `Bearer ${key}` } : {}),
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
          ...opts.headers,
        },
      }, (r) => {
        let raw = '';
        r.on('data', (c: Buffer) => { raw += c; });
        r.on('end', () => {
          let parsed: unknown = raw;
          try { parsed = JSON.parse(raw); } catch { /* keep raw */ }
          res({ status: r.statusCode ?? 0, body: parsed as T, raw });
        });
      });
      req.on('error', rej);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /** Creates a user through main (`/users`, or a tenant's `/tenants/T/api/users`); throws unless 201. */
  async createUser(body: Record<string, unknown>, path = '/users'): Promise<{ id: string; name: string }> {
    const r = await this.api<{ id: string; name: string }>('POST', path, body);
    if (r.status !== 201) throw new Error(`create user: ${r.status} ${r.raw}`);
    return r.body;
  }

  /** Creates an API key for a user (on main, or a tenant's `/tenants/T/api/apikeys`) and returns the secret. */
  async createKey(userId: string, path = '/apikeys'): Promise<string> {
    const r = await this.api<{ key: string }>('POST', path, { user: userId });
    if (r.status !== 201) throw new Error(`create key: ${r.status} ${r.raw}`);
    return r.body.key;
  }

  /** Output of every process, for a failing test's report. */
  logs(): string {
    const parts = [`--- main (${this.mainDir})\n${this.main?.output ?? ''}\n${safeRead(this.mainLog).slice(-20_000)}`];
    for (const [name, a] of this.agents) parts.push(`--- agent ${name}\n${a.proc?.output ?? ''}\n${safeRead(join(a.dir, 'logs', 'agent.log')).slice(-20_000)}`);
    return parts.join('\n');
  }

  /** Stops every process, then removes the deployment's temp dir (logs are printed before, on failure). */
  async stop(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.proc?.stop()));
    await this.main?.stop();
    if (!this.dir) return;
    await removeTenantUsers(this.dir);
    await rm(this.dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

function safeRead(p: string): string {
  try { return readFileSync(p, 'utf8'); } catch { return ''; }
}
