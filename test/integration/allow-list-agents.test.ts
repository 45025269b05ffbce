/**
 * The engine's allow-list agents with real sockets: an HTTPS request to a name is dialled at the address the
 * allow-list approved and still verified against the name (SNI and certificate); a destination outside the list fails
 * the request with the allow-list's error before any connection is made, and is reported once however often it is
 * asked for.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookup } from 'node:dns/promises';
import { createServer, get, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createCa, issueServerCert } from '#common/pki.js';
import { AllowList } from '../../agent/engine/allow-list.js';
import { AllowListAgents } from '../../agent/engine/allow-list-agents.js';

let server: Server;
let ca: string;
let address = '';
const seen: { servername?: string }[] = [];

const getVia = (agents: AllowListAgents, url: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = get(url, { agent: agents.httpsAgent, ca }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
  });

beforeAll(async () => {
  const authority = await createCa('allow-list agents test CA');
  const leaf = await issueServerCert(authority, ['localhost']);
  ca = authority.certPem;
  address = (await lookup('localhost')).address; // 127.0.0.1 or ::1, whichever this machine answers first
  server = createServer({ key: leaf.keyPem, cert: leaf.certPem }, (req, res) => {
    seen.push({ servername: (req.socket as { servername?: string }).servername });
    res.end('inside');
  });
  await new Promise<void>((r) => server.listen(0, address, r));
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('allow-list agents', () => {
  it('dial the approved address and verify TLS against the name asked for', async () => {
    const port = (server.address() as AddressInfo).port;
    const reported: string[] = [];
    const agents = new AllowListAgents(new AllowList([`localhost:${port}`]), (t) => reported.push(t));
    try {
      expect(await getVia(agents, `https://localhost:${port}/`)).toEqual({ status: 200, body: 'inside' });
      expect(seen.at(-1)).toEqual({ servername: 'localhost' });
      expect(reported).toEqual([]);
      expect(agents.refusal).toBeUndefined();
    } finally {
      agents.destroy();
    }
  });

  it('refuse a destination outside the list before connecting, and report it once', async () => {
    const port = (server.address() as AddressInfo).port;
    const before = seen.length;
    const reported: string[] = [];
    const agents = new AllowListAgents(new AllowList([`localhost:${port + 1}`]), (t) => reported.push(t));
    try {
      for (let i = 0; i < 2; i++)
        await expect(getVia(agents, `https://localhost:${port}/`)).rejects.toMatchObject({
          code: 'ERR_TUNNEL_NOT_ALLOWED',
          message: `destination localhost:${port} is not in this engine's allow-list`,
        });
      expect(reported).toEqual([`localhost:${port}`]);
      expect(agents.refusal?.code).toBe('ERR_TUNNEL_NOT_ALLOWED');
      expect(seen).toHaveLength(before);
    } finally {
      agents.destroy();
    }
  });
});
