/**
 * A tenant's event configuration (docs/events.md): domains, custom properties, domain mappings, log sources and
 * their groups, and the settings (CEP fall-through, retention). Kept in sublevels of the tenant's store and
 * held in memory (it is small and read for every event); every change writes through, then rebuilds what the
 * pipeline reads (`version` counts changes). Not the events themselves (event-store.ts) nor the tagging order
 * (domain-tagger.ts). Log sources appear by themselves when events arrive, or when an admin names one first.
 */
import type { Level } from 'level';
import { RE2JS } from 're2js';
import { propertyMatcher, type PropertyMatcher } from './property-matcher.js';
import { BadParameterError, ConflictError, NotFoundError } from '#common/errors.js';
import {
  DEFAULT_DOMAIN,
  DEFAULT_DOMAIN_ID,
  DEFAULT_RETENTION_MS,
  MAX_PROPERTY_REGEX,
  MAX_PROPERTY_VALUE,
  MAX_RETENTION_MS,
  MIN_RETENTION_MS,
  checkDomainName,
  checkGroupName,
  checkLogSourceName,
  checkPropertyName,
  type MappingKind,
} from '#common/events.js';
import type { Sub } from '../store.js';

export interface Domain {
  id: string;
  name: string;
  description?: string;
  /** ISO time; absent only for the Default Domain of a store older than its record (see EventConfig.load). */
  created?: string;
}
export interface CustomProperty {
  id: string;
  name: string;
  regex: string;
  created: string;
  /** Set (in memory) when the pipeline switched the property off: one event took it SLOW_PROPERTY_MS or more. */
  disabled?: string;
}
export interface DomainMapping {
  kind: MappingKind;
  /** The log source, group, engine, flow source or VLAN; for a property, its name. */
  key: string;
  /** For a property mapping: the value the property must have. */
  value?: string;
  domain: string;
}
export interface LogSource {
  id: string;
  name: string;
  identifier: string;
  engine: string;
  groups: string[];
  firstSeen?: string;
  lastSeen?: string;
}
export interface EventSettings {
  cepFallthrough: boolean;
  retentionMs: number;
  /**
   * Whether each batch is fsynced before it is acknowledged (on unless turned off): it then survives a power loss of
   * the tenant's machine. Off, a batch is acknowledged once LevelDB has written it to its log (the OS's page cache): it
   * survives the tenant process's crash or restart, as an engine's spool does its own (docs/events.md).
   */
  fsync: boolean;
}

/** Bounds on what an admin defines, and on log sources (traffic makes them: spoofed names must not fill memory). */
export const MAX_DOMAINS = 1000;
export const MAX_PROPERTIES = 100;
export const MAX_MAPPINGS = 10_000;
export const MAX_LOG_SOURCES = 10_000;
/** Log sources forgotten at once when the table is full (sorting it for each new one would cost what attackers ask). */
export const EVICT_LOG_SOURCES = 500;
export const MAX_GROUPS_PER_SOURCE = 16;

const mappingId = (m: Pick<DomainMapping, 'kind' | 'key' | 'value'>) =>
  m.kind === 'property' ? `property~${m.key}=${m.value}` : `${m.kind}~${m.key}`;

/**
 * Compiles a property's regex with RE2 semantics (re2js, pure JS): matching takes time linear in the text, so no
 * pattern can freeze the tenant on a crafted message. Refuses what RE2 does not support (backreferences, lookaround).
 */
export function compileProperty(regex: string, field = 'regex'): RE2JS {
  if (regex.length === 0 || regex.length > MAX_PROPERTY_REGEX)
    throw new BadParameterError('ERR_PROPERTY_REGEX', `${field}: 1 to ${MAX_PROPERTY_REGEX} characters`, { field });
  try {
    return RE2JS.compile(regex);
  } catch (e) {
    throw new BadParameterError(
      'ERR_PROPERTY_REGEX',
      `${field}: not a regular expression in RE2 syntax (no backreferences or lookaround): ${(e as Error).message}`,
      { field },
    );
  }
}

/**
 * Property regexes read the first PROPERTY_TEXT_CHARS of a message. The pipeline also switches off (until the tenant
 * restarts) a property taking SLOW_PROPERTY_MS on an event.
 */
export const PROPERTY_TEXT_CHARS = 4096;
export const SLOW_PROPERTY_MS = 50;

/** A property's value in `text`: its first capture group if it has one, else the whole match; trimmed and bounded. */
export function propertyValue(re: PropertyMatcher, text: string, ascii?: boolean): string | undefined {
  const v = re.first(text.length > PROPERTY_TEXT_CHARS ? text.slice(0, PROPERTY_TEXT_CHARS) : text, ascii)?.trim();
  return v ? v.slice(0, MAX_PROPERTY_VALUE) : undefined;
}

export class EventConfig {
  private readonly domainsDb: Sub<Domain>;
  private readonly propsDb: Sub<CustomProperty>;
  private readonly mapsDb: Sub<DomainMapping>;
  private readonly sourcesDb: Sub<LogSource>;
  private readonly settingsDb: Sub<EventSettings>;
  readonly domains = new Map<string, Domain>();
  readonly properties = new Map<string, CustomProperty & { re: PropertyMatcher }>();
  readonly mappings = new Map<string, DomainMapping>();
  readonly sources = new Map<string, LogSource>();
  /** When each log source was last looked up by ingest (in memory), for evict. */
  private readonly used = new Map<string, number>();
  /** Ids of log sources forgotten to make room (evict), not yet deleted from the store. */
  readonly evicted: string[] = [];
  settings: EventSettings = { cepFallthrough: false, retentionMs: DEFAULT_RETENTION_MS, fsync: true };
  /** Bumped on every change of what tagging reads, so the pipeline rebuilds its tables. */
  version = 0;
  /** The Default Domain as stored under its id (custom domains are numbered from 1), for its creation time. */
  private defaultDomain: Domain = { id: DEFAULT_DOMAIN_ID, name: DEFAULT_DOMAIN };
  private nextId = 1;
  private nextSourceId = 1;

  constructor(db: Level<string, unknown>) {
    const sub = <V>(name: string) => db.sublevel<string, V>(name, { valueEncoding: 'json' }) as unknown as Sub<V>;
    this.domainsDb = sub('ev-domains');
    this.propsDb = sub('ev-properties');
    this.mapsDb = sub('ev-mappings');
    this.sourcesDb = sub('ev-sources');
    this.settingsDb = sub('ev-settings');
  }

  /** The sublevel log sources live in, for the pipeline to write new ones in an event batch. */
  get sourceSublevel(): Sub<LogSource> {
    return this.sourcesDb;
  }

  async load(): Promise<void> {
    let defaultDomain: Domain | undefined;
    for await (const [k, d] of this.domainsDb.iterator()) {
      if (k === DEFAULT_DOMAIN_ID) {
        defaultDomain = d;
        continue;
      }
      this.domains.set(d.name, d);
      this.nextId = Math.max(this.nextId, Number(d.id) + 1);
    }
    for await (const [, p] of this.propsDb.iterator()) {
      let re: PropertyMatcher;
      let disabled: string | undefined;
      try {
        re = propertyMatcher(p.regex, compileProperty(p.regex));
      } catch {
        // Stored before property regexes ran on RE2: kept (so it can be removed) but never run.
        re = propertyMatcher('$^', RE2JS.compile('$^'));
        disabled = 'its regex uses syntax RE2 does not support (backreferences, lookaround); re-create it';
      }
      this.properties.set(p.name, { ...p, re, ...(disabled ? { disabled } : {}) });
      this.nextId = Math.max(this.nextId, Number(p.id) + 1);
    }
    for await (const [k, m] of this.mapsDb.iterator()) this.mappings.set(k, m);
    for await (const [, s] of this.sourcesDb.iterator()) {
      this.sources.set(s.name, s);
      this.nextSourceId = Math.max(this.nextSourceId, Number(s.id) + 1);
    }
    const s = await this.settingsDb.get('settings');
    if (s) this.settings = { ...this.settings, ...s };
    this.defaultDomain = defaultDomain ?? (await this.recordDefaultDomain(s === undefined));
    this.version++;
  }

  /**
   * The Default Domain's record, written at the first load without one. It is made with the event configuration,
   * so an empty configuration (a new tenant) is stamped now. A configuration that already holds something was made
   * before the record existed, and when is unknown: its `created` is left absent, not guessed — the tenant process
   * knows no creation time of its store (tenant.json's `createdAt` is the host's file, written per host), and a
   * time that looks exact but is not would mislead whoever reads it as when its events could begin. The record
   * is written either way, so the answer never changes from one start to the next.
   */
  private async recordDefaultDomain(noSettings: boolean): Promise<Domain> {
    const empty =
      noSettings && !this.domains.size && !this.properties.size && !this.mappings.size && !this.sources.size;
    const d: Domain = {
      id: DEFAULT_DOMAIN_ID,
      name: DEFAULT_DOMAIN,
      ...(empty ? { created: new Date().toISOString() } : {}),
    };
    await this.domainsDb.put(DEFAULT_DOMAIN_ID, d);
    return d;
  }

  private changed(): void {
    this.version++;
  }

  // ---- domains --------------------------------------------------------------------------------------

  listDomains(): Domain[] {
    const def: Domain = { ...this.defaultDomain, description: 'events no rule claims' };
    return [def, ...[...this.domains.values()].sort((a, b) => Number(a.id) - Number(b.id))];
  }

  /** The domain by name (the Default Domain included), or a 404 naming `field`. */
  domain(name: string, field = 'domain'): Domain {
    if (name === DEFAULT_DOMAIN) return this.listDomains()[0];
    const d = this.domains.get(name);
    if (!d) throw new NotFoundError('ERR_DOMAIN_NOT_FOUND', `${field}: no domain "${name}" in this tenant`, { field });
    return d;
  }

  async createDomain(name: string, description?: string): Promise<Domain> {
    checkDomainName(name);
    if (name === DEFAULT_DOMAIN || this.domains.has(name))
      throw new ConflictError('ERR_DOMAIN_EXISTS', `name: a domain "${name}" exists already`, { field: 'name' });
    if (this.domains.size >= MAX_DOMAINS)
      throw new ConflictError('ERR_EVENT_CONFIG_FULL', `a tenant holds at most ${MAX_DOMAINS} domains`);
    const d: Domain = { id: String(this.nextId++), name, created: new Date().toISOString() };
    if (description) d.description = description;
    await this.domainsDb.put(d.id, d);
    this.domains.set(name, d);
    this.changed();
    return d;
  }

  /** Removes a domain and its mappings (their events keep the domain's name). */
  async removeDomain(name: string): Promise<{ name: string; mappingsRemoved: number }> {
    if (name === DEFAULT_DOMAIN)
      throw new BadParameterError('ERR_DOMAIN_DEFAULT', 'name: the Default Domain cannot be removed', {
        field: 'name',
      });
    const d = this.domain(name, 'name');
    const gone = [...this.mappings.entries()].filter(([, m]) => m.domain === name).map(([k]) => k);
    await this.mapsDb.batch(gone.map((k) => ({ type: 'del' as const, key: k })));
    await this.domainsDb.del(d.id);
    for (const k of gone) this.mappings.delete(k);
    this.domains.delete(name);
    this.changed();
    return { name, mappingsRemoved: gone.length };
  }

  // ---- mappings -------------------------------------------------------------------------------------

  listMappings(domain?: string): (DomainMapping & { id: string })[] {
    return [...this.mappings.entries()]
      .filter(([, m]) => domain === undefined || m.domain === domain)
      .map(([id, m]) => ({ id, ...m }))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /**
   * Maps a source of events to a domain. As in QRadar, a log source, group, engine, flow source or VLAN belongs
   * to one domain at most, and a property value too (one property may map different values to different domains).
   */
  async map(domainName: string, m: Omit<DomainMapping, 'domain'>): Promise<DomainMapping & { id: string }> {
    if (domainName === DEFAULT_DOMAIN)
      throw new BadParameterError('ERR_DOMAIN_DEFAULT', 'domain: what no rule claims goes to the Default Domain', {
        field: 'domain',
      });
    this.domain(domainName, 'name');
    const mapping = this.checkMapping(m);
    const id = mappingId(mapping);
    const prev = this.mappings.get(id);
    if (prev && prev.domain !== domainName)
      throw new ConflictError(
        'ERR_DOMAIN_MAPPED',
        `${m.kind}: ${id.slice(m.kind.length + 1)} is mapped to domain "${prev.domain}" already; unmap it there first`,
        { field: m.kind },
      );
    if (!prev && this.mappings.size >= MAX_MAPPINGS)
      throw new ConflictError('ERR_EVENT_CONFIG_FULL', `a tenant holds at most ${MAX_MAPPINGS} domain mappings`);
    const stored: DomainMapping = { ...mapping, domain: domainName };
    await this.mapsDb.put(id, stored);
    this.mappings.set(id, stored);
    this.changed();
    return { id, ...stored };
  }

  async unmap(domainName: string, m: Omit<DomainMapping, 'domain'>): Promise<{ id: string }> {
    this.domain(domainName, 'name');
    const id = mappingId(this.checkMapping(m));
    if (this.mappings.get(id)?.domain !== domainName)
      throw new NotFoundError('ERR_MAPPING_NOT_FOUND', `${m.kind}: domain "${domainName}" has no such mapping`, {
        field: m.kind,
      });
    await this.mapsDb.del(id);
    this.mappings.delete(id);
    this.changed();
    return { id };
  }

  private checkMapping(m: Omit<DomainMapping, 'domain'>): Omit<DomainMapping, 'domain'> {
    switch (m.kind) {
      case 'property': {
        if (!this.properties.has(m.key))
          throw new NotFoundError('ERR_PROPERTY_NOT_FOUND', `property: no custom property "${m.key}" in this tenant`, {
            field: 'property',
          });
        const v = (m.value ?? '').trim();
        if (!v || v.length > MAX_PROPERTY_VALUE || /[\r\n]/.test(v))
          throw new BadParameterError(
            'ERR_BAD_REQUEST',
            `property: give NAME=VALUE, VALUE 1-${MAX_PROPERTY_VALUE} characters on one line`,
            { field: 'property' },
          );
        return { kind: m.kind, key: m.key, value: v };
      }
      case 'log-source':
        return { kind: m.kind, key: checkLogSourceName(m.key, 'logSource') };
      case 'log-source-group':
        return { kind: m.kind, key: checkGroupName(m.key, 'logSourceGroup') };
      case 'event-collector':
        return { kind: m.kind, key: checkEngine(m.key) };
      case 'flow-source':
        if (!/^[A-Za-z0-9][A-Za-z0-9:._@-]{0,254}$/.test(m.key))
          throw new BadParameterError('ERR_BAD_REQUEST', 'flowSource: 1-255 letters, digits, ":", ".", "_", "@", "-"', {
            field: 'flowSource',
          });
        return { kind: m.kind, key: m.key };
      case 'vlan':
        if (!/^\d{1,4}$/.test(m.key) || Number(m.key) > 4095)
          throw new BadParameterError('ERR_BAD_REQUEST', 'vlan: a VLAN id, 0-4095', { field: 'vlan' });
        return { kind: m.kind, key: String(Number(m.key)) };
      default:
        throw new BadParameterError('ERR_BAD_REQUEST', 'kind: not a mapping kind', { field: 'kind' });
    }
  }

  // ---- custom properties ----------------------------------------------------------------------------

  listProperties(): CustomProperty[] {
    return [...this.properties.values()].map(({ re: _re, ...p }) => p).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async createProperty(name: string, regex: string): Promise<CustomProperty> {
    checkPropertyName(name);
    const re = propertyMatcher(regex, compileProperty(regex));
    if (this.properties.has(name))
      throw new ConflictError('ERR_PROPERTY_EXISTS', `name: a property "${name}" exists already`, { field: 'name' });
    if (this.properties.size >= MAX_PROPERTIES)
      throw new ConflictError('ERR_EVENT_CONFIG_FULL', `a tenant holds at most ${MAX_PROPERTIES} custom properties`);
    const p: CustomProperty = { id: String(this.nextId++), name, regex, created: new Date().toISOString() };
    await this.propsDb.put(p.id, p);
    this.properties.set(name, { ...p, re });
    this.changed();
    return p;
  }

  async removeProperty(name: string): Promise<{ name: string }> {
    const p = this.properties.get(name);
    if (!p) throw new NotFoundError('ERR_PROPERTY_NOT_FOUND', `name: no custom property "${name}"`, { field: 'name' });
    const used = [...this.mappings.values()].find((m) => m.kind === 'property' && m.key === name);
    if (used)
      throw new ConflictError(
        'ERR_PROPERTY_IN_USE',
        `name: domain "${used.domain}" maps ${name}=${used.value}; unmap it first`,
        { field: 'name' },
      );
    await this.propsDb.del(p.id);
    this.properties.delete(name);
    this.changed();
    return { name };
  }

  // ---- log sources ----------------------------------------------------------------------------------

  listSources(): LogSource[] {
    return [...this.sources.values()].sort((a, b) => Number(a.id) - Number(b.id));
  }

  /** The log source of an event, new ones made (not stored: the caller writes `fresh` ones in its batch). */
  sourceFor(identifier: string, engine: string): { source: LogSource; fresh: boolean } | undefined {
    const name = `${identifier}@${engine}`;
    const s = this.sources.get(name);
    if (s) {
      this.used.set(name, Date.now());
      return { source: s, fresh: false };
    }
    if (this.sources.size >= MAX_LOG_SOURCES && !this.evict()) return undefined;
    const source: LogSource = { id: String(this.nextSourceId++), name, identifier, engine, groups: [] };
    this.sources.set(name, source);
    this.used.set(name, Date.now());
    return { source, fresh: true };
  }

  /** Forgets a source made by sourceFor that is not to be stored (an obfuscation rule sealed its name). */
  forgetSource(name: string): void {
    this.sources.delete(name);
    this.used.delete(name);
  }

  /**
   * Makes room in a full table of log sources by forgetting the EVICT_LOG_SOURCES seen longest ago among those an
   * admin has not set up (in no group, named by no mapping): a sender spoofing hostnames must not keep a real new
   * source from being recorded, and a source that still sends is seen again within a minute. Their ids wait in
   * `evicted` for the pipeline to delete them with its next batch. False when every source is set up.
   */
  private evict(): boolean {
    const mapped = new Set<string>();
    for (const m of this.mappings.values()) if (m.kind === 'log-source') mapped.add(m.key);
    // Those not seen since the tenant started go first, by lastSeen; then by when ingest last used them (lastSeen
    // is written at most once a minute, so a source a batch is using now may look older than it is).
    const seen = (s: LogSource) => {
      const used = this.used.get(s.name);
      return used !== undefined ? 1e15 + used : s.lastSeen ? Date.parse(s.lastSeen) : 0;
    };
    const old = [...this.sources.values()]
      .filter((s) => s.groups.length === 0 && !mapped.has(s.name))
      .map((s) => [seen(s), s] as const)
      .sort((a, b) => a[0] - b[0])
      .slice(0, EVICT_LOG_SOURCES);
    for (const [, s] of old) {
      this.sources.delete(s.name);
      this.used.delete(s.name);
      this.evicted.push(s.id);
    }
    return old.length > 0;
  }

  /** Adds a log source to a group (or removes it); a source not seen yet is recorded, so it can be set up first. */
  async group(name: string, group: string, remove = false): Promise<LogSource> {
    checkLogSourceName(name, 'name');
    checkGroupName(group);
    let s = this.sources.get(name);
    if (!s) {
      if (remove)
        throw new NotFoundError('ERR_LOG_SOURCE_NOT_FOUND', `name: no log source "${name}"`, { field: 'name' });
      const at = name.lastIndexOf('@');
      const made = this.sourceFor(name.slice(0, at), name.slice(at + 1));
      if (!made) throw new ConflictError('ERR_EVENT_CONFIG_FULL', `a tenant holds at most ${MAX_LOG_SOURCES} sources`);
      s = made.source;
      const evicted = this.evicted.splice(0);
      if (evicted.length) await this.sourcesDb.batch(evicted.map((key) => ({ type: 'del' as const, key })));
    }
    const groups = remove ? s.groups.filter((g) => g !== group) : [...new Set([...s.groups, group])].sort();
    if (groups.length > MAX_GROUPS_PER_SOURCE)
      throw new BadParameterError('ERR_BAD_REQUEST', `group: a log source is in at most ${MAX_GROUPS_PER_SOURCE}`, {
        field: 'group',
      });
    const next = { ...s, groups };
    await this.sourcesDb.put(next.id, next);
    this.sources.set(name, next);
    this.changed();
    return next;
  }

  // ---- settings -------------------------------------------------------------------------------------

  async updateSettings(change: Partial<EventSettings>): Promise<EventSettings> {
    if (
      change.retentionMs !== undefined &&
      (!Number.isInteger(change.retentionMs) ||
        change.retentionMs < MIN_RETENTION_MS ||
        change.retentionMs > MAX_RETENTION_MS)
    )
      throw new BadParameterError('ERR_BAD_REQUEST', 'retention: from 1h to 3650d', { field: 'retention' });
    const next = { ...this.settings, ...change };
    await this.settingsDb.put('settings', next);
    this.settings = next;
    this.changed();
    return next;
  }
}

function checkEngine(v: string): string {
  if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(v))
    throw new BadParameterError('ERR_BAD_REQUEST', 'eventCollector: an engine name', { field: 'eventCollector' });
  return v;
}
