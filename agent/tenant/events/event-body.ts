/**
 * Reads the body of one syslog message (what follows its header): CEF (`CEF:0|vendor|product|version|sigid|name|
 * severity|ext`, with `\|` `\\` escaped in the header and `\=` `\\` `\n` `\r` in the extension), LEEF 1.0 (tab
 * between attributes) and 2.0 (its own delimiter: one character, or hex as `0x09` / `x5E`), and plain key=value
 * text (values bare or in single or double quotes with backslash escapes). It keeps the vendor's fields and maps
 * the common names of addresses and ports (src/dst/spt/dpt and their aliases, CEF `csN`/`cnN` by their labels)
 * to the normalised ones. Pure and bounded: linear regexes only, at most MAX_FIELDS fields of bounded size.
 * Not the header (syslog-header.ts) nor custom properties (the pipeline runs those on the whole message).
 */
import { isIP } from 'node:net';

export type BodyFormat = 'cef' | 'leef' | 'kv' | 'text';

export interface EventBody {
  format: BodyFormat;
  /** Vendor fields in the order given; the first occurrence of a key wins. */
  fields: Record<string, string>;
  sourceAddress?: string;
  destinationAddress?: string;
  sourcePort?: number;
  destinationPort?: number;
  vlan?: number;
  flowSource?: string;
}

/** Enough for every CEF/LEEF dictionary key an event normally carries; more are noise an attacker could pad. */
export const MAX_FIELDS = 64;
const MAX_KEY = 64;
const MAX_VALUE = 1024;

type Normalised = 'sourceAddress' | 'destinationAddress' | 'sourcePort' | 'destinationPort' | 'vlan' | 'flowSource';
/** Lower-cased field names (CEF, LEEF, firewalls' kv dialects) and the normalised field each one fills. */
const ALIASES: ReadonlyMap<string, Normalised> = new Map(
  (
    [
      ['sourceAddress', 'src srcip src_ip sip source_ip sourceip sourceaddress source_address saddr srcaddr src_addr'],
      ['destinationAddress', 'dst dstip dst_ip dip destination_ip destinationip destinationaddress daddr dstaddr'],
      ['sourcePort', 'spt sport srcport src_port sourceport source_port s_port'],
      ['destinationPort', 'dpt dport dstport dst_port destinationport destination_port d_port'],
      ['vlan', 'vlan vlanid vlan_id'],
      ['flowSource', 'flowsource flow_source flowsrc'],
    ] as const
  ).flatMap(([to, names]) => names.split(' ').map((n) => [n, to] as const)),
);
/** The vendor field names read as an address, port, VLAN or flow source, as written in CEF and kv bodies. */
export const NORMALISED_FROM: readonly string[] = [...ALIASES.keys()];

class Fields {
  readonly out: Record<string, string> = Object.create(null) as Record<string, string>;
  private n = 0;
  add(key: string, value: string): void {
    if (this.n >= MAX_FIELDS || key.length > MAX_KEY || key in this.out) return;
    this.out[key] = value.length > MAX_VALUE ? value.slice(0, MAX_VALUE) : value;
    this.n++;
  }
}

/** Splits `count` `|`-separated fields off `s` (`\|` and `\\` escaped); the rest after the last `|` is returned too. */
function splitPipes(s: string, count: number): { parts: string[]; rest: string } | undefined {
  const parts: string[] = [];
  let cur = '';
  let i = 0;
  for (; i < s.length && parts.length < count; i++) {
    const c = s[i];
    if (c === '\\' && (s[i + 1] === '|' || s[i + 1] === '\\')) cur += s[++i];
    else if (c === '|') {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  return parts.length === count ? { parts, rest: s.slice(i) } : undefined;
}

const CEF_KEY_RE = /(?:^|[ \t])([A-Za-z0-9_.[\]-]{1,64})=/g;

function unescapeCef(v: string): string {
  return v.replace(/\\([\\=nr|])/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c));
}

/** CEF extension: `k=v k2=v with spaces`; a value runs up to the space before the next unescaped `key=`. */
function cefExtension(ext: string, f: Fields): void {
  const keys: { key: string; start: number; valueAt: number }[] = [];
  for (const m of ext.matchAll(CEF_KEY_RE)) {
    keys.push({ key: m[1], start: m.index, valueAt: m.index + m[0].length });
    if (keys.length > MAX_FIELDS * 2) break;
  }
  keys.forEach((k, i) => {
    const end = i + 1 < keys.length ? keys[i + 1].start : ext.length;
    f.add(k.key, unescapeCef(ext.slice(k.valueAt, end).trim()));
  });
}

function cef(msg: string, at: number): EventBody | undefined {
  const split = splitPipes(msg.slice(at + 4), 7);
  if (!split) return undefined;
  const f = new Fields();
  const names = ['cefVersion', 'deviceVendor', 'deviceProduct', 'deviceVersion', 'signatureId', 'name', 'cefSeverity'];
  split.parts.forEach((p, i) => f.add(names[i], p));
  cefExtension(split.rest, f);
  return normalise('cef', f.out);
}

/** LEEF 2.0's delimiter field: one character, or its code in hex (`0x09`, `x09`); undefined when it is not one. */
function leefDelimiter(field: string): string | undefined {
  if (field.length === 1) return field;
  const hex = /^0?[xX]([0-9A-Fa-f]{1,4})$/.exec(field);
  return hex ? String.fromCharCode(parseInt(hex[1], 16)) : undefined;
}

function leef(msg: string, at: number): EventBody | undefined {
  const body = msg.slice(at + 5);
  const split = splitPipes(body, 5);
  if (!split) return undefined;
  const f = new Fields();
  const names = ['leefVersion', 'vendor', 'product', 'version', 'eventId'];
  split.parts.forEach((p, i) => f.add(names[i], p));
  let attrs = split.rest;
  let delim = '\t';
  if (split.parts[0].startsWith('2')) {
    const bar = attrs.indexOf('|');
    const d = bar >= 0 ? leefDelimiter(attrs.slice(0, bar)) : undefined;
    if (d !== undefined) {
      delim = d;
      attrs = attrs.slice(bar + 1);
    } else if (bar === 0) attrs = attrs.slice(1); // an empty delimiter field: the tab
  }
  // Senders of LEEF 1.0 that use spaces where the format says tab are common: read those like CEF.
  if (!attrs.includes(delim)) cefExtension(attrs, f);
  else
    for (const a of attrs.split(delim)) {
      const eq = a.indexOf('=');
      if (eq > 0) f.add(a.slice(0, eq).trim(), a.slice(eq + 1));
    }
  return normalise('leef', f.out);
}

const KV_RE = /(?:^|[\s,;])([A-Za-z_][A-Za-z0-9_.-]{0,63})=("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s]*)/g;

function kv(msg: string): EventBody {
  const f = new Fields();
  for (const m of msg.matchAll(KV_RE)) {
    let v = m[2];
    if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v.endsWith(v[0])) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    else v = v.replace(/[,;]$/, '');
    f.add(m[1], v);
  }
  return normalise(Object.keys(f.out).length ? 'kv' : 'text', f.out);
}

function port(v: string): number | undefined {
  if (!/^\d{1,5}$/.test(v)) return undefined;
  const n = Number(v);
  return n <= 65535 ? n : undefined;
}

/** The normalised fields from the vendor fields: first alias wins; CEF's `csN`/`cnN` count under their labels. */
function normalise(format: BodyFormat, fields: Record<string, string>): EventBody {
  const out: EventBody = { format, fields };
  for (const [key, value] of Object.entries(fields)) {
    if (key.endsWith('Label')) continue;
    const label = fields[`${key}Label`];
    const to = ALIASES.get((label ?? key).toLowerCase());
    if (!to || out[to] !== undefined) continue;
    const v = value.trim();
    if (to === 'sourceAddress' || to === 'destinationAddress') {
      if (isIP(v)) out[to] = v;
    } else if (to === 'flowSource') {
      if (v) out.flowSource = v.slice(0, 255);
    } else if (to === 'vlan') {
      const n = /^\d{1,4}$/.test(v) ? Number(v) : NaN;
      if (n <= 4095) out.vlan = n;
    } else {
      const p = port(v);
      if (p !== undefined) out[to] = p;
    }
  }
  return out;
}

export function parseEventBody(message: string): EventBody {
  // CEF and LEEF may follow a prefix (a relay's own header); look for them near the start only.
  const head = message.slice(0, 256);
  const c = head.indexOf('CEF:');
  if (c >= 0 && (c === 0 || head[c - 1] === ' ')) {
    const r = cef(message, c);
    if (r) return r;
  }
  const l = head.indexOf('LEEF:');
  if (l >= 0 && (l === 0 || head[l - 1] === ' ')) {
    const r = leef(message, l);
    if (r) return r;
  }
  return kv(message);
}
