/**
 * An admin brings their own server certificate (`main init --cert --key`): main serves it, agents
 * enrolled from its bundles trust it through the chain in the bundle, and bad pairs are refused.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { createCa, issueServerCert, generateRsaKeyPem } from '#common/pki.js';
import { Proc, freePort, runCli, tempDir, until } from '../harness/processes.js';

const procs: Proc[] = [];
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function peerIssuer(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', ca, servername: 'localhost' }, () => {
      resolve(String(s.getPeerCertificate().issuer.CN));
      s.end();
    });
    s.on('error', reject);
  });
}

describe('own server certificate', () => {
  it('refuses --cert without --key, and a key that does not match', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const adminCa = await createCa('Admin CA');
    const server = await issueServerCert(adminCa, ['localhost', '127.0.0.1']);
    await writeFile(join(dir, 'cert.pem'), server.certPem);
    await writeFile(join(dir, 'other-key.pem'), await generateRsaKeyPem());
    const half = await runCli(['main', 'init', '--data', join(dir, 'a'), '--cert', join(dir, 'cert.pem'), '--json']);
    expect(half.code).toBe(2);
    expect((half.json as { error: { code: string } }).error.code).toBe('ERR_INIT_CERT_PAIR');
    const wrong = await runCli([
      'main',
      'init',
      '--data',
      join(dir, 'b'),
      '--cert',
      join(dir, 'cert.pem'),
      '--key',
      join(dir, 'other-key.pem'),
      '--json',
    ]);
    expect(wrong.code).toBe(2);
    expect((wrong.json as { error: { code: string } }).error.code).toBe('ERR_INIT_CERT_INVALID');
  });

  it('serves the brought certificate, and a host agent enrols and connects through the chain in its bundle', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const adminCa = await createCa('Admin CA');
    const server = await issueServerCert(adminCa, ['localhost', '127.0.0.1']);
    await writeFile(join(dir, 'chain.pem'), server.certPem + adminCa.certPem);
    await writeFile(join(dir, 'key.pem'), server.keyPem);
    await writeFile(join(dir, 'admin-ca.pem'), adminCa.certPem);
    const port = await freePort();
    const init = await runCli([
      'main',
      'init',
      '--data',
      join(dir, 'main'),
      '--hostname',
      '127.0.0.1',
      '--port',
      String(port),
      '--cert',
      join(dir, 'chain.pem'),
      '--key',
      join(dir, 'key.pem'),
      '--json',
    ]);
    expect(init.code, init.stdout + init.stderr).toBe(0);
    const { adminApiKey, url } = init.json as { adminApiKey: string; url: string };
    const main = new Proc('main', ['main', 'start', '--data', join(dir, 'main'), '--bind', '127.0.0.1']);
    procs.push(main);
    await main.waitFor(/listening on/);
    expect(await peerIssuer(port, adminCa.certPem)).toBe('Admin CA');
    const env = { PALISADE_URL: url, PALISADE_API_KEY: adminApiKey, PALISADE_CA_CERT: join(dir, 'admin-ca.pem') };
    const bundle = join(dir, 'h.tar.gz');
    expect(
      (await runCli(['installer', 'create', '--kind', 'host', '--name', 'byo', '--out', bundle, '--json'], env)).code,
    ).toBe(0);
    expect((await runCli(['agent', 'install', '--bundle', bundle, '--dir', join(dir, 'agent'), '--json'])).code).toBe(
      0,
    );
    const agent = new Proc('agent', ['agent', 'start', '--dir', join(dir, 'agent')]);
    procs.push(agent);
    await agent.waitFor(/connected to/);
    await until(
      'host online',
      async () => ((await runCli(['hosts', '--json'], env)).json as { status: string }[])[0]?.status === 'online',
    );
  });
});
