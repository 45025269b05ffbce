/**
 * What the admin CLI and a tenant agree on about events (docs/events.md): the names of domains, custom
 * properties, log sources and their groups, the kinds of domain mapping in QRadar's tagging order, the
 * retention bounds, and the shape of one stored event as the search answers it. Pure: checks and types only.
 * Not the parsing of syslog messages nor the tagging itself: those are the tenant's (agent/tenant/events/).
 */
import { BadParameterError } from './errors.js';
import { describedPattern } from './pattern-text.js';

/** Where every event no mapping claims goes, as in QRadar; it always exists, with id 0, and cannot be removed. */
export const DEFAULT_DOMAIN = 'Default Domain';
export const DEFAULT_DOMAIN_ID = '0';

/** Domain names: letters, digits, space, '.', '_', '-', not starting or ending with a space (so `Default Domain`). */
export const DOMAIN_NAME_PATTERN = describedPattern(
  '^[A-Za-z0-9](?:[A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-])?$',
  'a domain name of 1 to 64 letters, digits, spaces, ., _ or -, starting with a letter or digit, not ending with a space',
);
/** Custom property names: an identifier, so they read well in `--property NAME=VALUE` and in JSON. */
export const PROPERTY_NAME_PATTERN = '^[A-Za-z][A-Za-z0-9_]{0,63}$';
/**
 * A log source is named `IDENTIFIER@ENGINE`: the syslog header's hostname (else the sender's address, v4 or v6)
 * and the engine that received it, since two customer networks may both hold a `fw1` or a 10.0.0.1.
 */
export const LOG_SOURCE_NAME_PATTERN = describedPattern(
  '^[A-Za-z0-9][A-Za-z0-9:._%-]{0,253}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$',
  'a log source name IDENTIFIER@ENGINE (IDENTIFIER: a letter or digit, then up to 253 letters, digits, :, ., _, % or -;' +
    ' ENGINE: an engine name)',
);
export const GROUP_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$';
/** A property value a mapping matches: one line of text, as the property's regex captured it. */
export const MAX_PROPERTY_VALUE = 256;
/** Custom property regexes: short, and run by a linear-time (RE2) engine on events. */
export const MAX_PROPERTY_REGEX = 512;

/**
 * Mapping kinds, in the order tagging tries them (QRadar's precedence): custom property, then for records that
 * carry flow fields VLAN and flow source, then log source, log source group, event collector (the engine).
 */
export const MAPPING_KINDS = ['property', 'vlan', 'flow-source', 'log-source', 'log-source-group', 'event-collector'];
export type MappingKind = 'property' | 'vlan' | 'flow-source' | 'log-source' | 'log-source-group' | 'event-collector';

/** Retention of events, per tenant: at least one hour, at most ten years; 30 days unless set. */
export const DEFAULT_RETENTION_MS = 30 * 86_400_000;
export const MIN_RETENTION_MS = 3_600_000;
export const MAX_RETENTION_MS = 3650 * 86_400_000;

/** Events a search answers at most (per tenant, and across tenants). */
export const MAX_EVENT_SEARCH_LIMIT = 1000;
/** Each tenant's answer to main's cross-tenant event search is held in memory until all are in: at most this many. */
export const MAX_CROSS_TENANT_EVENTS = 500;
/** Incidents (and indicators) main's cross-tenant search answers at most per page, from each tenant and in all. */
export const MAX_SEARCH_LIMIT = 200;
export const DEFAULT_EVENT_SEARCH_LIMIT = 100;

/** One stored event as the search answers it. Normalised fields are present when the message said so. */
export interface EventView {
  id: string;
  /** When the engine received it (QRadar's start time): the order events are stored and searched in. */
  time: string;
  /** The time the message's header gave, when it had one it could be read from. */
  logSourceTime?: string;
  domain: string;
  /** Which rule chose the domain: `property:NAME=VALUE`, `log-source:S`, …, `property-unmatched:NAME`, `default`. */
  domainRule: string;
  logSource: string;
  engine: string;
  sender: string;
  transport: string;
  facility?: number;
  severity?: number;
  host?: string;
  app?: string;
  /** RFC 5424 PROCID (or RFC 3164's `TAG[PID]`), MSGID and STRUCTURED-DATA, as the header gave them. */
  procId?: string;
  msgId?: string;
  structuredData?: string;
  format: 'cef' | 'leef' | 'kv' | 'text';
  message: string;
  sourceAddress?: string;
  destinationAddress?: string;
  sourcePort?: number;
  destinationPort?: number;
  vlan?: number;
  flowSource?: string;
  /** Vendor fields of CEF/LEEF/key=value bodies, as given (first 64). */
  fields?: Record<string, string>;
  /** Custom properties whose regex matched, by name. */
  properties?: Record<string, string>;
  truncated?: boolean;
  /** The engine's receive time was outside [now − retention, now + 5 min]: `time` is the tenant's receive time. */
  timeAdjusted?: boolean;
}

function check(v: unknown, pattern: string, field: string, what: string): string {
  if (typeof v !== 'string' || !new RegExp(pattern).test(v))
    throw new BadParameterError('ERR_EVENT_NAME', `${field}: ${what}`, { field });
  return v;
}

export const checkDomainName = (v: unknown, field = 'name') =>
  check(v, DOMAIN_NAME_PATTERN, field, "a domain name is 1-64 letters, digits, spaces, '.', '_' or '-'");
export const checkPropertyName = (v: unknown, field = 'name') =>
  check(v, PROPERTY_NAME_PATTERN, field, "a property name is a letter then up to 63 letters, digits or '_'");
export const checkLogSourceName = (v: unknown, field = 'logSource') =>
  check(v, LOG_SOURCE_NAME_PATTERN, field, 'a log source is IDENTIFIER@ENGINE, e.g. fw1@engine-a or 10.0.0.1@engine-a');
export const checkGroupName = (v: unknown, field = 'group') =>
  check(v, GROUP_NAME_PATTERN, field, "a group name is 1-63 letters, digits, '.', '_' or '-'");
