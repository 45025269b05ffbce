/**
 * The clients of the agents-1000 benchmark (bench/agents-1000.ts), all in the benchmark's process: a
 * simulated agent is a `ws` client with its own certificate and TLS session cache that does the real
 * Hello → Welcome handshake and then only heartbeats; a baseline client opens a plain `ws`, `ws` over TLS
 * or over mutual TLS and waits for one echo. Also the bounded pool that connects them, with retries
 * counted. Not the servers (main, bench/ws-baseline-server.ts) nor the agents' enrolment
 * (bench/agents-1000-fleet.ts).
 */
import { Agent as HttpsAgent } from 'node:https';
import type { SecureContext, TLSSocket } from 'node:tls';
import WebSocket from 'ws';
import { AgentKind, decodeEnvelope, encodeEnvelope } from '#common/codec.js';
import { deadline } from './bench-util.js';

/** A connection not admitted by then is retried (a hung one must not stall the benchmark). */
const CONNECT_DEADLINE_MS = 20_000;
/** Main drops a peer silent for 30 s (its default dead-peer timeout); a round can take longer under load. */
const HEARTBEAT_MS = 10_000;
const HEARTBEAT = Buffer.from(encodeEnvelope({ id: 2, heartbeat: { sentAtMs: 0 } }));

export interface SimAgent {
  name: string;
  ctx: SecureContext;
  tls: HttpsAgent;
  ws?: WebSocket;
}
export interface Holder {
  ws?: WebSocket;
}
export interface Counters {
  resumed: number;
  retries: number;
}

/** An empty TLS session cache: the agent's next connection is a full handshake, as from a cold start. */
export const freshSessionCache = () => new HttpsAgent({ maxCachedSessions: 2, keepAlive: false });

/** Every connected agent heartbeats until the timer is cleared, so main keeps them through a long round. */
export function startHeartbeats(agents: readonly SimAgent[]): NodeJS.Timeout {
  return setInterval(() => {
    for (const a of agents) if (a.ws?.readyState === WebSocket.OPEN) a.ws.send(HEARTBEAT);
  }, HEARTBEAT_MS);
}

/** Runs `fn` over items with at most `n` in flight; returns elapsed ms. */
export async function pool<T>(items: readonly T[], n: number, fn: (t: T) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
  return performance.now() - t0;
}

/** One attempt, then two more if the connection failed or stalled (counted: a retry is part of the cost). */
export async function withRetries(c: Counters, h: Holder, attempt: () => Promise<void>): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      return await deadline(attempt(), CONNECT_DEADLINE_MS, 'connection');
    } catch (e) {
      h.ws?.terminate();
      if (i >= 2) throw e;
      c.retries++;
    }
  }
}

export function connectPalisade(url: string, a: SimAgent, c: Counters): Promise<void> {
  return new Promise((resolve, reject) => {
    // A prepared secure context per agent: parsing PEM keys per connection would make the clients the bottleneck.
    // The agent's own https.Agent caches its TLS session, as agent/main-connection.ts does.
    const ws = new WebSocket(`${url}/agent/v1`, {
      agent: a.tls,
      secureContext: a.ctx,
      perMessageDeflate: false,
    } as WebSocket.ClientOptions);
    a.ws = ws;
    ws.on('error', reject); // after the Welcome a late error (main going away) rejects nothing: the promise is settled
    ws.once('upgrade', (res) => {
      if ((res.socket as TLSSocket).isSessionReused()) c.resumed++;
    });
    ws.once('unexpected-response', (_q, res) => {
      reject(new Error(`HTTP ${res.statusCode}`));
      ws.terminate();
    });
    ws.once('open', () =>
      ws.send(
        encodeEnvelope({
          id: 1,
          hello: {
            protocolMajor: 1,
            protocolMinor: 0,
            agentVersion: 'bench',
            kind: AgentKind.AGENT_KIND_HOST,
            name: a.name,
          },
        }),
      ),
    );
    ws.once('message', (d) => (decodeEnvelope(d as Buffer).welcome ? resolve() : reject(new Error('no Welcome'))));
    ws.once('close', (code) => reject(new Error(`closed ${code} before Welcome`)));
  });
}

export function connectPlain(url: string, ctx: SecureContext | undefined, h: Holder): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { secureContext: ctx, perMessageDeflate: false } as WebSocket.ClientOptions);
    h.ws = ws;
    ws.on('error', reject);
    ws.once('open', () => ws.send(Buffer.alloc(32)));
    ws.once('message', () => resolve());
    ws.once('close', (code) => reject(new Error(`closed ${code} before the echo`)));
  });
}

export async function closeAll(xs: readonly Holder[]): Promise<void> {
  await Promise.all(
    xs.map(
      (x) =>
        new Promise<void>((r) => {
          if (!x.ws || x.ws.readyState === WebSocket.CLOSED) return r();
          x.ws.once('close', () => r());
          x.ws.terminate();
        }),
    ),
  );
}
