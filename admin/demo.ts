/**
 * `palisade demo`: a whole deployment on loopback from real processes — main, and a host agent
 * installed from a real bundle — the way an admin would do it by hand, then the commands to try.
 * It drives the palisade CLI as child processes; it imports neither main nor agent.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, readFile } from 'node:fs/promises';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { createServer as createHttpServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { UnavailableError } from '#common/errors.js';
import { formatHostPort, type HostPort } from '#common/address.js';
import { adminClient } from './rest-client.js';
import { writeFileAtomic } from '#common/atomic-file.js';
import { AGENT_NODE_FLAGS, withAgentEnv } from '#common/agent-runtime.js';

const run = promisify(execFile);

export interface DemoOptions {
  dir?: string;
  port?: number;
  cli: string;
  json?: boolean;
}
export interface Demo {
  dir: string;
  url: string;
  apiKey: string;
  caCert: string;
  children: ChildProcess[];
  intranet: HostPort;
  tunnel: string;
  /** Where acme's engine takes syslog over UDP (`udp:127.0.0.1:PORT`). */
  syslog: string;
  /** Where it takes syslog over TCP (`tcp:127.0.0.1:PORT`), line or octet-counted frames. */
  syslogTcp: string;
  stop(): Promise<void>;
}

/** A UDP port free on loopback now (the engine binds it next). */
function freeUdpPort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createSocket('udp4');
    s.once('error', rej);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function freePort(preferred: number): Promise<number> {
  const tryPort = (p: number) =>
    new Promise<number>((res, rej) => {
      const s = createServer()
        .once('error', rej)
        .listen(p, '127.0.0.1', () => {
          const a = s.address();
          s.close(() => res(typeof a === 'object' && a ? a.port : p));
        });
    });
  return tryPort(preferred).catch(() => tryPort(0));
}

async function cli(cliPath: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<unknown> {
  const { stdout } = await run(process.execPath, [cliPath, ...args, '--json'], { env: { ...process.env, ...env } });
  return JSON.parse(stdout);
}

/** A long-running palisade process; agents as their systemd unit starts them (node flags and environment). */
function spawnCli(cliPath: string, args: string[], asAgent: boolean): ChildProcess {
  return asAgent
    ? spawn(process.execPath, [...AGENT_NODE_FLAGS, cliPath, ...args], {
        env: withAgentEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Starts a long-running palisade process and resolves when a line of its stdout matches. */
function startAndWait(
  cliPath: string,
  args: string[],
  ready: RegExp,
  asAgent = false,
  timeoutMs = 60_000,
): Promise<ChildProcess> {
  return new Promise((resolvePromise, reject) => {
    const child = spawnCli(cliPath, args, asAgent);
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(
        new UnavailableError(
          'ERR_DEMO_START',
          `"palisade ${args.join(' ')}" not ready within ${timeoutMs} ms:\n${out}`,
        ),
      );
    }, timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (ready.test(out)) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolvePromise(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new UnavailableError('ERR_DEMO_START', `"palisade ${args.join(' ')}" exited with ${code}:\n${out}`));
    });
  });
}

export async function startDemo(o: DemoOptions): Promise<Demo> {
  const dir = resolve(o.dir ?? (await mkdtemp(join(tmpdir(), 'palisade-demo-'))));
  await mkdir(dir, { recursive: true });
  const port = await freePort(o.port ?? 8443);
  const init = (await cli(o.cli, [
    'main',
    'init',
    '--data',
    join(dir, 'main'),
    '--hostname',
    '127.0.0.1',
    '--port',
    String(port),
  ])) as { url: string; adminApiKey: string; caCertPath: string };
  const children: ChildProcess[] = [];
  let intranet: Server | undefined;
  const stop = async () => {
    intranet?.close();
    await Promise.all(
      children.reverse().map(
        (c) =>
          new Promise<void>((r) => {
            if (c.exitCode !== null) return r();
            c.once('exit', () => r());
            c.kill('SIGTERM');
          }),
      ),
    );
  };
  try {
    children.push(
      await startAndWait(o.cli, ['main', 'start', '--data', join(dir, 'main'), '--bind', '127.0.0.1'], /listening on/),
    );
    const env = { PALISADE_URL: init.url, PALISADE_API_KEY: init.adminApiKey, PALISADE_CA_CERT: init.caCertPath };
    const bundle = join(dir, 'host-demo-host.tar.gz');
    // --config-only: the demo runs its agents from this checkout, not from the release a full bundle carries.
    await cli(
      o.cli,
      ['installer', 'create', '--kind', 'host', '--name', 'demo-host', '--out', bundle, '--config-only'],
      env,
    );
    await cli(o.cli, ['agent', 'install', '--bundle', bundle, '--dir', join(dir, 'host')]);
    // Throwaway tenants: run as root, the host would make a system user for each, outliving the demo.
    const hostConfig = join(dir, 'host', 'agent.json');
    await writeFileAtomic(
      hostConfig,
      JSON.stringify({ ...(JSON.parse(await readFile(hostConfig, 'utf8')) as object), tenantUsers: false }, null, 2),
    );
    children.push(await startAndWait(o.cli, ['agent', 'start', '--dir', join(dir, 'host')], /connected to/, true));
    await seedTenants(env);
    // A stand-in for a service inside acme's network, reachable only through acme's engine.
    intranet = createHttpServer((_req, res) => res.end('acme intranet: reached through the engine tunnel\n'));
    await new Promise<void>((r) => intranet!.listen(0, '127.0.0.1', r));
    const intranetAt: HostPort = { host: '127.0.0.1', family: 4, port: (intranet.address() as { port: number }).port };
    const intranetText = formatHostPort(intranetAt.host, intranetAt.port);
    const engineBundle = join(dir, 'engine-acme-engine.tar.gz');
    await cli(
      o.cli,
      [
        ...['installer', 'create', '--kind', 'engine', '--name', 'acme-engine', '--tenant', 'acme'],
        ...['--out', engineBundle, '--config-only'],
      ],
      env,
    );
    const syslog = `udp:127.0.0.1:${await freeUdpPort()}`;
    const syslogTcp = `tcp:127.0.0.1:${await freePort(0)}`;
    await cli(o.cli, [
      ...['agent', 'install', '--bundle', engineBundle, '--dir', join(dir, 'engine')],
      ...['--allow', intranetText, '--syslog', syslog, '--syslog', syslogTcp],
    ]);
    const engine = spawnCli(o.cli, ['agent', 'start', '--dir', join(dir, 'engine')], true);
    children.push(engine);
    const tunnel = await openDemoTunnel(env, intranetText);
    return {
      dir,
      url: init.url,
      apiKey: init.adminApiKey,
      caCert: init.caCertPath,
      children,
      intranet: intranetAt,
      tunnel,
      syslog,
      syslogTcp,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Waits for the engine's session with acme, then opens an outbound tunnel to the intranet service. */
async function openDemoTunnel(
  env: { PALISADE_URL: string; PALISADE_API_KEY: string; PALISADE_CA_CERT: string },
  to: string,
): Promise<string> {
  const api = adminClient({ url: env.PALISADE_URL, apiKey: env.PALISADE_API_KEY, caCert: env.PALISADE_CA_CERT });
  for (let i = 0; i < 300; i++) {
    const r = await api.request<{ engines: unknown[] }>('GET', '/tenants/acme/api/tunnels');
    if (r.engines.length > 0) {
      const t = await api.request<{ listen: string }>('POST', '/tenants/acme/api/tunnels', {
        to,
        listen: '127.0.0.1:0',
      });
      return t.listen;
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new UnavailableError('ERR_DEMO_START', 'the demo engine did not get a session with tenant acme within 30 s');
}

const SAMPLE_INCIDENTS = [
  {
    name: 'Phishing email reported by finance',
    type: 'phishing',
    severity: 2,
    details: 'User forwarded a credential-harvesting link.',
  },
  {
    name: 'Impossible travel for admin account',
    type: 'identity',
    severity: 3,
    details: 'Logins from two continents within 10 minutes.',
  },
  {
    name: 'EDR: ransomware behaviour blocked',
    type: 'malware',
    severity: 4,
    details: 'Mass file renames stopped on a file server.',
  },
];

/** Two tenants with a few incidents each, so there is something to look at. */
async function seedTenants(env: {
  PALISADE_URL: string;
  PALISADE_API_KEY: string;
  PALISADE_CA_CERT: string;
}): Promise<void> {
  const api = adminClient({ url: env.PALISADE_URL, apiKey: env.PALISADE_API_KEY, caCert: env.PALISADE_CA_CERT });
  for (const [name, labels] of [
    ['acme', ['emea', 'gold']],
    ['globex', ['amer']],
  ] as const) {
    await api.request('POST', '/tenants', { name, host: 'demo-host', labels });
    await api.request('POST', `/tenants/${name}/api/incidents`, {
      items: SAMPLE_INCIDENTS.map((i) => ({ ...i, name: `${i.name} (${name})` })),
    });
  }
}
