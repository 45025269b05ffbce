/**
 * Which domain an event belongs to, and which rule said so: QRadar's precedence (docs/events.md), built once
 * per configuration change into lookup tables, then a handful of map lookups per event. Pure.
 *
 * Order: custom properties (those some mapping names, by name), then for a record that carries flow fields
 * (a `vlan` or a `flowSource`) QRadar's flow order VLAN → flow source, then log source → log source group (the
 * source's groups by name) → event collector (the engine; for flow records also the flow collector), else the
 * Default Domain.
 *
 * CEP fall-through (QRadar's DOMAIN_CEP_FALLTHROUGH, off by default as there): when an event has a value for a
 * mapped custom property but no mapping of that property has that value, with fall-through OFF the event goes
 * to the Default Domain at once (rule `property-unmatched:NAME`) and later rules are not tried; with it ON,
 * tagging falls through to the rules below. An event without a value for any mapped property (the regex did not
 * match it) is not decided by properties either way: it always goes on to the rules below.
 */
import { DEFAULT_DOMAIN } from '#common/events.js';
import type { DomainMapping } from './event-config.js';

export interface TagInput {
  properties?: Readonly<Record<string, string>>;
  vlan?: number;
  flowSource?: string;
  logSource: string;
  groups: readonly string[];
  engine: string;
}
export interface Tag {
  domain: string;
  rule: string;
}

export interface TagTables {
  /** Mapped properties in name order, each with its value → domain. */
  properties: [name: string, byValue: Map<string, string>][];
  vlan: Map<string, string>;
  flowSource: Map<string, string>;
  logSource: Map<string, string>;
  group: Map<string, string>;
  collector: Map<string, string>;
  cepFallthrough: boolean;
}

export function buildTagTables(mappings: Iterable<DomainMapping>, cepFallthrough: boolean): TagTables {
  const t: TagTables = {
    properties: [],
    vlan: new Map(),
    flowSource: new Map(),
    logSource: new Map(),
    group: new Map(),
    collector: new Map(),
    cepFallthrough,
  };
  const props = new Map<string, Map<string, string>>();
  for (const m of mappings) {
    if (m.kind === 'property') {
      const byValue = props.get(m.key) ?? new Map<string, string>();
      byValue.set(m.value ?? '', m.domain);
      props.set(m.key, byValue);
    } else if (m.kind === 'vlan') t.vlan.set(m.key, m.domain);
    else if (m.kind === 'flow-source') t.flowSource.set(m.key, m.domain);
    else if (m.kind === 'log-source') t.logSource.set(m.key, m.domain);
    else if (m.kind === 'log-source-group') t.group.set(m.key, m.domain);
    else t.collector.set(m.key, m.domain);
  }
  t.properties = [...props.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return t;
}

export function tagDomain(e: TagInput, t: TagTables): Tag {
  let unmatched: string | undefined;
  for (const [name, byValue] of t.properties) {
    const v = e.properties?.[name];
    if (v === undefined) continue;
    const d = byValue.get(v);
    if (d !== undefined) return { domain: d, rule: `property:${name}=${v}` };
    unmatched ??= name;
  }
  if (unmatched !== undefined && !t.cepFallthrough)
    return { domain: DEFAULT_DOMAIN, rule: `property-unmatched:${unmatched}` };
  if (e.vlan !== undefined || e.flowSource !== undefined) {
    const v = e.vlan !== undefined ? t.vlan.get(String(e.vlan)) : undefined;
    if (v !== undefined) return { domain: v, rule: `vlan:${e.vlan}` };
    const f = e.flowSource !== undefined ? t.flowSource.get(e.flowSource) : undefined;
    if (f !== undefined) return { domain: f, rule: `flow-source:${e.flowSource}` };
  }
  const s = t.logSource.get(e.logSource);
  if (s !== undefined) return { domain: s, rule: `log-source:${e.logSource}` };
  for (const g of e.groups) {
    const d = t.group.get(g);
    if (d !== undefined) return { domain: d, rule: `log-source-group:${g}` };
  }
  const c = t.collector.get(e.engine);
  if (c !== undefined) return { domain: c, rule: `event-collector:${e.engine}` };
  return { domain: DEFAULT_DOMAIN, rule: 'default' };
}
