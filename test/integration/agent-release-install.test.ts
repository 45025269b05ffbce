/**
 * An agent bringing in a release (agent/upgrade/release-install.ts) against a real HTTPS server that
 * wants the agent's client certificate, on real files: a tampered archive or one main did not sign is
 * refused before anything under releases/ changes and `current` stays where it was; a good one is unpacked,
 * recorded in upgrade.json and swapped in, while `committed` (the launcher's) stays on the old release.
 */
import { generateKeyPairSync, createHash, sign } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { releaseStatement, type UpgradeArgs } from '#common/agent-release.js';
import { createCa, createCsr, generateRsaKeyPem, issueServerCert, signAgentCsr } from '#common/pki.js';
import { installUpgrade, type AgentTls } from '../../agent/upgrade/release-install.js';
import { installPaths, linkedVersion, pointAt, readPending } from '../../agent/upgrade/release-files.js';

let dir = '';
let server: Server;
let url = '';
let tls: AgentTls;
/** What the server answers for any release: set by each test. */
let served = Buffer.alloc(0);
let archive = Buffer.alloc(0);
const mainKey = generateKeyPairSync('ed25519');
const otherKey = generateKeyPairSync('ed25519');
const mainPublic = Buffer.from(mainKey.publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('base64');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-release-test-'));
  const src = join(dir, 'src-B');
  await mkdir(join(src, 'app'), { recursive: true });
  await writeFile(join(src, 'release.json'), JSON.stringify({ version: 'B', node: 'v24.0.0' }));
  await writeFile(join(src, 'app', 'palisade-agent.mjs'), 'process.exit(0);\n');
  await tar.c({ gzip: true, cwd: src, file: join(dir, 'B.tar.gz'), portable: true }, ['.']);
  archive = await readFile(join(dir, 'B.tar.gz'));

  const ca = await createCa('test CA');
  const serverCert = await issueServerCert(ca, ['127.0.0.1']);
  const agentKey = await generateRsaKeyPem();
  const agentCert = signAgentCsr(ca, createCsr(agentKey, 'agent'), 'a-1');
  tls = { ca: ca.certPem, cert: agentCert.certPem, key: agentKey };
  server = createServer(
    { key: serverCert.keyPem, cert: serverCert.certPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
    (req, res) => {
      res.writeHead(req.url === '/agent/v1/releases/B' ? 200 : 404, { 'content-type': 'application/gzip' });
      res.end(req.url === '/agent/v1/releases/B' ? served : undefined);
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((r) => server?.close(r));
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A fresh install at release A (current and committed), as the installer leaves it. */
async function installAtA(name: string) {
  const paths = installPaths(join(dir, name));
  await mkdir(join(paths.releases, 'A'), { recursive: true });
  await mkdir(paths.state, { recursive: true });
  await writeFile(join(paths.releases, 'A', 'release.json'), JSON.stringify({ version: 'A' }));
  await pointAt(paths.current, 'A');
  await pointAt(paths.committed, 'A');
  return paths;
}

function argsFor(bytes: Buffer, key = mainKey): UpgradeArgs {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return {
    version: 'B',
    sha256,
    size: bytes.length,
    signature: sign(null, releaseStatement('B', sha256, bytes.length), key.privateKey).toString('base64'),
    attempt: '00112233aabbccdd',
    deadlineMs: 60_000,
  };
}

async function expectUntouched(paths: ReturnType<typeof installPaths>): Promise<void> {
  expect(await linkedVersion(paths.current)).toBe('A');
  expect(await linkedVersion(paths.committed)).toBe('A');
  expect(await readdir(paths.releases)).toEqual(['A']); // no B, no B.partial, no download left behind
  expect(await readPending(paths)).toBeUndefined();
}

describe('installUpgrade', () => {
  it('refuses a tampered archive (one byte changed in transit) and swaps nothing', async () => {
    const paths = await installAtA('tampered');
    served = Buffer.from(archive);
    served[served.length >> 1] ^= 0x01;
    const p = installUpgrade({
      paths,
      args: argsFor(archive),
      from: 'A',
      mainUrl: url,
      tls,
      signingPublicKey: mainPublic,
    });
    await expect(p).rejects.toMatchObject({ code: 'ERR_RELEASE_DIGEST' });
    await expectUntouched(paths);
  });

  it('refuses an archive signed by a key other than main’s and swaps nothing', async () => {
    const paths = await installAtA('unsigned');
    served = archive;
    const p = installUpgrade({
      paths,
      args: argsFor(archive, otherKey),
      from: 'A',
      mainUrl: url,
      tls,
      signingPublicKey: mainPublic,
    });
    await expect(p).rejects.toMatchObject({ code: 'ERR_RELEASE_SIGNATURE' });
    await expectUntouched(paths);
  });

  it('unpacks a signed archive, records the upgrade, and points current (not committed) at it', async () => {
    const paths = await installAtA('good');
    served = archive;
    const before = Date.now();
    await installUpgrade({ paths, args: argsFor(archive), from: 'A', mainUrl: url, tls, signingPublicKey: mainPublic });
    expect(await linkedVersion(paths.current)).toBe('B');
    expect(await linkedVersion(paths.committed)).toBe('A');
    expect(JSON.parse(await readFile(join(paths.current, 'release.json'), 'utf8'))).toMatchObject({ version: 'B' });
    expect((await readdir(paths.releases)).sort()).toEqual(['A', 'B']);
    const pending = await readPending(paths);
    expect(pending).toMatchObject({ attempt: '00112233aabbccdd', from: 'A', to: 'B' });
    expect(pending!.deadline).toBeGreaterThanOrEqual(before + 60_000);
  });

  it("unpacks readable by a host's tenant users under the unit's UMask=0077, and clears an earlier cut-short attempt", async () => {
    const paths = await installAtA('umask');
    served = archive;
    await mkdir(paths.releases, { recursive: true });
    await writeFile(join(paths.releases, '.B.0000000000000000.tar.gz'), 'left by a killed download');
    await mkdir(join(paths.releases, 'C.partial'));
    const old = process.umask(0o077);
    try {
      await installUpgrade({
        paths,
        args: argsFor(archive),
        from: 'A',
        mainUrl: url,
        tls,
        signingPublicKey: mainPublic,
      });
    } finally {
      process.umask(old);
    }
    const mode = async (p: string) => (await stat(p)).mode & 0o777;
    expect(await mode(join(paths.releases, 'B'))).toBe(0o755);
    expect(await mode(join(paths.releases, 'B', 'app'))).toBe(0o755);
    expect(await mode(join(paths.releases, 'B', 'app', 'palisade-agent.mjs'))).toBe(0o644);
    expect((await readdir(paths.releases)).sort()).toEqual(['A', 'B']);
  });
});
