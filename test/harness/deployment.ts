/**
 * A real deployment for end-to-end tests: `palisade main init` + `main start` on a fixed free port,
 * agents installed from real bundles and started as processes, and the steps most tests share (tenants
 * created and running, engines installed and in session with their tenant). One per test file; logs on
 * failure. `stop()` stops every process it started, removes its temp dir, and fails unless each of them
 * (and each tenant its hosts stopped) exited cleanly.
 */
import { request } from 'node:https';
import { readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Proc, alive, freePort, runCli, tempDir, until, type CliResult } from './processes.js';
import { AGENT_ENV, AGENT_NODE_FLAGS } from '#common/agent-runtime.js';
import { removeTenantUsers } from './tenant-users.js';

/** Paths `api()` takes as they are; any other is a path inside /api/v1. */
const ROOT_ROUTES = /^\/(?:api\/|docs|metrics(?:\?|$)|readyz(?:\?|$))/;

export interface ApiReply<T = unknown> {
  status: number;
  body: T;
  raw: string;
  contentType?: string;
}

/** A tenant as `GET /tenants` (and `palisade tenants --json`) lists it. */
export interface TenantRow {
  name: string;
  host: string;
  port: number;
  status: string;
  labels: string[];
  publicKey: string;
  publicKeyFingerprint: string;
  createdAt: string;
  pid: number | null;
  restarts: number;
  memoryMb: number | null;
  cpuPercent: number | null;
  rssBytes: number | null;
}

/** An engine in session with its tenant, as the tenant's `GET /tunnels` lists it. */
export interface EngineSession {
  id: string;
  name: string;
  transport: 'direct' | 'relay';
  since: string;
}

/** What startEngine installs and waits for. */
export interface EngineSetup {
  /** Allow-list entries (`agent install --allow`), e.g. `127.0.0.1:8080`. */
  allow?: string[];
  /** Further `agent install` flags (e.g. `--no-direct`). */
  flags?: string[];
  /** The engine group its installer bundle names (`installer create --group`). */
  group?: string;
  /** Merged into agent.json before the engine first starts. */
  config?: Record<string, unknown>;
  /** Wait for a session on this path, not just any. */
  transport?: EngineSession['transport'];
  /** Extra environment for the engine's process (e.g. where the AWS SDK finds instance metadata). */
  env?: NodeJS.ProcessEnv;
}

export class Deployment {
  dir = '';
  port = 0;
  url = '';
  apiKey = '';
  caCertPath = '';
  main?: Proc;
  readonly agents = new Map<string, { dir: string; proc?: Proc }>();
  /** Every process started here, restarts included: stop() checks how each ended. */
  private readonly procs: Proc[] = [];

  /** Extra environment for main (e.g. a diagnostic switch a test inspects). */
  mainEnv: NodeJS.ProcessEnv = {};

  /** `mainConfig` is merged into main.json before main first starts (e.g. a low authFailuresPerMinute). */
  static async create(
    opts: { mainEnv?: NodeJS.ProcessEnv; mainConfig?: Record<string, unknown> } = {},
  ): Promise<Deployment> {
    const d = new Deployment();
    d.mainEnv = opts.mainEnv ?? {};
    d.dir = await tempDir();
    try {
      d.port = await freePort();
      const init = await runCli([
        'main',
        'init',
        '--data',
        d.mainDir,
        '--hostname',
        '127.0.0.1',
        '--port',
        String(d.port),
        '--json',
      ]);
      if (init.code !== 0) throw new Error(`main init failed: ${init.stdout}${init.stderr}`);
      const j = init.json as { url: string; adminApiKey: string; caCertPath: string };
      d.url = j.url;
      d.apiKey = j.adminApiKey;
      d.caCertPath = j.caCertPath;
      if (opts.mainConfig) {
        const path = join(d.mainDir, 'main.json');
        writeFileSync(
          path,
          JSON.stringify({ ...(JSON.parse(readFileSync(path, 'utf8')) as object), ...opts.mainConfig }, null, 2),
        );
      }
      await d.startMain();
    } catch (e) {
      // The test file never gets the deployment to stop: clean up here, then fail its beforeAll with why.
      await d.stop().catch(() => undefined);
      throw e;
    }
    return d;
  }

  get mainDir(): string {
    return join(this.dir, 'main');
  }
  get mainLog(): string {
    return join(this.mainDir, 'logs', 'main.log');
  }
  get env(): NodeJS.ProcessEnv {
    return { PALISADE_URL: this.url, PALISADE_API_KEY: this.apiKey, PALISADE_CA_CERT: this.caCertPath };
  }

  /** Starts main on its data directory, or on `data` (e.g. one a backup was restored into). */
  async startMain(data = this.mainDir): Promise<Proc> {
    this.main = this.track(new Proc('main', ['main', 'start', '--data', data, '--bind', '127.0.0.1'], this.mainEnv));
    await this.main.waitFor(/listening on https:\/\/\S+/);
    return this.main;
  }

  cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
    return runCli(args, { ...this.env, ...env });
  }

  /** Creates a bundle and installs it; returns the agent dir. */
  async install(
    kind: 'host' | 'engine',
    name: string,
    extra: string[] = [],
    tenant?: string,
    group?: string,
  ): Promise<string> {
    const bundle = join(this.dir, `${kind}-${name}.tar.gz`);
    const c = await this.cli([
      'installer',
      'create',
      '--kind',
      kind,
      '--name',
      name,
      ...(tenant ? ['--tenant', tenant] : []),
      ...(group ? ['--group', group] : []),
      '--out',
      bundle,
      // The config alone: agents here run from the checkout (agent-bundle.test.ts installs the whole release).
      '--config-only',
      '--json',
    ]);
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
    writeFileSync(path, JSON.stringify({ ...(JSON.parse(readFileSync(path, 'utf8')) as object), ...patch }, null, 2));
  }

  /**
   * Starts an installed agent and waits until it is connected: as its systemd unit runs it, or `bare`
   * (plain `node`, without the unit's node flags and malloc variables, as an admin might by hand). `env`: more
   * of the agent's environment (what an operator's shell might leave it).
   */
  async startAgent(
    name: string,
    waitConnected = true,
    runtime: 'unit' | 'bare' = 'unit',
    env: NodeJS.ProcessEnv = {},
  ): Promise<Proc> {
    const a = this.agents.get(name);
    if (!a) throw new Error(`no agent ${name} installed`);
    const args = ['agent', 'start', '--dir', a.dir];
    a.proc = this.track(
      runtime === 'unit'
        ? new Proc(`agent ${name}`, args, { ...AGENT_ENV, ...env }, AGENT_NODE_FLAGS)
        : new Proc(`agent ${name}`, args, {
            ...Object.fromEntries(Object.keys(AGENT_ENV).map((k) => [k, undefined])),
            ...env,
          }),
    );
    if (waitConnected) await a.proc.waitFor(/connected to/);
    return a.proc;
  }

  /**
   * Has stop() check a process a test started itself (e.g. a second agent on a copied directory): it is
   * stopped with the others and must exit as cleanly.
   */
  track(p: Proc): Proc {
    this.procs.push(p);
    return p;
  }

  agentLog(name: string): string {
    return join(this.agents.get(name)!.dir, 'logs', 'agent.log');
  }

  api<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    opts: { key?: string | null; rawBody?: string | Buffer; headers?: Record<string, string> } = {},
  ): Promise<ApiReply<T>> {
    const ca = readFileSync(this.caCertPath);
    const key = opts.key === undefined ? this.apiKey : opts.key;
    const payload = opts.rawBody ?? (body === undefined ? undefined : JSON.stringify(body));
    return new Promise((res, rej) => {
      const req = request(
        new URL(ROOT_ROUTES.test(path) ? path : `/api/v1${path}`, this.url),
        {
          method,
          ca,
          headers: {
            ...(key ? { authorization: `Bearer ${key}` } : {}),
            ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
            ...opts.headers,
          },
        },
        (r) => {
          let raw = '';
          r.on('data', (c: Buffer) => {
            raw += c;
          });
          r.on('end', () => {
            let parsed: unknown = raw;
            try {
              parsed = JSON.parse(raw);
            } catch {
              /* keep raw */
            }
            res({ status: r.statusCode ?? 0, body: parsed as T, raw, contentType: r.headers['content-type'] });
          });
        },
      );
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

  /** Every tenant, as `GET /tenants` lists them. */
  async tenants(): Promise<TenantRow[]> {
    const r = await this.api<TenantRow[]>('GET', '/tenants');
    if (r.status !== 200) throw new Error(`GET /tenants: ${r.status} ${r.raw}`);
    return r.body;
  }

  async tenant(name: string): Promise<TenantRow | undefined> {
    return (await this.tenants()).find((t) => t.name === name);
  }

  /** Waits until tenant `name` runs as a live process (other than `notPid`, for a restart); returns its row. */
  tenantRunning(name: string, opts: { notPid?: number; timeoutMs?: number } = {}): Promise<TenantRow> {
    return until(
      `tenant ${name} running${opts.notPid ? ` again (not pid ${opts.notPid})` : ''}`,
      async () => {
        const t = await this.tenant(name);
        return t?.status === 'running' && t.pid && t.pid !== opts.notPid && alive(t.pid) ? t : undefined;
      },
      opts.timeoutMs ?? 60_000,
      200,
    );
  }

  /** Creates a tenant on `host` through the API (throws unless 201) and waits until it runs; returns its row. */
  async createTenant(
    name: string,
    host: string,
    opts: { labels?: string[]; region?: string; memoryMb?: number; diskMb?: number } = {},
  ): Promise<TenantRow> {
    const r = await this.api('POST', '/tenants', { name, host, ...opts });
    if (r.status !== 201) throw new Error(`create tenant ${name} on ${host}: ${r.status} ${r.raw}`);
    return this.tenantRunning(name);
  }

  /** The engines in session with `tenant` ([] while its API does not answer). */
  async engineSessions(tenant: string): Promise<EngineSession[]> {
    const r = await this.api<{ engines?: EngineSession[] }>('GET', `/tenants/${tenant}/api/tunnels`);
    return r.status === 200 ? (r.body.engines ?? []) : [];
  }

  /** Creates an engine bundle for `tenant` and installs it, allow-listing `allow`; not started. Returns its dir. */
  installEngine(
    name: string,
    tenant: string,
    allow: string[] = [],
    flags: string[] = [],
    group?: string,
  ): Promise<string> {
    return this.install('engine', name, [...allow.flatMap((a) => ['--allow', a]), ...flags], tenant, group);
  }

  /**
   * Installs engine `name` for `tenant`, starts it and waits until it is in session with the tenant; returns that
   * session.
   */
  async startEngine(name: string, tenant: string, setup: EngineSetup = {}): Promise<EngineSession> {
    await this.installEngine(name, tenant, setup.allow, setup.flags, setup.group);
    if (setup.config) this.configure(name, setup.config);
    await this.startAgent(name, true, 'unit', setup.env);
    return until(
      `engine ${name} in session with ${tenant}${setup.transport ? ` (${setup.transport})` : ''}`,
      async () =>
        (await this.engineSessions(tenant)).find(
          (s) => s.name === name && (!setup.transport || s.transport === setup.transport),
        ),
      30_000,
    );
  }

  /** Output of every process, for a failing test's report. */
  logs(): string {
    const parts = [`--- main (${this.mainDir})\n${this.main?.output ?? ''}\n${safeRead(this.mainLog).slice(-20_000)}`];
    for (const [name, a] of this.agents)
      parts.push(
        `--- agent ${name}\n${a.proc?.output ?? ''}\n${safeRead(join(a.dir, 'logs', 'agent.log')).slice(-20_000)}`,
      );
    return parts.join('\n');
  }

  /**
   * Stops every process (agents first, then main), removes the deployment's temp dir, then throws if any
   * process did not end cleanly (Proc.uncleanEnd) or a host saw a tenant of its not stop cleanly: a test
   * file's afterAll fails with what ended how, and those processes' last output.
   */
  async stop(): Promise<void> {
    // An agent's current process counts even if a test started it itself without track().
    const procs = [...new Set([...this.procs, ...[...this.agents.values()].flatMap((a) => (a.proc ? [a.proc] : []))])];
    const isMain = (p: Proc) => p.label === 'main';
    await Promise.all(procs.filter((p) => !isMain(p)).map((p) => p.stop()));
    await Promise.all(procs.filter(isMain).map((p) => p.stop()));
    const unclean = [
      ...procs.flatMap((p) => {
        const why = p.uncleanEnd();
        return why ? [`${p.label}: ${why}\n${p.output.slice(-4_000)}`] : [];
      }),
      ...[...this.agents].flatMap(([name, a]) =>
        uncleanTenantStops(join(a.dir, 'logs', 'agent.log')).map((l) => `a tenant of ${name}: ${l}`),
      ),
    ];
    if (this.dir) {
      await removeTenantUsers(this.dir);
      await rm(this.dir, { recursive: true, force: true, maxRetries: 3 });
    }
    if (unclean.length) throw new Error(`processes that did not exit cleanly:\n${unclean.join('\n')}`);
  }
}

/** The host's log lines for tenants that did not exit 0 when it stopped them (agent/host/tenant-supervisor.ts). */
function uncleanTenantStops(agentLog: string): string[] {
  return safeRead(agentLog)
    .split('\n')
    .filter((l) => l.includes('"tenant did not stop cleanly"'));
}

function safeRead(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}
