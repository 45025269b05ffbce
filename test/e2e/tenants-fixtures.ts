/**
 * What the tenants e2e files share (tenants.test.ts, tenants-refusals.test.ts, tenants-incidents.test.ts):
 * the tenant list as `palisade tenants --json` prints it, where host h1 keeps a tenant's directory, and a
 * request straight to a tenant's port typed as its answers. Not a test file, and no deployment of its own.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Deployment, TenantRow } from '../harness/deployment.js';
import type { ErrorBody, Incident, IncidentPage } from '../harness/api-shapes.js';
import { directRequest } from '../harness/tenant-client.js';

export async function cliTenants(d: Deployment): Promise<TenantRow[]> {
  const r = await d.cli(['tenants', '--json']);
  if (r.code !== 0) throw new Error(`palisade tenants failed: ${r.stdout}${r.stderr}`);
  return r.json as TenantRow[];
}

/** Tenant `name`'s directory on host h1 (the only host these files install). */
export const tenantDir = (d: Deployment, name: string) => join(d.agents.get('h1')!.dir, 'tenants', name);

export async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

/** One request straight to a tenant's loopback port, bypassing main and the host. */
export const direct = (
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
) => directRequest<ErrorBody & IncidentPage & Incident>(port, method, path, headers, body);
