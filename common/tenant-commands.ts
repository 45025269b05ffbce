/**
 * The commands main may run across tenants (`POST /api/v1/commands`, the bird's-eye view): their names
 * and argument schemas, shared so main rejects bad arguments once, before fanning out, and each tenant
 * validates the same schema again (it trusts main's signature, not main's validation). Each runs on the
 * tenant as `POST /api/v1/commands/<name>` with the args as body. All are read-only on purpose: a
 * command that changes many customers' data at once deserves its own reviewed route, not a generic verb.
 * Not here: what the commands do (agent/tenant/command-routes.ts) or how main fans out (main/search/fanout.ts).
 */

import { INDICATOR_TYPES, MAX_INDICATOR_VALUE } from './indicators.js';

const INCIDENT_FILTER = {
  status: { type: 'string', enum: ['open', 'closed'], description: 'Only incidents with this status' },
  severity: { type: 'integer', minimum: 0, maximum: 4, description: 'Only incidents of this severity' },
  type: { type: 'string', minLength: 1, maxLength: 100, description: 'Only incidents of this type' },
  q: { type: 'string', minLength: 1, maxLength: 200, description: 'Text in name or details (case-insensitive)' },
} as const;

export const TENANT_COMMANDS = {
  'incidents.count': {
    description: 'How many incidents match the filter → {count}',
    args: { type: 'object', additionalProperties: false, properties: INCIDENT_FILTER },
  },
  'incidents.stats': {
    description: 'Incident counts by status and by severity → {total, byStatus:{open,closed}, bySeverity:{"0".."4"}}',
    args: { type: 'object', additionalProperties: false, properties: { type: INCIDENT_FILTER.type } },
  },
  'indicators.lookup': {
    description: 'Whether the tenant knows an indicator → {found, indicator?}',
    args: {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'value'],
      properties: {
        type: { type: 'string', enum: [...INDICATOR_TYPES] },
        value: { type: 'string', minLength: 1, maxLength: MAX_INDICATOR_VALUE },
      },
    },
  },
} as const;

export type TenantCommandName = keyof typeof TENANT_COMMANDS;
export const TENANT_COMMAND_NAMES = Object.keys(TENANT_COMMANDS) as TenantCommandName[];

/** The tenant path a command runs at; the name is one of TENANT_COMMAND_NAMES (no escaping needed). */
export function tenantCommandPath(name: TenantCommandName): string {
  return `/api/v1/commands/${name}`;
}
