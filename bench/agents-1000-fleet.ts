/**
 * The fleet of the agents-1000 benchmark (bench/agents-1000.ts): a fresh main data directory whose registry
 * already holds `n` host agents, written as enrolment writes them (one RSA key shared, a certificate and
 * serial each, signed by main's CA), and for each a prepared client TLS context, so the rounds measure
 * admission and not enrolment. Set-up only: the clients that use these contexts are in
 * bench/agents-1000-clients.ts.
 */
import { mkdtemp, readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createCsr, generateRsaKeyPem, signAgentCsr } from '#common/pki.js';
import { tlsProfile } from '#common/tls-profile.js';
import { initMain } from '../main/init.js';
import { Registry } from '../main/registry.js';
import { freePort } from '../test/harness/processes.js';
import { freshSessionCache, type SimAgent } from './agents-1000-clients.js';

/** initMain, then register `n` agents straight into the registry exactly as main/enrolment/enrolment.ts does. */
export async function enrolFleet(n: number) {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-1000-'));
  const data = join(dir, 'main');
  const port = await freePort(); // fixed from here on: agents reconnect to the same address after the restart
  await initMain({ data, hostname: '127.0.0.1', port });
  const pki = join(data, 'pki');
  const [caPem, caKey] = await Promise.all([
    readFile(join(pki, 'ca.pem'), 'utf8'),
    readFile(join(pki, 'ca-key.pem'), 'utf8'),
  ]);
  const key = await generateRsaKeyPem();
  const csr = createCsr(key, 'bench');
  const registry = new Registry(join(data, 'registry'));
  await registry.open();
  const agents: SimAgent[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const id = `hst_${randomBytes(8).toString('hex')}`;
      const name = `sim-${i}`;
      const issued = signAgentCsr({ certPem: caPem, keyPem: caKey }, csr, id);
      await registry.db.batch([
        {
          type: 'put',
          sublevel: registry.agents,
          key: id,
          value: {
            id,
            name,
            kind: 'host',
            certSerial: issued.serial,
            fingerprint: issued.fingerprint,
            enrolledAt: new Date().toISOString(),
          },
        },
        { type: 'put', sublevel: registry.agentNames, key: `host:${name}`, value: id },
        { type: 'put', sublevel: registry.certSerials, key: issued.serial, value: id },
      ] as never);
      agents.push({
        name,
        ctx: createSecureContext({ cert: issued.certPem, key, ca: caPem, ...tlsProfile() }),
        tls: freshSessionCache(),
      });
    }
  } finally {
    await registry.close();
  }
  return { dir, data, pki, port, caPem, agents };
}
