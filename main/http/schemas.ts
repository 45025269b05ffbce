/** JSON schemas shared by main's routes, so the OpenAPI document and validation agree by construction. */
import { NAME_PATTERN } from '#common/names.js';

export const errorBody = {
  type: 'object',
  description: 'An error: a stable machine code and a human message naming the problem.',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' } },
    },
  },
} as const;

/** The 4xx answers every authenticated route may give. */
export function errorResponses(...extra: number[]): Record<number, unknown> {
  const out: Record<number, unknown> = {};
  for (const code of [400, 401, 403, ...extra])
    out[code] = { ...errorBody, description: DESCRIPTIONS[code] ?? 'Error' };
  return out;
}

const DESCRIPTIONS: Record<number, string> = {
  400: 'Bad request: a field is missing, of the wrong type or out of range.',
  401: 'No valid API key.',
  403: 'The key is valid but lacks the permission this route needs.',
  404: 'No such object.',
  409: 'Conflicts with an existing object.',
  413: 'Body too large.',
  503: 'Temporarily unavailable; retry later.',
};

export const nameParam = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: { type: 'string', pattern: NAME_PATTERN, description: 'Agent name' } },
} as const;

/**
 * A `limit` query parameter: digits here, the range checked by the search itself, whose 400 says it ("limit: must
 * be 1 to 200") where a digit-count pattern would only be quoted back. `limitOf` reads it: more than three digits
 * (never in range) is NaN, which the range check refuses, so the inputs taken are those of `^[0-9]{1,3}$` in range.
 */
export const limitParam = (description: string) => ({ type: 'string', pattern: '^[0-9]+$', description }) as const;
export const limitOf = (v: string | undefined): number | undefined =>
  v === undefined ? undefined : v.length > 3 ? NaN : Number(v);

export const sysinfoSchema = { type: 'object', additionalProperties: true, nullable: true } as const;

/** A tenant's event counts (numbers only): in GET /tenants and the overview, for anyone who sees the tenant. */
export const tenantEvents = {
  type: 'object',
  nullable: true,
  required: ['stored', 'perSecond'],
  properties: {
    stored: { type: 'integer', description: 'Events it stored since its process started' },
    perSecond: { type: 'number', description: 'Events stored per second over about the last 10 s' },
  },
  description:
    'Syslog events its engines sent and it stored, as the tenant counts them and its host reports them (each ' +
    'heartbeat); null when not running or on an older host',
} as const;

export const agentView = {
  type: 'object',
  required: ['name', 'id', 'kind', 'status'],
  properties: {
    name: { type: 'string' },
    id: { type: 'string' },
    kind: { type: 'string', enum: ['host', 'engine'] },
    status: { type: 'string', enum: ['online', 'offline'] },
    lastSeen: { type: 'string', nullable: true },
    connectedAt: { type: 'string', nullable: true },
    enrolledAt: { type: 'string' },
    fingerprint: { type: 'string' },
    tenant: { type: 'string', nullable: true },
    group: { type: 'string', nullable: true },
    pendingCommands: { type: 'integer' },
    sysinfo: sysinfoSchema,
    relay: {
      type: 'object',
      description:
        'Tunnel records main dropped from this agent since main started (no session, not its tenant, over a limit), and disconnects for flooding the relay',
      properties: {
        droppedRecords: { type: 'integer' },
        droppedBytes: { type: 'integer' },
        floodDisconnects: { type: 'integer' },
      },
    },
    version: { type: 'string', nullable: true, description: 'The release it runs, as its last Hello said' },
    ring: { type: 'string', enum: ['canary', 'default'], description: 'Its upgrade ring' },
    lastUpgrade: {
      type: 'object',
      nullable: true,
      description: 'How its last upgrade ended: committed (ok) or rolled back (with the reason)',
      properties: {
        version: { type: 'string' },
        ok: { type: 'boolean' },
        reason: { type: 'string', nullable: true },
        at: { type: 'string' },
      },
    },
  },
} as const;

export const commandView = {
  type: 'object',
  required: ['id', 'command', 'state', 'createdAt', 'deadline'],
  properties: {
    id: { type: 'integer' },
    agent: { type: 'string' },
    command: { type: 'string' },
    args: { type: 'object', additionalProperties: true, nullable: true },
    state: { type: 'string', enum: ['pending', 'done', 'failed', 'expired'] },
    createdAt: { type: 'string' },
    createdBy: { type: 'string' },
    deadline: { type: 'string' },
    completedAt: { type: 'string', nullable: true },
    result: {
      type: 'object',
      additionalProperties: true,
      nullable: true,
      description: "The command's result (when done)",
    },
    error: { type: 'object', nullable: true, properties: { code: { type: 'string' }, message: { type: 'string' } } },
  },
} as const;
