/** Where main keeps what: the layout of `--data DIR`, in one place. */
import { join } from 'node:path';

export function mainPaths(dir: string) {
  return {
    dir,
    config: join(dir, 'main.json'),
    caCert: join(dir, 'pki', 'ca.pem'),
    caKey: join(dir, 'pki', 'ca-key.pem'),
    serverCert: join(dir, 'pki', 'server.pem'),
    serverKey: join(dir, 'pki', 'server-key.pem'),
    signingKey: join(dir, 'pki', 'signing-key.json'),
    ticketKeys: join(dir, 'pki', 'tls-ticket-keys'),
    /** Seals TOTP secrets in the registry (main/access/secret-box.ts): 32 bytes, 0600. */
    secretsKey: join(dir, 'pki', 'secrets-key'),
    registry: join(dir, 'registry'),
    /** Agent releases main serves for upgrades: <version>.tar.gz and <version>.json (main/agents/releases.ts). */
    releases: join(dir, 'agent-releases'),
    logFile: join(dir, 'logs', 'main.log'),
    /** Where a running main answers `main backup` (main/backup/backup-socket.ts). */
    backupSocket: join(dir, 'backup.sock'),
  };
}

export type MainPaths = ReturnType<typeof mainPaths>;
