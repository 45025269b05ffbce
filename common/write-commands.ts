/**
 * The write commands main may run across tenants (`POST /api/v1/commands`, docs/search.md#write-commands): D3's
 * multi-tenancy utilities. Only holders of main's `commands:write` may run them (built-in admin; never a customer,
 * never a custom role, never staff limited to some tenants); each tenant's outcome is reported on its own.
 * - `users:sync` and `roles:sync` change a tenant's own users and roles: main relays the args to the tenant's
 *   `POST /api/v1/users/sync` or `/api/v1/roles/sync` as the caller, and the tenant checks the same schema again
 *   (it trusts main's signature, not main's validation) and the caller's permissions there.
 * - `list:share` and `playbook:publish` act on main's content library: the item's latest published version is
 *   shared to the chosen tenants by name (content propagation pushes it, main records the per-tenant state).
 * Groups: Palisade has no group concept; roles are its groups, so `roles:sync` is the "sync groups" of the issue.
 * Not here: the read-only commands (tenant-commands.ts), how main runs these (main/search/write-commands.ts).
 */

import { CUSTOMER_CEILING, ROLE_NAME_PATTERN } from './roles.js';

/** A tenant user's name, as the tenant's `POST /api/v1/users` takes it. */
export const TENANT_USER_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$';
/** Users or roles one sync may carry: enough for a team, small enough to check and write in one batch. */
export const MAX_SYNC_ENTRIES = 200;

const ROLE_LIST = {
  type: 'array',
  minItems: 1,
  maxItems: 16,
  uniqueItems: true,
  items: { type: 'string', pattern: ROLE_NAME_PATTERN },
} as const;
const CONTENT_REF = {
  type: 'string',
  minLength: 1,
  maxLength: 128,
  description: 'The content id (cnt_…) or the name of the item',
} as const;

export const WRITE_COMMANDS = {
  'users:sync': {
    description:
      'Creates each listed user the tenant lacks and sets the roles of those it has → {created, updated, unchanged}',
    path: '/api/v1/users/sync',
    args: {
      type: 'object',
      additionalProperties: false,
      required: ['users'],
      properties: {
        users: {
          type: 'array',
          minItems: 1,
          maxItems: MAX_SYNC_ENTRIES,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'roles'],
            properties: { name: { type: 'string', pattern: TENANT_USER_NAME_PATTERN }, roles: ROLE_LIST },
          },
        },
      },
    },
  },
  'roles:sync': {
    description:
      'Defines each listed tenant role the tenant lacks and updates those that differ → {created, updated, unchanged}',
    path: '/api/v1/roles/sync',
    args: {
      type: 'object',
      additionalProperties: false,
      required: ['roles'],
      properties: {
        roles: {
          type: 'array',
          minItems: 1,
          maxItems: MAX_SYNC_ENTRIES,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'permissions'],
            properties: {
              name: { type: 'string', pattern: ROLE_NAME_PATTERN },
              permissions: { type: 'array', maxItems: 64, uniqueItems: true, items: { enum: [...CUSTOMER_CEILING] } },
              description: { type: 'string', maxLength: 500 },
            },
          },
        },
      },
    },
  },
  'list:share': {
    description: "Shares a list's latest published version to each chosen tenant → {state, version}",
    path: null,
    args: { type: 'object', additionalProperties: false, required: ['id'], properties: { id: CONTENT_REF } },
  },
  'playbook:publish': {
    description:
      "Shares a playbook's latest published version (and what it uses) to each chosen tenant → {state, version}",
    path: null,
    args: { type: 'object', additionalProperties: false, required: ['id'], properties: { id: CONTENT_REF } },
  },
} as const;

export type WriteCommandName = keyof typeof WRITE_COMMANDS;
export const WRITE_COMMAND_NAMES = Object.keys(WRITE_COMMANDS) as WriteCommandName[];

export function isWriteCommand(name: string): name is WriteCommandName {
  return Object.hasOwn(WRITE_COMMANDS, name);
}

/** A user as `users:sync` carries it. */
export interface SyncUser {
  name: string;
  roles: string[];
}
/** A role as `roles:sync` carries it. */
export interface SyncRole {
  name: string;
  permissions: string[];
  description?: string;
}
/** One tenant's answer to a sync: names, each in exactly one list. */
export interface SyncOutcome {
  created: string[];
  updated: string[];
  unchanged: string[];
}

/** The first name listed twice in a sync's entries, as `field[i].name`, or undefined: a sync lists each once. */
export function repeatedName(entries: readonly { name: string }[], field: string): string | undefined {
  const seen = new Set<string>();
  for (const [i, e] of entries.entries()) {
    if (seen.has(e.name)) return `${field}[${i}].name`;
    seen.add(e.name);
  }
  return undefined;
}

/** Whether two lists hold the same names, whatever their order. */
export function sameNames(a: readonly string[], b: readonly string[]): boolean {
  const x = new Set(a);
  return x.size === new Set(b).size && b.every((n) => x.has(n));
}
