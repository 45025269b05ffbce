/**
 * The live picture of hosts, engines and tenants every page shares: one EventSource on main's
 * `GET /api/v1/overview/stream` (`event: overview`, the whole `{hosts, engines, tenants}` each time), so a
 * tenant turning running shows without a reload. If the stream cannot be opened at all (an older main), it
 * polls `GET /api/v1/overview` instead (or, where main has no such route, the hosts, engines and tenants lists
 * it is made of); the stream reconnects by itself after a drop.
 */
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError } from './api.js';
import { toApiError } from './hooks.js';

export interface AgentRow {
  name: string;
  id?: string;
  kind?: string;
  status: string;
  lastSeen?: string | null;
  tenant?: string | null;
  sysinfo?: { cpuLoadPct?: number; memTotal?: number; memAvailable?: number; cpuCores?: number } | null;
  [k: string]: unknown;
}

export interface TenantRow {
  name: string;
  host: string;
  port?: number;
  status: string;
  health?: string;
  labels: string[];
  cpuPercent?: number | null;
  memoryMb?: number | null;
  rssBytes?: number | null;
  /** Events it stored since its process started and per second lately (null: not running, or an older main). */
  events?: { stored: number; perSecond: number } | null;
  [k: string]: unknown;
}

export interface Overview {
  hosts: AgentRow[];
  engines: AgentRow[];
  tenants: TenantRow[];
}

interface State {
  data?: Overview;
  error?: ApiError;
  live: boolean;
}

const POLL_MS = 3_000;
let state: State = { live: false };
const subscribers = new Set<(s: State) => void>();
let source: EventSource | null = null;
let poller: ReturnType<typeof setInterval> | null = null;

function publish(next: Partial<State>): void {
  state = { ...state, ...next };
  for (const f of subscribers) f(state);
}

/** A main without the overview route: the same picture from the three lists it is made of. */
async function composed(): Promise<Overview> {
  const [hosts, engines, tenants] = await Promise.all([
    api.get<AgentRow[]>('/hosts'),
    api.get<AgentRow[]>('/engines'),
    api.get<TenantRow[]>('/tenants'),
  ]);
  return { hosts, engines, tenants };
}

let overviewRoute = true;

async function fetchOnce(): Promise<void> {
  try {
    const data = overviewRoute
      ? await api.get<Overview>('/overview').catch((e: unknown) => {
          if (!(e instanceof ApiError && e.status === 404)) throw e;
          overviewRoute = false;
          return composed();
        })
      : await composed();
    publish({ data, error: undefined });
  } catch (e) {
    publish({ error: toApiError(e) });
  }
}

function open(): void {
  void fetchOnce();
  source = new EventSource('/api/v1/overview/stream', { withCredentials: true });
  source.addEventListener('overview', (ev) => {
    try {
      publish({ data: JSON.parse((ev as MessageEvent<string>).data) as Overview, error: undefined, live: true });
    } catch {
      // A malformed event is skipped; the next one replaces it.
    }
  });
  source.onerror = () => {
    if (source?.readyState === EventSource.CLOSED) {
      source = null;
      publish({ live: false });
      poller ??= setInterval(() => void fetchOnce(), POLL_MS);
    } else publish({ live: false });
  };
}

function close(): void {
  source?.close();
  source = null;
  if (poller) clearInterval(poller);
  poller = null;
  state = { live: false };
}

/** Subscribes while mounted; the stream is open while anything subscribes. */
export function useOverview(): State & { refresh: () => void } {
  const [s, setS] = useState(state);
  useEffect(() => {
    subscribers.add(setS);
    if (!source && !poller) open();
    setS(state);
    return () => {
      subscribers.delete(setS);
      if (subscribers.size === 0) close();
    };
  }, []);
  return { ...s, refresh: () => void fetchOnce() };
}
