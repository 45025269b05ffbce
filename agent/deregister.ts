/**
 * `deregister --dir DIR` (uninstall.sh runs it): tells main this agent is gone — one connection with the
 * agent's own certificate, the agent.deregister event, and main's ERR_AGENT_REVOKED close as the answer — and
 * for a host deletes its tenants' users (their processes first). The agent must be stopped: this is not
 * a way to drain or stop it, and it deletes no files (uninstall.sh does).
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { agentPaths, loadAgentConfig } from '#common/agent-dir.js';
import { UnavailableError, type PalisadeError } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { AGENT_DEREGISTER_EVENT, MINOR_AGENT_DEREGISTER } from '#common/protocol-version.js';
import { isEnrolled } from './enrol.js';
import { MainConnection } from './main-connection.js';
import { removeTenantUsers } from './host/tenant-isolation.js';

/** Main answers within a round trip; this bounds an unreachable main (the URL loop backs off meanwhile). */
const DEREGISTER_TIMEOUT_MS = 30_000;

export interface DeregisterResult {
  kind: 'host' | 'engine';
  name: string;
  /** False when it never enrolled: main holds no agent of it then (its one-time key expires by itself). */
  toldMain: boolean;
  /** Hosts: the tenant users deleted. */
  tenantUsers: string[];
}

export async function deregisterAgent(dir: string, log: Logger): Promise<DeregisterResult> {
  const paths = agentPaths(resolve(dir));
  const config = await loadAgentConfig(paths);
  // Users first: once main forgot the host, nothing else knows these users are its.
  // Root only (uninstall.sh): an installed host's own capabilities do not let it delete users (userdel writes /etc).
  const privileged = process.getuid?.() === 0;
  const tenantUsers = config.kind === 'host' && privileged ? await removeTenantUsers(paths.dir) : [];
  const result = { kind: config.kind, name: config.name, tenantUsers };
  if (!(await isEnrolled(paths))) return { ...result, toldMain: false };
  const [ca, cert, key] = await Promise.all([paths.caCert, paths.cert, paths.key].map((p) => readFile(p, 'utf8')));
  await new Promise<void>((done, fail) => {
    const finish = (e?: PalisadeError) => {
      clearTimeout(timer);
      connection.close();
      if (e) fail(e);
      else done();
    };
    const unconfirmed = (why: string) =>
      new UnavailableError('ERR_DEREGISTER_UNCONFIRMED', `main was not told ${config.name} is gone: ${why}`);
    const connection = new MainConnection({
      mainUrls: config.mainUrls,
      ca,
      cert,
      key,
      kind: config.kind,
      name: config.name,
      log,
      heartbeatPayload: async () => ({ sentAtMs: Date.now() }),
      onFrame: () => undefined, // commands are not run: the agent is being removed
      onReady: (welcome) => {
        if ((welcome.protocolMinor ?? 0) < MINOR_AGENT_DEREGISTER)
          return finish(unconfirmed(`main speaks protocol 1.${welcome.protocolMinor ?? 0}, before deregistration`));
        connection.send({ event: { type: AGENT_DEREGISTER_EVENT, data: new Uint8Array(0) } });
      },
      // Revoked is the answer (or it was removed already); anything else permanent is a failure.
      onFatal: (e) => finish(e.code === 'ERR_AGENT_REVOKED' ? undefined : e),
    });
    const timer = setTimeout(
      () => finish(unconfirmed(`no answer within ${DEREGISTER_TIMEOUT_MS / 1000} s`)),
      DEREGISTER_TIMEOUT_MS,
    );
    connection.start();
  });
  return { ...result, toldMain: true };
}
