/**
 * A raw protocol client for tests: opens `/agent/v1` with a given TLS identity and exchanges Envelopes
 * by hand, to check how main answers frames a real agent would never send.
 */
import WebSocket from 'ws';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeEnvelope, type Envelope } from '#common/codec.js';

export interface Identity {
  ca: string;
  cert?: string;
  key?: string;
}

export function identityOf(agentDir: string): Identity {
  return {
    ca: readFileSync(join(agentDir, 'ca.pem'), 'utf8'),
    cert: readFileSync(join(agentDir, 'pki', 'agent.pem'), 'utf8'),
    key: readFileSync(join(agentDir, 'pki', 'agent-key.pem'), 'utf8'),
  };
}

export interface RawConn {
  ws: WebSocket;
  frames: Envelope[];
  /** HTTP status when the upgrade was refused, and its Retry-After header. */
  refused?: number;
  retryAfter?: string;
  closed: Promise<{ code: number; reason: string }>;
  opened: Promise<boolean>;
}

/** `localAddress`: the loopback source address to connect from (Linux answers all of 127/8), e.g. 127.0.0.2. */
export function rawConnect(url: string, id: Identity, path = '/agent/v1', localAddress?: string): RawConn {
  const ws = new WebSocket(new URL(path, url), {
    ca: id.ca,
    cert: id.cert,
    key: id.key,
    perMessageDeflate: false,
    maxPayload: 4 * 1024 * 1024,
    localAddress,
  });
  const conn: RawConn = { ws, frames: [], closed: undefined as never, opened: undefined as never };
  conn.opened = new Promise((resolve) => {
    ws.once('open', () => resolve(true));
    ws.once('unexpected-response', (_req, res) => {
      conn.refused = res.statusCode;
      conn.retryAfter = res.headers['retry-after'];
      res.resume();
      resolve(false);
      ws.terminate();
    });
    ws.once('error', () => resolve(false));
  });
  conn.closed = new Promise((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  ws.on('message', (data) => {
    try {
      conn.frames.push(decodeEnvelope(data as Buffer, 8 * 1024 * 1024));
    } catch {
      /* tests look at frames only */
    }
  });
  ws.on('error', () => undefined);
  return conn;
}
