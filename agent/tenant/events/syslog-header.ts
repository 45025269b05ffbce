/**
 * Reads the header of one syslog message: RFC 5424 (`<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`) or the
 * BSD format of RFC 3164 (`<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`, also with an ISO timestamp as rsyslog's
 * high-precision template sends), or no header at all. Pure and forgiving: a part it cannot read is left out and
 * the rest becomes the message, because a syslog receiver that drops a malformed line loses evidence.
 * Not the body (event-body.ts reads key=value, CEF and LEEF from `message`).
 *
 * Times: an RFC 3164 timestamp has neither year nor zone. It is read as UTC in the year of receipt (the year
 * before when that would put it more than a day after receipt, as at New Year). The event's order and retention
 * use the receipt time anyway (QRadar's "start time"); the header's time is kept as `logSourceTime`.
 */

export interface SyslogHeader {
  facility?: number;
  severity?: number;
  /** ms since the epoch, when the header carried a time that could be read. */
  time?: number;
  host?: string;
  app?: string;
  procId?: string;
  msgId?: string;
  /** RFC 5424 structured data as sent (`[id k="v"]…`), when any. */
  structuredData?: string;
  message: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const PRI_RE = /^<(\d{1,3})>/;
const BSD_TIME_RE = /^([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) /;
const ISO_TIME_RE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)) /;
/** A BSD tag: the program name, maybe `[pid]`, then a colon (RFC 3164 §4.1.3; 48 is generous, 32 is the RFC's). */
const TAG_RE = /^([A-Za-z0-9_./@-]{1,48})(?:\[([^\]\s]{1,32})\])?: ?/;
const DAY_MS = 86_400_000;
const NIL = '-';

/** Reads `<PRI>` as facility and severity (PRI = facility * 8 + severity, at most 191). */
function readPri(raw: string): { facility?: number; severity?: number; rest: string } {
  const m = PRI_RE.exec(raw);
  if (!m || Number(m[1]) > 191) return { rest: raw };
  const pri = Number(m[1]);
  return { facility: pri >> 3, severity: pri & 7, rest: raw.slice(m[0].length) };
}

/** An ISO time with milliseconds kept (more digits dropped): Date.parse takes at most three. */
function isoTime(text: string): number | undefined {
  const t = Date.parse(text.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isFinite(t) ? t : undefined;
}

function bsdTime(m: RegExpExecArray, receivedAt: number): number | undefined {
  const month = MONTHS.indexOf(m[1]);
  if (month < 0) return undefined;
  const year = new Date(receivedAt).getUTCFullYear();
  const at = (y: number) => Date.UTC(y, month, Number(m[2].trim()), Number(m[3]), Number(m[4]), Number(m[5]));
  const t = at(year);
  if (!Number.isFinite(t)) return undefined;
  return t > receivedAt + DAY_MS ? at(year - 1) : t;
}

/** Splits off one space-separated token. */
function token(s: string): [string, string] {
  const sp = s.indexOf(' ');
  return sp < 0 ? [s, ''] : [s.slice(0, sp), s.slice(sp + 1)];
}

/** RFC 5424 structured data: `-` or one or more `[…]` elements, with `\]` escaped inside values. */
function splitStructuredData(s: string): [string | undefined, string] {
  if (s.startsWith(NIL)) return [undefined, s.slice(s.startsWith('- ') ? 2 : 1)];
  let i = 0;
  while (s[i] === '[') {
    i++;
    let quoted = false;
    for (; i < s.length; i++) {
      const c = s[i];
      if (c === '\\' && quoted) i++;
      else if (c === '"') quoted = !quoted;
      else if (c === ']' && !quoted) break;
    }
    i++; // past ']'
  }
  if (i === 0) return [undefined, s];
  return [s.slice(0, i), s.slice(s[i] === ' ' ? i + 1 : i)];
}

function rfc5424(rest: string, h: SyslogHeader): SyslogHeader {
  let s = rest.slice(2); // "1 "
  let t: string;
  [t, s] = token(s);
  if (t !== NIL) h.time = isoTime(t);
  [t, s] = token(s);
  if (t !== NIL && t) h.host = t;
  [t, s] = token(s);
  if (t !== NIL && t) h.app = t;
  [t, s] = token(s);
  if (t !== NIL && t) h.procId = t;
  [t, s] = token(s);
  if (t !== NIL && t) h.msgId = t;
  const [sd, msg] = splitStructuredData(s);
  if (sd) h.structuredData = sd;
  h.message = msg.startsWith('\uFEFF') ? msg.slice(1) : msg; // the BOM RFC 5424 allows before UTF-8 text
  return h;
}

/** A hostname or address as a BSD header carries it: no colon at its end (that would be a tag), at most 255. */
const HOST_RE = /^[A-Za-z0-9][A-Za-z0-9._:%-]{0,254}$/;

function bsd(rest: string, receivedAt: number, h: SyslogHeader): SyslogHeader {
  let s = rest;
  const bt = BSD_TIME_RE.exec(s);
  const it = bt ? undefined : ISO_TIME_RE.exec(s);
  if (bt) {
    h.time = bsdTime(bt, receivedAt);
    s = s.slice(bt[0].length);
  } else if (it) {
    h.time = isoTime(it[1]);
    s = s.slice(it[0].length);
  }
  // A host only follows a timestamp; without one, the first word is more likely the tag or the message.
  if (bt || it) {
    const [host, after] = token(s);
    if (HOST_RE.test(host) && !host.endsWith(':') && after) {
      h.host = host;
      s = after;
    }
  }
  // `CEF:0|…` and `LEEF:1.0|…` look like a tag followed by a message: they are the message.
  const tag = /^(?:CEF|LEEF):/.test(s) ? null : TAG_RE.exec(s);
  if (tag) {
    h.app = tag[1];
    if (tag[2]) h.procId = tag[2];
    s = s.slice(tag[0].length);
  }
  h.message = s;
  return h;
}

/**
 * The header's host as parseSyslogHeader reads it (what ingest needs to name the log source), without the rest of
 * the parse for an RFC 5424 header, the common case; other headers go through the whole parse.
 */
export function headerHost(raw: string, receivedAt: number): string | undefined {
  // '<', one to three digits, '>', then the version 1 and a space: read by character, as it runs once per event.
  let close = -1;
  let pri = 0;
  if (raw.charCodeAt(0) === 60)
    for (let at = 1; at <= 4; at++) {
      const c = raw.charCodeAt(at);
      if (c === 62) close = at; // '>'
      if (c < 48 || c > 57) break;
      pri = pri * 10 + c - 48;
    }
  if (close >= 2 && pri <= 191 && raw.charCodeAt(close + 1) === 49 && raw.charCodeAt(close + 2) === 32) {
    const ts = raw.indexOf(' ', close + 3);
    if (ts < 0) return undefined;
    const end = raw.indexOf(' ', ts + 1);
    const host = end < 0 ? raw.slice(ts + 1) : raw.slice(ts + 1, end);
    return host && host !== NIL ? host : undefined;
  }
  return parseSyslogHeader(raw, receivedAt).host;
}

export function parseSyslogHeader(raw: string, receivedAt: number): SyslogHeader {
  const { facility, severity, rest } = readPri(raw);
  const h: SyslogHeader = { message: rest };
  if (facility !== undefined) {
    h.facility = facility;
    h.severity = severity;
  }
  if (facility !== undefined && rest.startsWith('1 ')) return rfc5424(rest, h);
  return bsd(rest, receivedAt, h);
}
