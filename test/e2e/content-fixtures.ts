/**
 * What the content e2e files share (content.test.ts, content-cli.test.ts): the deployment they propagate
 * to (hosts h1 and h2, three labelled tenants) and the content API's answers as a client reads them.
 * Not a test file; each test file starts its own deployment with it.
 */
import type { Deployment } from '../harness/deployment.js';

/** Tenant → [its host, its labels]: two in `emea` (on different hosts), one in `apac`. */
export const TENANTS = {
  'emea-a': ['h1', ['emea', 'gold']],
  'apac-a': ['h1', ['apac']],
  'emea-b': ['h2', ['emea']],
} as const;

/** Installs and starts hosts h1 and h2, and creates TENANTS on them, each running when this returns. */
export async function startTenants(d: Deployment): Promise<void> {
  for (const h of ['h1', 'h2']) {
    await d.install('host', h);
    await d.startAgent(h);
  }
  for (const [name, [host, labels]] of Object.entries(TENANTS))
    await d.createTenant(name, host, { labels: [...labels] });
}

/** An item of main's library. */
export interface Item {
  id: string;
  type: string;
  name: string;
  labels: string[];
  version: number;
  published: number | null;
  shared: boolean;
  sharedVersion: number | null;
}
export interface Version {
  version: number;
  name: string;
  body: string;
  published: boolean;
}
/** An item as a tenant holds it: its own, or a shared (read-only) copy. */
export interface TenantItem {
  id: string;
  type: string;
  name: string;
  body: string;
  version: number;
  shared: boolean;
}
/** Where an item stands on one tenant, and why when it is not shared there at its published version. */
export interface TenantShare {
  tenant: string;
  state: string;
  version: number | null;
  target: number | null;
  reason: string | null;
  /** A shared playbook's dependencies on this tenant (docs/content.md#dependencies). */
  dependencies?: { id: string; type: string; name: string; version: number; held: number | null; present: boolean }[];
}
export interface Status {
  rollup: string;
  problems?: string[];
  tenants: TenantShare[];
  log: { at: string; action: string; outcome: string; tenant?: string; version?: number; reason?: string }[];
}
