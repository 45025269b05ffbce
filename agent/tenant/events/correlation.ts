/**
 * Domain-aware correlation (docs/events.md#correlation-rules): the tenant's correlation rules (content type `rule`,
 * shared from main or local; common/correlation-rule.ts) count the events the pipeline has just stored, and N
 * matching events within T from one source address make one incident. State is keyed by (rule, domain, address):
 * 192.168.2.1 seen in two domains is two customers' machines and gives two incidents, never one merged.
 *
 * The window slides: each key keeps the times of its last `count` matching events; when the oldest of those is
 * within `within` of the newest, the rule fires. A key that fired does not fire again until it resets, i.e. until
 * a full `within` passes with no matching event for it (one incident per burst, not one per event past N).
 * Memory is bounded: at most MAX_KEYS keys across rules; touching a key makes it newest, and past the cap the least
 * recently seen key is dropped (its count starts again if it comes back). State is in memory only: a tenant restart
 * starts every window empty. Incidents carry `domain` and the address (labels), so security profiles filter them.
 */
import type { Logger } from 'pino';
import { parseCorrelationRule, type ParsedCorrelationRule } from '#common/correlation-rule.js';
import type { ContentStore, TenantContentItem } from '../content-store.js';
import type { TenantStore } from '../store.js';
import { parseEventBody } from './event-body.js';
import type { StoredEvent } from './event-store.js';
import type { StoredEventRef } from './pipeline-stages.js';

/** Keys (rule, domain, address) held at once; the least recently seen goes first past it. */
export const MAX_KEYS = 100_000;
/** Rules are read from the content store at most this often (a new or changed rule applies within it). */
const RELOAD_MS = 1000;

interface Window {
  /** Times (ms) of the last `count` matching events, oldest first. */
  times: number[];
  fired: boolean;
}
interface Loaded {
  item: TenantContentItem;
  rule?: ParsedCorrelationRule;
  error?: string;
}

function fieldValue(e: StoredEvent, name: string, vendor: () => Record<string, string>): string | undefined {
  const own = (e as unknown as Record<string, unknown>)[name];
  if (typeof own === 'string' || typeof own === 'number') return String(own);
  return e.properties?.[name] ?? vendor()[name];
}

/** Whether `e` meets every condition of the rule's `match`. */
export function eventMatches(rule: ParsedCorrelationRule, e: StoredEvent): boolean {
  const m = rule.match;
  if (m.domain !== undefined && e.domain !== m.domain) return false;
  if (m.q !== undefined && !e.message.toLowerCase().includes(m.q.toLowerCase())) return false;
  if (m.field) {
    let vendor: Record<string, string> | undefined;
    const fields = () => (vendor ??= parseEventBody(e.message).fields);
    for (const [k, v] of Object.entries(m.field)) if (fieldValue(e, k, fields) !== v) return false;
  }
  return true;
}

export class Correlator {
  private readonly windows = new Map<string, Window>();
  private readonly parsed = new Map<string, Loaded>();
  private rules: { item: TenantContentItem; rule: ParsedCorrelationRule }[] = [];
  private loadedAt = 0;
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly d: { content: ContentStore; store: TenantStore; log: Logger; maxKeys?: number }) {}

  /** The pipeline's afterStore stage: counts the batch, in order, one batch at a time. */
  observe(stored: () => StoredEventRef[]): void {
    this.chain = this.chain
      .then(() => this.count(stored))
      .catch((e: unknown) => this.d.log.error({ err: e }, 'correlation failed for a batch'));
  }

  /**
   * Whether a batch stored now may be counted: a rule is in force, or the rules are due to be read again (one created
   * since would count it). When not, the pipeline need not keep the batch's events for observe().
   */
  observes(): boolean {
    return this.rules.length > 0 || Date.now() - this.loadedAt >= RELOAD_MS;
  }

  /** Resolves once every batch observed so far is counted and its incidents stored (tests, close). */
  settled(): Promise<void> {
    return this.chain;
  }

  /** Keys held now (bounded by MAX_KEYS). */
  get keys(): number {
    return this.windows.size;
  }

  private async active(): Promise<{ item: TenantContentItem; rule: ParsedCorrelationRule }[]> {
    if (Date.now() - this.loadedAt < RELOAD_MS) return this.rules;
    const items = await this.d.content.list({ type: 'rule' });
    const out: { item: TenantContentItem; rule: ParsedCorrelationRule }[] = [];
    for (const item of items) {
      let l = this.parsed.get(item.id);
      if (!l || l.item.version !== item.version || l.item.updated !== item.updated) {
        try {
          l = { item, rule: parseCorrelationRule(item.body) };
        } catch (e) {
          l = { item, error: e instanceof Error ? e.message : String(e) };
          this.d.log.warn({ rule: item.id, err: l.error }, 'correlation rule does not check; it never fires');
        }
        this.parsed.set(item.id, l);
      }
      if (l.rule && l.rule.active !== false) out.push({ item, rule: l.rule });
    }
    this.rules = out;
    this.loadedAt = Date.now();
    return out;
  }

  private async count(batch: () => StoredEventRef[]): Promise<void> {
    const rules = await this.active();
    if (rules.length === 0) return;
    const stored = batch();
    const fire: Parameters<TenantStore['createIncidents']>[0] = [];
    const cap = this.d.maxKeys ?? MAX_KEYS;
    for (const { id, event } of stored) {
      const address = event.sourceAddress;
      if (address === undefined) continue;
      const t = Date.parse(event.time);
      for (const { item, rule } of rules) {
        if (!eventMatches(rule, event)) continue;
        const key = `${item.id}\0${event.domain}\0${address}`;
        let w = this.windows.get(key);
        if (w) this.windows.delete(key); // re-inserted below: Map order is then least recently seen first
        if (!w || (w.times.length > 0 && t - w.times[w.times.length - 1] > rule.withinMs))
          w = { times: [], fired: false };
        w.times.push(t);
        if (w.times.length > rule.count) w.times.shift();
        this.windows.set(key, w);
        if (this.windows.size > cap) this.windows.delete(this.windows.keys().next().value!);
        if (!w.fired && w.times.length >= rule.count && t - w.times[0] <= rule.withinMs) {
          w.fired = true;
          const name = rule.name ?? item.name;
          fire.push({
            name: rule.incident.name,
            type: rule.incident.type,
            severity: rule.incident.severity,
            details:
              `${rule.count} events matching correlation rule "${name}" within ${rule.within} ` +
              `from ${address} in domain ${event.domain}; the last is event ${id}`,
            labels: { sourceAddress: address, domain: event.domain, correlationRule: item.id, lastEvent: id },
            domain: event.domain,
          });
        }
      }
    }
    if (fire.length) await this.d.store.createIncidents(fire);
  }

  /** Waits for the batches being counted. */
  async close(): Promise<void> {
    await this.chain;
  }
}
