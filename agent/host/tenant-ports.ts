/**
 * Where a tenant's API listens: a loopback port of its own, the lowest free one from FIRST_TENANT_PORT.
 * Only the choice of a port; keeping a tenant on it (and moving it when another process took it) is the
 * tenant process's (tenant-process.ts), and the ports tunnels may not reach are reserved-ports.ts's.
 */
import { createServer } from 'node:net';
import { UnavailableError } from '#common/errors.js';

export const FIRST_TENANT_PORT = 18501;
const LAST_TENANT_PORT = 19500;
/** After a collision, start somewhere in the next this-many ports. */
const COLLISION_SPREAD = 64;

/**
 * The lowest free port from FIRST_TENANT_PORT not in `used`; after a collision (another host on this
 * machine probed the same port at the same moment) from a random offset, so two racing hosts do not
 * collide again on the next one.
 */
export async function freeTenantPort(used: ReadonlySet<number>, afterCollision = false): Promise<number> {
  const span = LAST_TENANT_PORT - FIRST_TENANT_PORT + 1;
  const offset = afterCollision ? Math.floor(Math.random() * Math.min(COLLISION_SPREAD, span)) : 0;
  for (let i = 0; i < span; i++) {
    const p = FIRST_TENANT_PORT + ((offset + i) % span);
    if (!used.has(p) && (await portFree(p))) return p;
  }
  throw new UnavailableError(
    'ERR_NO_TENANT_PORT',
    `no free port between ${FIRST_TENANT_PORT} and ${LAST_TENANT_PORT} on this host`,
  );
}

/** Whether nothing listens on `port` at 127.0.0.1 right now (a probe: another process may take it next). */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer()
      .once('error', () => resolve(false))
      .listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
