/**
 * Baseline server for bench/agents-1000: a plain `ws` server, or `ws` over TLS with `--tls KEY CERT`
 * (main's server certificate and TLS profile), or mutual TLS with `--tls KEY CERT --ca CA` (client
 * certificates required and verified, as main's agent endpoint does). It accepts connections and answers
 * each one's first message once — the least a WebSocket endpoint can do, no protocol, no registry.
 * Run as its own process so its memory is measured alone; prints its port.
 */
import { createServer as createHttp } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { readFileSync } from 'node:fs';
import { WebSocketServer } from 'ws';
import { tlsProfile } from '#common/tls-profile.js';

const arg = (flag: string, i = 1) => {
  const at = process.argv.indexOf(flag);
  return at > 0 ? process.argv[at + i] : undefined;
};
const key = arg('--tls'),
  cert = arg('--tls', 2),
  ca = arg('--ca');
const server =
  key && cert
    ? createHttps({
        key: readFileSync(key),
        cert: readFileSync(cert),
        ...(ca ? { ca: readFileSync(ca), requestCert: true, rejectUnauthorized: true } : {}),
        ...tlsProfile(),
      })
    : createHttp();
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false, maxPayload: 1024 * 1024 });
wss.on('connection', (ws) => ws.once('message', (d) => ws.send(d as Buffer)));
server.listen(0, '127.0.0.1', () => process.stdout.write(`port ${(server.address() as { port: number }).port}\n`));
process.on('SIGTERM', () => process.exit(0));
