/**
 * Command round trip main → agent → main (DESIGN §8 P3), p50/p99, against raw Node TLS ping-pong and a
 * bare `ws`-over-TLS echo with the same TLS profile, all in this process, rounds interleaved.
 * Three Palisade paths: the durable outbox (LevelDB write before send, result stored, agent dedupe),
 * a volatile RPC (what relayed tenant requests use), and the admin's HTTPS call that waits for a ping.
 */
import { createServer as createTlsServer, connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Agent as HttpsAgent, request } from 'node:https';
import { WebSocketServer, WebSocket } from 'ws';
import { tlsProfile } from '#common/tls-profile.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inProcessDeployment, median, ms, percentile, type BenchRow } from './bench-util.js';

const N = 2000;
const ROUNDS = 3;
const FRAME = Buffer.alloc(64, 1);

async function sample(n: number, once: () => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await once();
    out.push(performance.now() - t0);
  }
  return out;
}

async function tlsPingPong(key: string, cert: string, ca: string) {
  const server = createTlsServer({ key, cert, ...tlsProfile() }, (s) => s.on('data', (d) => s.write(d)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const sock: TLSSocket = await new Promise((r) => { const s = tlsConnect({ port, host: '127.0.0.1', ca, servername: 'localhost' }, () => r(s)); });
  sock.setNoDelay(true);
  const once = () => new Promise<void>((r) => { sock.once('data', () => r()); sock.write(FRAME); });
  return { once, close: () => { sock.destroy(); server.close(); } };
}

async function wsEcho(key: string, cert: string, ca: string) {
  const { createServer } = await import('node:https');
  const https = createServer({ key, cert, ...tlsProfile() });
  const wss = new WebSocketServer({ server: https, perMessageDeflate: false });
  wss.on('connection', (ws) => ws.on('message', (d) => ws.send(d as Buffer)));
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  const port = (https.address() as { port: number }).port;
  const ws = new WebSocket(`wss://localhost:${port}`, { ca, perMessageDeflate: false });
  await new Promise((r) => ws.once('open', r));
  const once = () => new Promise<void>((r) => { ws.once('message', () => r()); ws.send(FRAME); });
  return { once, close: () => { ws.close(); wss.close(); https.close(); } };
}

export async function runCommandRtt(): Promise<BenchRow[]> {
  const dep = await inProcessDeployment();
  const s = dep.main.services;
  const data = join(dep.dir, 'main', 'pki');
  const [key, cert, ca] = await Promise.all(['server-key.pem', 'server.pem', 'ca.pem'].map((f) => readFile(join(data, f), 'utf8')));
  const tls = await tlsPingPong(key, cert, ca);
  const ws = await wsEcho(key, cert, ca);
  const agentRec = (await s.registry.agentByName('host', 'bench-host'))!;
  const durable = async () => {
    const c = await s.outbox.enqueue(agentRec, { name: 'ping', args: {}, createdBy: 'bench', deadlineMs: 60_000 });
    const r = await s.outbox.wait(c.id, 10_000);
    if (r.state !== 'done') throw new Error(`ping ${r.state}`);
  };
  const rpc = async () => { await s.tenants.rpc.call(agentRec.id, '', 'tenant.list', {}, 10_000); };
  const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca });
  const apiKey = (await s.registry.users.values().all())[0];
  void apiKey;
  const { createApiKey } = await import('../main/api-keys.js');
  const token = (await createApiKey(s.registry, (await s.registry.users.values().all())[0].id)).token;
  const http = () => new Promise<void>((resolve, reject) => {
    const req = request(`${dep.main.url}/api/v1/hosts/bench-host/commands`, { method: 'POST', agent: httpsAgent, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end('{"command":"ping"}');
  });

  const subjects = { tls: tls.once, ws: ws.once, durable, rpc, http } as const;
  type Name = keyof typeof subjects;
  for (const f of Object.values(subjects)) await sample(200, f); // warm-up
  const p50: Record<Name, number[]> = { tls: [], ws: [], durable: [], rpc: [], http: [] };
  const p99: Record<Name, number[]> = { tls: [], ws: [], durable: [], rpc: [], http: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of Object.keys(subjects) as Name[]) {
      const xs = await sample(name === 'http' ? N / 4 : N, subjects[name]);
      p50[name].push(percentile(xs, 50));
      p99[name].push(percentile(xs, 99));
    }
  }
  tls.close(); ws.close(); httpsAgent.destroy();
  await dep.close();
  const row = (figure: string, name: Name, base: Name, p: 'p50' | 'p99', target: string): BenchRow => {
    const src = p === 'p50' ? p50 : p99;
    return { figure: `${figure} ${p}`, value: ms(median(src[name])), baseline: `${base === 'tls' ? 'raw TLS ping-pong' : 'ws-over-TLS echo'} ${ms(median(src[base]))}`, ratio: median(src[name]) / median(src[base]), target };
  };
  return [
    row('P3 command RTT, volatile RPC', 'rpc', 'tls', 'p50', '≤ 1.10×'),
    row('P3 command RTT, volatile RPC', 'rpc', 'tls', 'p99', '≤ 1.25×'),
    row('command RTT, volatile RPC vs ws echo', 'rpc', 'ws', 'p50', '(issue 2: report)'),
    row('command RTT, durable outbox', 'durable', 'ws', 'p50', '(issue 2: report)'),
    row('command RTT, durable outbox', 'durable', 'ws', 'p99', '(issue 2: report)'),
    row('admin HTTPS ping (POST …/commands, waits)', 'http', 'ws', 'p50', '(report)'),
    row('ws-over-TLS echo vs raw TLS', 'ws', 'tls', 'p50', '(context)'),
  ];
}
