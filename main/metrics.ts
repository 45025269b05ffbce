/**
 * Main's Prometheus metrics (docs/operations.md#metrics-and-readiness lists them): one prom-client Registry per
 * running main, never the library's global one, so several mains in one process (tests, benchmarks) do not
 * collide. Counters and the relay histogram move where their events happen (outbox, enrolment, auth throttle,
 * RPC relay, tunnel router and relay limits); what is a state rather than an event (agents connected, tenants per
 * host, pending commands, open relayed sessions) is read from its owner at scrape time through `observe`, so it
 * cannot drift from the truth. Not the route (main/http/routes-system.ts) and not its permission (common/roles.ts,
 * `metrics:read`).
 *
 * Labels take fixed values only (kinds, states, doors, reasons, status classes) or names main already lists to
 * its viewers (hosts, tenant states): never an address, a key or text from a frame.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The process's own metrics (CPU, memory, event loop, GC), collected once per process: prom-client's collector
 * keeps a GC observer and an event-loop monitor alive for good, so one per main would leak a closed main's
 * whole object graph (tests and benchmarks start many in one process).
 */
let processMetrics: Registry | undefined;
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics });
  }
  return processMetrics;
}

/** Where an authentication failed: main's API, the agent channel, enrolment, or a tenant key its tenant refused. */
export type AuthDoor = 'api' | 'agent' | 'enrol' | 'tenant_key' | 'signin' | 'session';

/** What `observe` reads at scrape time: the owners of each state, wired in server.ts. */
export interface MetricSources {
  agentsByKind(): Record<string, number>;
  pendingCommands(): number;
  openRelayedSessions(): number;
  tenants(): Promise<{ host: string; status: string }[]>;
}

/**
 * Buckets of the relay histogram (seconds): a relayed request on a loopback deployment answers in a few ms, across
 * a WAN in tens; its deadline is 30 s (tenants.ts RELAY_TIMEOUT_MS), so the top bucket sits just under it.
 */
const RELAY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25];

export class MainMetrics {
  readonly registry = new Registry();
  readonly commandsQueued: Counter<'command'>;
  readonly commandsFinished: Counter<'command' | 'state'>;
  readonly relayDuration: Histogram<'result'>;
  readonly tunnelBytes: Counter<'direction'>;
  readonly tunnelDropped: Counter<'reason'>;
  readonly enrolments: Counter<'outcome'>;
  readonly authFailures: Counter<'door'>;
  private sources?: MetricSources;

  constructor() {
    const registers = [this.registry];
    this.commandsQueued = new Counter({
      name: 'palisade_commands_queued_total',
      help: 'Durable commands written to the outbox, by command name',
      labelNames: ['command'],
      registers,
    });
    this.commandsFinished = new Counter({
      name: 'palisade_commands_finished_total',
      help: 'Durable commands that left the outbox: done (the agent acknowledged a result), failed, or expired',
      labelNames: ['command', 'state'],
      registers,
    });
    this.relayDuration = new Histogram({
      name: 'palisade_relay_request_duration_seconds',
      help: 'Relayed tenant requests, main to host to tenant and back, by the tenant status class or failed',
      labelNames: ['result'],
      buckets: RELAY_BUCKETS,
      registers,
    });
    this.tunnelBytes = new Counter({
      name: 'palisade_tunnel_relay_bytes_total',
      help: 'Sealed tunnel record bytes main relayed between engines and hosts, by direction',
      labelNames: ['direction'],
      registers,
    });
    this.tunnelDropped = new Counter({
      name: 'palisade_tunnel_relay_dropped_records_total',
      help: 'Tunnel records main refused to relay, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.enrolments = new Counter({
      name: 'palisade_enrolments_total',
      help: 'Enrolment attempts on /enrol/v1: ok, or refused (bad key, bad frame, throttled)',
      labelNames: ['outcome'],
      registers,
    });
    this.authFailures = new Counter({
      name: 'palisade_auth_failures_total',
      help: 'Failed authentications counted against their source address, by door',
      labelNames: ['door'],
      registers,
    });
    this.stateGauges(registers);
  }

  /** Tells the gauges where their states live; until then they report nothing. */
  observe(sources: MetricSources): void {
    this.sources = sources;
  }

  /** Times one relayed request; call the result with the tenant's HTTP status, or nothing if it never answered. */
  relayTimer(): (status?: number) => void {
    const end = this.relayDuration.startTimer();
    return (status) => end({ result: status === undefined ? 'failed' : `${Math.floor(status / 100)}xx` });
  }

  /** The exposition, and the content type to serve it with. */
  async render(): Promise<{ contentType: string; text: string }> {
    const both = Registry.merge([processRegistry(), this.registry]);
    return { contentType: this.registry.contentType, text: await both.metrics() };
  }

  private stateGauges(registers: Registry[]): void {
    // prom-client calls collect() on the gauge itself: arrow functions keep `this` the MainMetrics.
    const self = () => this.sources;
    new Gauge({
      name: 'palisade_agents_connected',
      help: 'Agents with a live session, by kind',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const by = self()?.agentsByKind() ?? {};
        for (const kind of ['host', 'engine']) this.set({ kind }, by[kind] ?? 0);
      },
    });
    new Gauge({
      name: 'palisade_commands_pending',
      help: 'Durable commands in the outbox waiting for their agent',
      registers,
      collect() {
        this.set(self()?.pendingCommands() ?? 0);
      },
    });
    new Gauge({
      name: 'palisade_tunnel_relay_sessions',
      help: 'Engine-tenant tunnel sessions relayed through main right now',
      registers,
      collect() {
        this.set(self()?.openRelayedSessions() ?? 0);
      },
    });
    new Gauge({
      name: 'palisade_tenants',
      help: 'Tenants by host and status as main last heard it (status="running": the tenants up on each host)',
      labelNames: ['host', 'status'],
      registers,
      async collect() {
        this.reset();
        for (const t of (await self()?.tenants()) ?? []) this.inc({ host: t.host, status: t.status });
      },
    });
  }
}
