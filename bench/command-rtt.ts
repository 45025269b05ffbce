/**
 * Command round trip main → agent → main (P3 of docs/benchmarks.md), p50/p99, all in this process on loopback.
 * Subjects, on a real main (startMain) and a real host agent (startAgent) enrolled through a bundle:
 *  - durable: `outbox.enqueue` + `outbox.wait` of `ping` — LevelDB batch before the send, the agent's
 *    dedupe write, the result batch: the core command path;
 *  - http: what an admin sees, POST /api/v1/hosts/bench-host/commands {command:'ping'} over keep-alive HTTPS;
 *  - rpc: a volatile command (`tenant.list`, the path relayed tenant requests take): no LevelDB at all.
 * Baselines in the same run and process, with the same TLS profile and mutual TLS: raw Node `tls`
 * ping-pong (P3's baseline) and a bare `ws`-over-TLS echo, both exchanging frames the size of a
 * ping Command and its Result. Rounds interleave every subject (order rotated); medians of the rounds.
 * Not a test: nothing here asserts on time.
 */
import { createServer as createTlsServer, connect as tlsConnect, type TLSSocket } from 'node:tls';
import { createServer as createHttpsServer, Agent as HttpsAgent, request } from 'node:https';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WebSocketServer, WebSocket } from 'ws';
import { tlsProfile } from '#common/tls-profile.js';
import { agentPaths } from '#common/agent-dir.js';
import { encodeEnvelope, jsonBytes } from '#common/codec.js';
import { inProcessDeployment, median, ms, percentile, rotated, type BenchRow } from './bench-util.js';

const N = Number(process.env.PALISADE_BENCH_RTT_N ?? 2000);
const WARMUP = 300;
const REPLY_DEADLINE_MS = 15_000;
const ROUNDS = 3;
/** What travels in the subjects: a ping Command down, its Result up. */
const COMMAND_FRAME = Buffer.from(
  encodeEnvelope({ id: 123_456, command: { name: 'ping', args: jsonBytes({}), deadlineMs: Date.now() + 3_600_000 } }),
);
const RESULT_FRAME = Buffer.from(
  encodeEnvelope({
    replyTo: 123_456,
    result: {
      ok: true,
      value: jsonBytes({ pong: true, agent: 'bench-host', kind: 'host', at: new Date().toISOString() }),
    },
  }),
);

interface Pki {
  serverKey: string;
  serverCert: string;
  ca: string;
  clientKey: string;
  clientCert: string;
}
interface Subject {
  once(): Promise<void>;
  close(): void;
}

/** n timed round trips, one after another; a watchdog (no timer per sample) stops a stalled run. */
async function sample(n: number, once: () => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  let progressAt = Date.now();
  let stall!: (e: Error) => void;
  const stalled = new Promise<never>((_, reject) => {
    stall = reject;
  });
  stalled.catch(() => undefined);
  const watchdog = setInterval(() => {
    if (Date.now() - progressAt > REPLY_DEADLINE_MS) stall(new Error(`no reply within ${REPLY_DEADLINE_MS} ms`));
  }, 1000);
  try {
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await Promise.race([once(), stalled]);
      out.push(performance.now() - t0);
      progressAt = Date.now();
    }
  } finally {
    clearInterval(watchdog);
  }
  return out;
}

/** Server options as main's listener has them: profile, client certificate requested and checked against the CA. */
const serverTls = (p: Pki) => ({
  key: p.serverKey,
  cert: p.serverCert,
  ca: p.ca,
  requestCert: true,
  rejectUnauthorized: false,
  ...tlsProfile(),
});
const clientTls = (p: Pki) => ({
  ca: p.ca,
  cert: p.clientCert,
  key: p.clientKey,
  servername: 'localhost',
  ...tlsProfile(),
});

async function tlsPingPong(p: Pki): Promise<Subject> {
  const server = createTlsServer(serverTls(p), (s) => {
    s.setNoDelay(true);
    s.on('data', () => s.write(RESULT_FRAME));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const sock: TLSSocket = await new Promise((r, j) => {
    const s = tlsConnect({ port, host: '127.0.0.1', ...clientTls(p) }, () => r(s)).once('error', j);
  });
  sock.setNoDelay(true);
  // A Result-sized reply arrives as one TLS record, hence one 'data' event.
  const once = () =>
    new Promise<void>((r) => {
      sock.once('data', () => r());
      sock.write(COMMAND_FRAME);
    });
  return {
    once,
    close: () => {
      sock.destroy();
      server.close();
    },
  };
}

async function wsEcho(p: Pki): Promise<Subject> {
  const https = createHttpsServer(serverTls(p));
  const wss = new WebSocketServer({ server: https, perMessageDeflate: false, maxPayload: 1024 * 1024 + 64 * 1024 });
  wss.on('connection', (ws) => ws.on('message', () => ws.send(RESULT_FRAME)));
  await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
  const port = (https.address() as { port: number }).port;
  const ws = new WebSocket(`wss://localhost:${port}`, { ...clientTls(p), perMessageDeflate: false });
  await new Promise((r, j) => ws.once('open', r).once('error', j));
  const once = () =>
    new Promise<void>((r) => {
      ws.once('message', () => r());
      ws.send(COMMAND_FRAME);
    });
  return {
    once,
    close: () => {
      ws.close();
      wss.close();
      https.close();
    },
  };
}

function adminPing(url: string, apiKey: string, ca: string): Subject {
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca });
  const once = () =>
    new Promise<void>((resolve, reject) => {
      const req = request(
        `${url}/api/v1/hosts/bench-host/commands`,
        { method: 'POST', agent, headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end('{"command":"ping"}');
    });
  return { once, close: () => agent.destroy() };
}

type Name = 'tls' | 'ws' | 'durable' | 'http' | 'rpc';
const LABEL: Record<Name, string> = {
  tls: 'raw TLS ping-pong',
  ws: 'ws-over-TLS echo',
  durable: 'durable outbox',
  http: 'admin HTTPS',
  rpc: 'volatile RPC',
};

export async function runCommandRtt(): Promise<BenchRow[]> {
  const dep = await inProcessDeployment();
  const subjects: Partial<Record<Name, Subject>> = {};
  try {
    const s = dep.main.services;
    const pkiDir = join(dep.dir, 'main', 'pki');
    const ap = agentPaths(dep.agentDir);
    const [serverKey, serverCert, ca, clientKey, clientCert] = await Promise.all(
      [join(pkiDir, 'server-key.pem'), join(pkiDir, 'server.pem'), join(pkiDir, 'ca.pem'), ap.key, ap.cert].map((f) =>
        readFile(f, 'utf8'),
      ),
    );
    const pki: Pki = { serverKey, serverCert, ca, clientKey, clientCert };
    const agentRec = (await s.registry.agentByName('host', 'bench-host'))!;
    subjects.tls = await tlsPingPong(pki);
    subjects.ws = await wsEcho(pki);
    subjects.durable = {
      once: async () => {
        const c = await s.outbox.enqueue(agentRec, { name: 'ping', args: {}, createdBy: 'bench', deadlineMs: 60_000 });
        const r = await s.outbox.wait(c.id, 10_000);
        if (r.state !== 'done') throw new Error(`ping ${r.state}`);
      },
      close: () => undefined,
    };
    subjects.http = adminPing(dep.main.url, dep.adminApiKey, ca);
    subjects.rpc = {
      once: async () => {
        await s.tenants.rpc.call(agentRec.id, '', 'tenant.list', {}, 10_000);
      },
      close: () => undefined,
    };

    const names = Object.keys(subjects) as Name[];
    for (const n of names) await sample(WARMUP, subjects[n]!.once); // JIT, keep-alive, LevelDB memtables
    const p50 = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<Name, number[]>;
    const p99 = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<Name, number[]>;
    for (let r = 0; r < ROUNDS; r++) {
      for (const n of rotated(names, r)) {
        const xs = await sample(N, subjects[n]!.once);
        p50[n].push(percentile(xs, 50));
        p99[n].push(percentile(xs, 99));
      }
    }
    const row = (
      name: Name,
      base: Name,
      p: 'p50' | 'p99',
      target: string,
      figure = `command RTT, ${LABEL[name]} (ping)`,
    ): BenchRow => {
      const src = p === 'p50' ? p50 : p99;
      return {
        figure: `${figure} ${p}`,
        value: ms(median(src[name])),
        baseline: `${LABEL[base]} ${ms(median(src[base]))}`,
        ratio: median(src[name]) / median(src[base]),
        target,
      };
    };
    return [
      row('durable', 'tls', 'p50', '≤ 1.10×', 'P3 command RTT, durable outbox (enqueue+wait ping)'),
      row('durable', 'tls', 'p99', '≤ 1.25×', 'P3 command RTT, durable outbox (enqueue+wait ping)'),
      row('durable', 'ws', 'p50', '(report)'),
      row('durable', 'ws', 'p99', '(report)'),
      row('http', 'ws', 'p50', '(report)', 'admin POST …/commands ping, keep-alive HTTPS'),
      row('http', 'ws', 'p99', '(report)', 'admin POST …/commands ping, keep-alive HTTPS'),
      row('rpc', 'tls', 'p50', '≤ 1.10×', 'P3 command RTT, volatile RPC (tenant.list)'),
      row('rpc', 'tls', 'p99', '≤ 1.25×', 'P3 command RTT, volatile RPC (tenant.list)'),
      row('ws', 'tls', 'p50', '(context)', 'ws-over-TLS echo'),
      row('ws', 'tls', 'p99', '(context)', 'ws-over-TLS echo'),
    ];
  } finally {
    for (const x of Object.values(subjects)) x.close();
    await dep.close();
  }
}
