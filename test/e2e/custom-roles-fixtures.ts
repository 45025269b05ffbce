/**
 * What the custom-role e2e files share (custom-roles.test.ts, tenant-roles.test.ts): a role as main's and a
 * tenant's `/roles` list it, requests made with a user's own API key, and an incident body for checking who
 * may write incidents. Not a test file, and no deployment of its own.
 */
import type { Deployment } from '../harness/deployment.js';
import type { ErrorBody } from '../harness/api-shapes.js';

export interface RoleRow {
  name: string;
  source: string;
  for: string;
  permissions: string[];
  mainPermissions?: string[];
  id?: string;
  published?: number | null;
  shadowed?: boolean;
}

export const incident = { name: 'phish', type: 'phishing', severity: 2, details: 'x' };

/** A request made with `key` (a user's API key) instead of the admin's, its answer typed for error checks. */
export const asUser = (d: Deployment, key: string, method: string, path: string, body?: unknown) =>
  d.api<ErrorBody & Record<string, unknown>>(method, path, body, { key });
