/**
 * Main's registry: one LevelDB store with a sublevel per collection. It holds agents, enrolment and API
 * keys (hashes only), users, the command outbox and results, and the audit log — never tenant data.
 * Records are plain JSON; this module knows storage, not policy (enrolment, outbox etc. own that).
 */
import type { ConnectionScope } from '#common/connection-content.js';
import { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';

export interface AgentRecord {
  id: string;
  name: string;
  kind: 'host' | 'engine';
  tenant?: string;
  /**
   * Engines: the public key of the tenant they were enrolled for, its identity. A later tenant of the same
   * name has another key: main admits the engine to its tenant only while the two match.
   */
  tenantKey?: string;
  group?: string;
  certSerial: string;
  fingerprint: string;
  /** Engines: NaCl box public key (base64) for the end-to-end tunnel to their tenant. */
  boxPublicKey?: string;
  /** The upgrade ring its installer bundle named (`agents ring` overrides it: AgentUpgradeInfo.ring). */
  ring?: AgentRing;
  enrolledAt: string;
  enrolledFrom?: string;
  revokedAt?: string;
  lastSeen?: string;
  sysinfo?: Record<string, unknown>;
}

export type AgentRing = 'canary' | 'default';

/**
 * What upgrades need to know of one agent (main/agents/upgrades.ts), apart from its record: the gateway
 * rewrites agent records with live status, so these live in their own collection.
 */
export interface AgentUpgradeInfo {
  /** The release it runs, from its last Hello. */
  version?: string;
  /** Its upgrade ring (absent: default); `agents ring` sets it. */
  ring?: AgentRing;
  /** How its last upgrade ended, from its last Hello (agent/upgrade/launcher.ts records it). */
  lastUpgrade?: { attempt: string; version: string; ok: boolean; reason?: string; at: string };
}

/** The latest upgrade main started for one agent (main/agents/upgrades.ts). */
export interface UpgradeRecord {
  agentId: string;
  attempt: string;
  from: string | null;
  to: string;
  commandId: number;
  startedAt: string;
  startedBy: string;
}

export interface EnrolKeyRecord {
  id: string;
  hash: string;
  kind: 'host' | 'engine';
  name: string;
  tenant?: string;
  /** Engine keys: the tenant's public key when the key was made; enrolment needs the tenant to still have it. */
  tenantKey?: string;
  group?: string;
  /** The upgrade ring the enrolled agent starts in. */
  ring?: AgentRing;
  createdAt: string;
  createdBy: string;
  expiresAt: string;
  usedAt?: string;
  usedBy?: string;
  /** Revoked by an admin, or voided when its agent or tenant was removed: it enrols nothing any more. */
  revokedAt?: string;
  revokedBy?: string;
}

export interface ApiKeyRecord {
  id: string;
  hash: string;
  userId: string;
  createdAt: string;
  lastUsedAt?: string;
  revokedAt?: string;
}

export interface UserRecord {
  id: string;
  name: string;
  roles: string[];
  createdAt: string;
  /** A customer user: belongs to this one tenant, reaches nothing else. */
  tenant?: string;
  /** MSSP staff limited to these tenants (absent: every tenant). */
  tenants?: string[];
  /** A customer user's security profile in its tenant: the tenant limits it to that profile's domains. */
  profile?: string;
  createdBy?: string;
  disabledAt?: string;
  /** Console sign-in: `scrypt$N$r$p$salt$hash` (main/access/passwords.ts); never leaves main. */
  password?: string;
  /** When the password last changed: sessions made before it are void (main/access/sessions.ts). */
  passwordChangedAt?: string;
  /**
   * A TOTP second factor (main/access/totp.ts): the base32 secret, sealed (access/secret-box.ts), and the last time
   * step used (each code once).
   */
  totp?: { secret: string; enabledAt: string; lastStep?: number };
}

/** A console session, keyed by sha256(cookie value): the cookie itself is never stored. Times in ms. */
export interface SessionRecord {
  userId: string;
  csrfToken: string;
  createdAt: number;
  lastSeenAt: number;
  /** createdAt + the absolute lifetime: no activity extends it. */
  endsAt: number;
  /** The user's passwordChangedAt when signing in: a later change voids the session. */
  passwordStamp: string;
  remote?: string;
}

export interface TenantRecord {
  name: string;
  hostId: string;
  hostName: string;
  port: number;
  labels: string[];
  publicKey: string;
  status: 'creating' | 'running' | 'removing' | 'moving';
  createdAt: string;
  createdBy: string;
  /** The region it belongs to (D3: regions group tenants; region-scoped connections reach it); absent: none. */
  region?: string;
  /** When its process first reported running: from then on it has finished initialising. */
  initialisedAt?: string;
}

export type CommandState = 'pending' | 'done' | 'failed' | 'expired';

export interface CommandRecord {
  id: number;
  agentId: string;
  agentName: string;
  name: string;
  args: unknown;
  state: CommandState;
  createdAt: string;
  createdBy: string;
  deadline: string;
  completedAt?: string;
  result?: unknown;
  error?: { code: string; message: string };
}

export interface AuditRecord {
  at: string;
  actor: string;
  action: string;
  target?: string;
  outcome: 'ok' | 'denied' | 'failed';
  remote?: string;
  detail?: Record<string, unknown>;
}

/** A content item of the library (docs/content.md); its bodies live in versions. `sharing` is set while shared. */
export interface ContentItemRecord {
  id: string;
  type: string;
  name: string;
  labels: string[];
  latest: number;
  published: number | null;
  /**
   * Set while shared: the version and the item's labels at the share (an edit of labels re-targets at the next share).
   */
  sharing: {
    version: number;
    at: string;
    by: string;
    labels?: string[];
    /**
     * Tenants it is shared to by name besides its labels (the `list:share` and `playbook:publish` write commands),
     * each with its creation time, so a later tenant of the same name is not one of them.
     */
    tenants?: SharedTenant[];
    /** A playbook's dependencies at this share, in push order, and why any is missing (playbook-dependencies.ts). */
    dependencies?: SharedDependency[];
    problems?: string[];
    /** A connection item's scope in the shared version: it reaches only the tenants in it (share-targets.ts). */
    scope?: ConnectionScope;
  } | null;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
}
export interface SharedTenant {
  name: string;
  createdAt: string;
}
export interface SharedDependency {
  id: string;
  type: string;
  name: string;
  version: number;
}
export interface ContentVersionRecord {
  id: string;
  version: number;
  name: string;
  body: string;
  createdAt: string;
  createdBy: string;
  publishedAt?: string;
  publishedBy?: string;
}
/** What main last learnt of one item on one tenant: the version it holds (null: none) and the last failure. */
export interface ContentShareRecord {
  item: string;
  tenant: string;
  state: 'shared' | 'failed' | 'out-of-date';
  version: number | null;
  target: number | null;
  reason?: string;
  at: string;
  tenantCreatedAt?: string;
  /** The tenant's inactive sites its answer to the last push named (docs/sites.md): the share did not reach them. */
  inactiveSites?: string[];
}
export interface ContentLogRecord {
  at: string;
  action: string;
  actor: string;
  outcome: 'ok' | 'failed';
  tenant?: string;
  version?: number;
  reason?: string;
}

type Sub<V> = AbstractSublevel<Level<string, unknown>, string | Buffer | Uint8Array, string, V>;

export class Registry {
  readonly db: Level<string, unknown>;
  readonly agents: Sub<AgentRecord>;
  /** `${kind}:${name}` → agent id: names are unique per kind. */
  readonly agentNames: Sub<string>;
  /** certificate serial → agent id: how a TLS peer is mapped to its record. */
  readonly certSerials: Sub<string>;
  readonly enrolKeys: Sub<EnrolKeyRecord>;
  readonly apiKeys: Sub<ApiKeyRecord>;
  readonly users: Sub<UserRecord>;
  /** command id (zero-padded) → record; the source of truth for results. */
  readonly commands: Sub<CommandRecord>;
  /** `${agentId}!${paddedId}` → command id: the pending set per agent, in send order. */
  readonly outbox: Sub<number>;
  /** `${agentId}!${paddedId}` → command id: every command of an agent, for its history. */
  readonly agentCommands: Sub<number>;
  readonly audit: Sub<AuditRecord>;
  /** tenant name → where it runs and its public key; never any of its data. */
  readonly tenants: Sub<TenantRecord>;
  /**
   * Content library: item id → item; `${id}!${padded version}` → version; `${id}!${tenant}` → share state;
   * `${id}!${time}!${seq}` → log.
   */
  readonly content: Sub<ContentItemRecord>;
  readonly contentVersions: Sub<ContentVersionRecord>;
  readonly contentShares: Sub<ContentShareRecord>;
  readonly contentLog: Sub<ContentLogRecord>;
  /** agent id → the latest upgrade started for it. */
  readonly upgrades: Sub<UpgradeRecord>;
  /** agent id → its version, ring and last upgrade result. */
  readonly agentUpgradeInfo: Sub<AgentUpgradeInfo>;
  /** sha256(session cookie) → console session. */
  readonly sessions: Sub<SessionRecord>;

  constructor(dir: string) {
    this.db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    const sub = <V>(name: string) => this.db.sublevel<string, V>(name, { valueEncoding: 'json' }) as unknown as Sub<V>;
    this.agents = sub('agents');
    this.agentNames = sub('agent-names');
    this.certSerials = sub('cert-serials');
    this.enrolKeys = sub('enrol-keys');
    this.apiKeys = sub('api-keys');
    this.users = sub('users');
    this.commands = sub('commands');
    this.outbox = sub('outbox');
    this.agentCommands = sub('agent-commands');
    this.audit = sub('audit');
    this.tenants = sub('tenants');
    this.content = sub('content');
    this.contentVersions = sub('content-versions');
    this.contentShares = sub('content-shares');
    this.contentLog = sub('content-log');
    this.upgrades = sub('agent-upgrades');
    this.agentUpgradeInfo = sub('agent-upgrade-info');
    this.sessions = sub('sessions');
  }

  async open(): Promise<void> {
    await this.db.open();
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  async agentByName(kind: string, name: string): Promise<AgentRecord | undefined> {
    const id = await this.agentNames.get(`${kind}:${name}`);
    return id === undefined ? undefined : this.agents.get(id);
  }

  async listAgents(kind?: string): Promise<AgentRecord[]> {
    const all = await this.agents.values().all();
    return kind ? all.filter((a) => a.kind === kind) : all;
  }
}

export function padId(id: number): string {
  return id.toString().padStart(16, '0');
}
