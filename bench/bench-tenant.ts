/**
 * A standalone tenant process for the benchmarks that measure one tenant (tenant-ingest, playbook-runs): its
 * directory written as a host's supervisor writes it (tunnel key pair, tenant.json with a main key made here),
 * `tenant-main.js` spawned on a free loopback port, and requests signed by that main key as main's relay sends
 * them. Not a host: no supervisor restarts it, no IPC (the tenant runs without a host, as tenant-main allows).
 */
import { generateKeyPairSync } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { Agent, request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nacl from 'tweetnacl';
import { bodyHash, signRequest, AUTH_HEADER, SIGNATURE_HEADER } from '#common/signed-request.js';
import { freePort } from '../test/harness/processes.js';

const TENANT_MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'agent', 'tenant', 'tenant-main.js');

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const up = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1', () => {
        s.end();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`tenant did not listen on ${port}`);
}

export interface TenantReply {
  status: number;
  body: string;
}

export interface BenchTenant {
  port: number;
  child: ChildProcess;
  /** One request signed as main's relay signs it, by an admin; the body as bytes (the relay sends bytes too). */
  send(method: string, path: string, body?: Buffer, contentType?: string): Promise<TenantReply>;
  /** A JSON request that must answer `status`; its parsed answer. */
  json<T>(method: string, path: string, body: unknown, status: number): Promise<T>;
  /** SIGTERM, wait for the exit, drop the kept-alive sockets. */
  stop(): Promise<void>;
}

/**
 * Starts tenant `name` in `dir` (created). `nodeFlags`: Node flags before BENCH_NODE_ARGS (e.g. the host's own
 * for tenants); `env`: the process's environment; `sockets`: keep-alive sockets for concurrent requests.
 */
export async function startBenchTenant(o: {
  dir: string;
  name: string;
  nodeFlags?: readonly string[];
  env?: NodeJS.ProcessEnv;
  sockets?: number;
}): Promise<BenchTenant> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const mainPublicKey = Buffer.from((publicKey.export({ format: 'jwk' }) as { x: string }).x, 'base64url').toString(
    'base64',
  );
  await mkdir(o.dir, { recursive: true });
  const port = await freePort();
  // As the host's supervisor writes them: the tenant's tunnel key pair (needed at start) and its config.
  const kp = nacl.box.keyPair();
  const boxPublicKey = Buffer.from(kp.publicKey).toString('base64');
  const secretKey = Buffer.from(kp.secretKey).toString('base64');
  await writeFile(
    join(o.dir, 'tenant-key.json'),
    JSON.stringify({ alg: 'nacl-box', publicKey: boxPublicKey, secretKey }),
    {
      mode: 0o600,
    },
  );
  const createdAt = new Date().toISOString();
  await writeFile(
    join(o.dir, 'tenant.json'),
    JSON.stringify({ name: o.name, port, mainPublicKey, publicKey: boxPublicKey, createdAt }),
  );
  const benchArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...(o.nodeFlags ?? []), ...benchArgs, TENANT_MAIN, '--dir', o.dir], {
    stdio: 'ignore',
    ...(o.env ? { env: o.env } : {}),
  });
  const agent = new Agent({ keepAlive: true, maxSockets: o.sockets ?? 4 });
  const send = (method: string, path: string, body?: Buffer, contentType = 'application/json') => {
    const s = signRequest(privateKey, {
      tenant: o.name,
      method,
      path,
      bodySha256: bodyHash(body),
      user: { id: 'u', name: 'bench', roles: ['admin'] },
    });
    const headers = {
      [AUTH_HEADER]: s.auth,
      [SIGNATURE_HEADER]: s.signature,
      ...(body ? { 'content-type': contentType, 'content-length': body.length } : {}),
    };
    return new Promise<TenantReply>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method, agent, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.end(body);
    });
  };
  const stop = async () => {
    await new Promise<void>((r) => {
      if (child.exitCode !== null || child.signalCode !== null) r();
      else {
        child.once('exit', () => r());
        child.kill('SIGTERM');
      }
    });
    agent.destroy();
  };
  try {
    await waitForPort(port);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    port,
    child,
    send,
    stop,
    json: async <T>(method: string, path: string, body: unknown, status: number) => {
      const r = await send(method, path, body === undefined ? undefined : Buffer.from(JSON.stringify(body)));
      if (r.status !== status) throw new Error(`${method} ${path}: ${r.status} ${r.body.slice(0, 300)}`);
      return JSON.parse(r.body) as T;
    },
  };
}
