/**
 * Baseline server for bench/agents-1000: a plain `ws` server (or `ws` over TLS with `--tls KEY CERT`)
 * that accepts connections and answers each first message once — the least a WebSocket endpoint can do.
 * Run as its own process so its memory is measured alone; prints its port.
 */
import { createServer as createHttp } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { readFileSync } from 'node:fs';
import { WebSocketServer } from 'ws';
import { tlsProfile } from '#common/tls-profile.js';

const tlsAt = process.argv.indexOf('--tls');
const server = tlsAt > 0
  ? createHttps({ key: readFileSync(process.argv[tlsAt + 1]), cert: readFileSync(process.argv[tlsAt + 2]), ...tlsProfile() })
  : createHttp();
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false, maxPayload: 1024 * 1024 });
wss.on('connection', (ws) => ws.once('message', (d) => ws.send(d as Buffer)));
server.listen(0, '127.0.0.1', () => process.stdout.write(`port ${(server.address() as { port: number }).port}\n`));
process.on('SIGTERM', () => process.exit(0));
