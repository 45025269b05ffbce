/**
 * What main and a tenant agree on about content items (docs/content.md): the item
 * types, the size limits, and the identity main's propagation signs into its pushes.
 *
 * The rule for shared items: a tenant accepts a write of a shared item (PUT/DELETE
 * /api/v1/content/shared/:id) only when main's signed claim names the caller CONTENT_PROPAGATION_CALLER,
 * i.e. carries `system: 'content-propagation'`. Main builds the caller of a user's relayed request from
 * its own registry (api-keys.ts callerIdentity) and never sets `system`, so no user, key or path through
 * the relay can produce that claim; only main's content propagation signs it.
 */
import type { CallerIdentity } from './signed-request.js';
import { describedPattern } from './pattern-text.js';

export const CONTENT_TYPES = [
  'playbook',
  'script',
  'integration',
  'list',
  'incident-type',
  'automation-rule',
  'role',
  'rule',
  'connection',
] as const;
export type ContentType = (typeof CONTENT_TYPES)[number];

/**
 * A body is text (YAML, JSON, script source). 96 Ki characters: a push travels inside one relay frame
 * (1 MiB by default), base64 of JSON where a character may take up to 6 bytes escaped.
 */
export const CONTENT_BODY_MAX = 96 * 1024;
export const CONTENT_NAME_MAX = 200;
/** Printable names: no control characters that would garble a table or a log line. */
export const CONTENT_NAME_PATTERN = '^[^\\u0000-\\u001f\\u007f]+$';
/** Item ids made by main (shared items keep them on the tenant) and by a tenant for its local items. */
export const CONTENT_ID_PATTERN = describedPattern('^cnt_[0-9a-f]{12}$', 'a content id');
export const LOCAL_CONTENT_ID_PATTERN = describedPattern('^loc_[0-9a-f]{12}$', 'a local content id');

export const CONTENT_PROPAGATION = 'content-propagation';
export const CONTENT_PROPAGATION_CALLER: CallerIdentity & { system: typeof CONTENT_PROPAGATION } = Object.freeze({
  id: 'system:content',
  name: 'main content propagation',
  roles: ['admin'],
  system: CONTENT_PROPAGATION,
});

/** True only for a caller main's propagation signed (see the rule above). */
export function isContentPropagation(caller: CallerIdentity | undefined): boolean {
  return (caller as { system?: unknown } | undefined)?.system === CONTENT_PROPAGATION;
}

/** What main pushes to a tenant for one shared item. */
export interface SharedContentPush {
  type: ContentType;
  name: string;
  body: string;
  version: number;
  labels: string[];
  /** For a connection item: the tenant's region as main knows it (region-scoped items apply to it); null: none. */
  region?: string | null;
}
