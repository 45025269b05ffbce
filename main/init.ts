/**
 * `palisade main init`: makes a data directory with a CA, main's server certificate (or the admin's
 * own), the ed25519 signing key, an empty registry and the first admin user. The admin API key is
 * returned once and stored only as a hash.
 */
import { access, mkdir, readFile } from 'node:fs/promises';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { resolve } from 'node:path';
import { BadParameterError, ConflictError } from '#common/errors.js';
import { createCa, issueServerCert } from '#common/pki.js';
import { writeFileAtomic } from '#common/atomic-file.js';
import { mainPaths } from './data-dir.js';
import { checkMainConfig, DEFAULT_PORT, type MainConfig } from './config.js';
import { Registry } from './registry.js';
import { createApiKey, createUser } from './access/api-keys.js';
import { serverCertNames } from './tls/server-certificate.js';
import { createSigningKeyFile } from './tenants/signing-key.js';

export interface InitOptions {
  data: string;
  hostname?: string;
  port?: number;
  cert?: string;
  key?: string;
}
export interface InitResult {
  url: string;
  adminApiKey: string;
  caCertPath: string;
  dataDir: string;
  signingPublicKey: string;
}

export async function initMain(opts: InitOptions): Promise<InitResult> {
  const paths = mainPaths(resolve(opts.data));
  if (
    await access(paths.config).then(
      () => true,
      () => false,
    )
  ) {
    throw new ConflictError(
      'ERR_MAIN_ALREADY_INITIALISED',
      `${paths.dir} already holds a Palisade main; use another --data directory`,
      { field: 'data' },
    );
  }
  if ((opts.cert === undefined) !== (opts.key === undefined)) {
    throw new BadParameterError('ERR_INIT_CERT_PAIR', '--cert and --key go together: give both or neither', {
      field: 'cert',
    });
  }
  const hostname = opts.hostname ?? 'localhost';
  const port = opts.port ?? DEFAULT_PORT;
  const config: MainConfig = checkMainConfig({ format: 1, hostname, port }, 'main init');
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });

  const ca = await createCa(`Palisade CA (${hostname})`);
  await writeFileAtomic(paths.caCert, ca.certPem);
  await writeFileAtomic(paths.caKey, ca.keyPem, 0o600);
  if (opts.cert && opts.key) {
    const [certPem, keyPem] = await Promise.all([readFile(opts.cert, 'utf8'), readFile(opts.key, 'utf8')]).catch(
      (e: unknown) => {
        throw new BadParameterError('ERR_INIT_CERT_READ', `cannot read --cert/--key: ${(e as Error).message}`, {
          field: 'cert',
        });
      },
    );
    try {
      if (!new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem))) throw new Error('mismatch');
    } catch {
      throw new BadParameterError(
        'ERR_INIT_CERT_INVALID',
        '--cert and --key are not a matching PEM certificate and private key',
        { field: 'cert' },
      );
    }
    await writeFileAtomic(paths.serverCert, certPem);
    await writeFileAtomic(paths.serverKey, keyPem, 0o600);
  } else {
    const server = await issueServerCert(ca, serverCertNames(hostname));
    await writeFileAtomic(paths.serverCert, server.certPem);
    await writeFileAtomic(paths.serverKey, server.keyPem, 0o600);
  }
  const signingPublicKey = await createSigningKeyFile(paths.signingKey);

  const registry = new Registry(paths.registry);
  await registry.open();
  let adminApiKey: string;
  try {
    const admin = await createUser(registry, 'admin', ['admin']);
    adminApiKey = (await createApiKey(registry, admin.id)).token;
  } finally {
    await registry.close();
  }
  // Written last: its presence means the directory is complete.
  await writeFileAtomic(paths.config, JSON.stringify(config, null, 2) + '\n');
  return {
    url: `https://${hostname}:${port}`,
    adminApiKey,
    caCertPath: paths.caCert,
    dataDir: paths.dir,
    signingPublicKey,
  };
}
