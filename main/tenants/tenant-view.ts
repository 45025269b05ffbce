/**
 * A tenant as `tenants` shows it: its registry record joined with the live state its host last reported. Pure: the
 * caller says whether the host is online and which report is current (tenants.ts).
 */
import { createHash } from 'node:crypto';
import type { TenantRecord } from '../registry.js';

/**
 * `port` is where the host says the tenant listens now: it moves off a port another process took while
 * the tenant was down. `at` is when main learnt it: a report from before the host's current connection
 * describes processes a host restart has since stopped.
 */
export interface LiveTenant {
  state: string;
  pid: number | null;
  restarts: number;
  port?: number;
  lastError?: string;
  /** As its host last measured them (tenant-usage.ts); null while it is not running or on an older host. */
  cpuPercent?: number | null;
  rssBytes?: number | null;
  memoryMb?: number | null;
  /** Its events as the tenant counted them (agent/tenant/events/event-rate.ts); null from an older host. */
  events?: TenantEvents | null;
  at: number;
}

/** How many events a tenant stored since its process started, and per second over about the last 10 s. */
export interface TenantEvents {
  stored: number;
  perSecond: number;
}

export interface TenantView {
  name: string;
  host: string;
  port: number;
  status: string;
  labels: string[];
  /** Its region, or null when it has none. */
  region: string | null;
  /** True once its process has reported running the first time (its store, keys and roles are in place). */
  initialised: boolean;
  publicKey: string;
  publicKeyFingerprint: string;
  createdAt: string;
  pid: number | null;
  restarts: number;
  /** Heap limit in MiB (null: Node's default); CPU in percent of one core and resident memory, live. */
  memoryMb: number | null;
  cpuPercent: number | null;
  rssBytes: number | null;
  /** Its events, live: numbers only (main keeps no event); null while it is not running or on an older host. */
  events: TenantEvents | null;
}

/** A figure from a host's report: a finite number, or null. */
export const figure = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** A host's report of a tenant's events: two finite numbers ≥ 0, or null. */
export function eventFigures(v: unknown): TenantEvents | null {
  const e = v as { stored?: unknown; perSecond?: unknown } | null;
  if (typeof e !== 'object' || e === null) return null;
  const stored = figure(e.stored);
  const perSecond = figure(e.perSecond);
  return stored !== null && perSecond !== null && stored >= 0 && perSecond >= 0 ? { stored, perSecond } : null;
}

export function keyFingerprint(publicKeyB64: string): string {
  return createHash('sha256').update(Buffer.from(publicKeyB64, 'base64')).digest('hex').slice(0, 16);
}

export function tenantView(r: TenantRecord, hostOnline: boolean, l: LiveTenant | undefined): TenantView {
  const status = r.status !== 'running' ? r.status : !hostOnline ? 'host-offline' : (l?.state ?? 'unknown');
  return {
    name: r.name,
    host: r.hostName,
    port: (hostOnline ? l?.port : undefined) ?? r.port,
    status,
    labels: r.labels,
    region: r.region ?? null,
    initialised: r.initialisedAt !== undefined,
    publicKey: r.publicKey,
    publicKeyFingerprint: keyFingerprint(r.publicKey),
    createdAt: r.createdAt,
    pid: hostOnline ? (l?.pid ?? null) : null,
    restarts: l?.restarts ?? 0,
    memoryMb: l?.memoryMb ?? null,
    cpuPercent: hostOnline && l?.pid ? (l.cpuPercent ?? null) : null,
    rssBytes: hostOnline && l?.pid ? (l.rssBytes ?? null) : null,
    events: hostOnline && l?.pid ? (l.events ?? null) : null,
  };
}
