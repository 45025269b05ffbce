/**
 * A tenant's own API driven through main's relay, the steps several e2e files share: waiting until the
 * tenant answers as the process main reports, creating an incident, and reading every incident by paging.
 * Not the requests a test is about (those stay in the test, spelled out).
 */
import type { ApiReply, Deployment, TenantRow } from './deployment.js';
import type { Incident, IncidentPage } from './api-shapes.js';
import { until } from './processes.js';

/**
 * Waits until main reports tenant `name` running with a live pid other than `notPid`, and its API answers
 * through main as that pid (so a restart is over, not just reported); returns its row.
 */
export function tenantAnswering(d: Deployment, name: string, notPid?: number, timeoutMs = 60_000): Promise<TenantRow> {
  return until(
    `${name} answering as its pid`,
    async () => {
      const t = await d.tenantRunning(name, { notPid, timeoutMs });
      const info = await d.api<{ tenant: string; pid: number }>('GET', `/tenants/${name}/api/info`);
      return info.status === 200 && info.body.tenant === name && info.body.pid === t.pid ? t : undefined;
    },
    timeoutMs,
    200,
  );
}

/** Creates an incident in `tenant` (type generic, severity 1, no details unless `body` says); throws unless 201. */
export async function createIncident(d: Deployment, tenant: string, body: Record<string, unknown>): Promise<Incident> {
  const r = await d.api<Incident>('POST', `/tenants/${tenant}/api/incidents`, {
    type: 'generic',
    severity: 1,
    details: '',
    ...body,
  });
  if (r.status !== 201) throw new Error(`create incident in ${tenant}: ${r.status} ${r.raw}`);
  return r.body;
}

/** Every incident of a tenant through main matching `query`, paging `limit` at a time to the end. */
export async function allIncidents(d: Deployment, tenant: string, query = '', limit = 1000): Promise<Incident[]> {
  const out: Incident[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 1000; page++) {
    const r: ApiReply<IncidentPage> = await d.api<IncidentPage>(
      'GET',
      `/tenants/${tenant}/api/incidents?limit=${limit}${query ? `&${query}` : ''}${cursor ? `&cursor=${cursor}` : ''}`,
    );
    if (r.status !== 200) throw new Error(`list ${tenant}: ${r.status} ${r.raw}`);
    out.push(...r.body.items);
    cursor = r.body.next;
    if (!cursor) return out;
  }
  throw new Error('paging did not end');
}
