/**
 * The one grammar of network addresses as people, configs and peers write them: `HOST:PORT`,
 * `[IPv6]:PORT`, a bare port, and the engine's allow rules `CIDR[:PORT|PORT-PORT]` /
 * `HOST[:PORT|PORT-PORT]`; parsed into typed parts and written back. The installer's flags, agent.json,
 * the admin CLI, the tenant's tunnel API, the engine's allow-list and listeners, the host's engine port
 * and main's direct endpoint all read addresses here, so what one accepts the others accept. Syntax only:
 * what an IP address means (loopback, metadata, an IPv4 address inside an IPv6 one) is ip-address.ts's,
 * and nothing here resolves a name.
 *
 * HOST:PORT comes in two forms, because the two ends of a connection want different things:
 * - `listen`: an IP literal or `localhost` (a socket binds an address, not a name); port 0 = any free one.
 * - `dial`: an IP literal or a DNS name (letters, digits, underscores, inner hyphens; not all digits); port 1-65535.
 * An IPv6 literal is always in brackets, so where the port starts is never a guess. Zone ids (`%eth0`) are
 * refused: no caller binds or dials a link-local address, and a zone means nothing on another machine.
 * Whitespace is refused; callers that take typed input (installer flags) trim it first, allow rules are
 * trimmed here.
 */
import { isIP } from 'node:net';
import { BadParameterError } from './errors.js';
import type { CodeOf } from './error-codes.js';

export type AddressForm = 'listen' | 'dial';

/** HOST:PORT in parts: `host` as written (an IPv6 literal without its brackets); `family` 4, 6 or 0 for a name. */
export interface HostPort {
  readonly host: string;
  readonly family: 0 | 4 | 6;
  readonly port: number;
}

/**
 * An engine allow rule: an IP network (a bare address is its /32 or /128) or a host name, and the ports
 * it opens (1-65535 when none is given). `text` is the rule as written, trimmed.
 */
export interface AllowRule {
  readonly text: string;
  readonly cidr?: { readonly addr: string; readonly bits: number; readonly family: 'ipv4' | 'ipv6' };
  readonly host?: string;
  readonly from: number;
  readonly to: number;
}

/** What is wrong with a value, for callers that refuse it in their own way (a log line, a 403, undefined). */
export interface AddressProblem {
  readonly problem: string;
}

/**
 * Where a value came from, for its refusal: the stable error code, the field, how the user wrote the
 * field (`--engine-listen`; default the field) and an example of a good value.
 */
export interface AddressSource {
  readonly code: CodeOf<'bad-parameter'>;
  readonly field: string;
  readonly label?: string;
  readonly example?: string;
}

const EXPECTED = {
  listen: 'ADDR:PORT with an IP address or localhost (port 0 = any free one)',
  dial: 'HOST:PORT with an IP address or DNS name and a port 1-65535',
  allow: 'CIDR[:PORT|PORT-PORT] or HOST[:PORT|PORT-PORT]',
} as const;
const EXAMPLE = {
  listen: '127.0.0.1:7443',
  dial: 'gw.example.net:7443',
  allow: '10.0.0.0/24:389 or mail.corp:25',
} as const;
const MIN_PORT: Readonly<Record<AddressForm, number>> = { listen: 0, dial: 1 };

/**
 * Dot-separated labels of letters, digits, underscores and inner hyphens, 63 characters each and 253 in all,
 * perhaps ending in a dot (an absolute name, as resolvers and older configs write it).
 * Underscores are not in RFC 952 host names but they are in DNS, and in the names of customers' machines
 * (Windows NetBIOS-derived names, `_ldap._tcp`-style records): an engine must be able to dial them.
 */
const DNS_NAME =
  /^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;
/** All digits and dots is a mistyped IPv4 address (1.2.3.999), never a name. */
const DIGITS_AND_DOTS = /^[\d.]+$/;
const TWO_COLONS = 'more than one ":" (an IPv6 address goes in brackets, e.g. [2001:db8::7]:7443)';

type Read<T> = T | AddressProblem;
const problem = (text: string): AddressProblem => ({ problem: text });
const failed = <T extends object>(r: Read<T>): r is AddressProblem => 'problem' in r;

/** `HOST:PORT` of `form` in parts, or what is wrong with it. */
export function readHostPort(text: string, form: AddressForm): HostPort | AddressProblem {
  const whole = wholeProblem(text);
  if (whole) return problem(whole);
  let hostText: string, portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0) return problem('an IPv6 address in "[" lacks its closing "]"');
    if (text[close + 1] !== ':') return problem(`no ":PORT" after "${text.slice(0, close + 1)}"`);
    [hostText, portText] = [text.slice(0, close + 1), text.slice(close + 2)];
  } else {
    const colons = text.split(':').length - 1;
    if (colons === 0) return problem('no ":PORT"');
    if (colons > 1) return problem(TWO_COLONS);
    [hostText, portText] = text.split(':') as [string, string];
  }
  const host = readHost(hostText, form);
  if (failed(host)) return host;
  const port = readPort(portText, MIN_PORT[form]);
  if (failed(port)) return port;
  return { ...host, port: port.port };
}

/** `readHostPort`, refusing with a BadParameterError that names the field and shows a good value. */
export function parseHostPort(text: string, form: AddressForm, source: AddressSource): HostPort {
  const r = readHostPort(text, form);
  if (failed(r)) throw refusal(source, text, r.problem, EXPECTED[form], EXAMPLE[form]);
  return r;
}

/** A listen setting that may also be `off` (the host's engine port). */
export function parseListenSetting(text: string, source: AddressSource): HostPort | 'off' {
  if (text === 'off') return 'off';
  const r = readHostPort(text, 'listen');
  if (failed(r)) throw refusal(source, text, r.problem, `${EXPECTED.listen} or "off"`, EXAMPLE.listen);
  return r;
}

/** A port on its own (`--port`): decimal digits, 0-65535 to listen on, 1-65535 to dial. */
export function parsePort(text: string, form: AddressForm, source: AddressSource): number {
  const whole = wholeProblem(text);
  const r = whole ? problem(whole) : readPort(text, MIN_PORT[form]);
  if (failed(r)) throw refusal(source, text, r.problem, `a port number ${MIN_PORT[form]}-65535`, '8443');
  return r.port;
}

/** HOST:PORT as this grammar reads it back: an IPv6 literal in brackets, anything else as it is. */
export function formatHostPort(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** An allow rule in parts, or what is wrong with it. Surrounding whitespace is ignored. */
export function readAllowRule(raw: string): AllowRule | AddressProblem {
  const text = raw.trim();
  const whole = wholeProblem(text);
  if (whole) return problem(whole);
  let targetText = text,
    portsText: string | undefined;
  const close = text.startsWith('[') ? text.indexOf(']') : -1;
  if (text.startsWith('[') && close < 0) return problem('an IPv6 address in "[" lacks its closing "]"');
  const colon = text.indexOf(':', close + 1);
  if (colon >= 0) {
    if (text.indexOf(':', colon + 1) >= 0) return problem(TWO_COLONS);
    [targetText, portsText] = [text.slice(0, colon), text.slice(colon + 1)];
  }
  const target = readAllowTarget(targetText);
  if (failed(target)) return target;
  const ports = portsText === undefined ? { from: 1, to: 65535 } : readPortRange(portsText);
  if (failed(ports)) return ports;
  return { text, ...target, ...ports };
}

/** `readAllowRule`, refusing with a BadParameterError that names the field and shows good rules. */
export function parseAllowRule(text: string, source: AddressSource): AllowRule {
  const r = readAllowRule(text);
  if (failed(r)) throw refusal(source, text.trim(), r.problem, EXPECTED.allow, EXAMPLE.allow);
  return r;
}

/**
 * The grammar as JSON-schema formats, for config files (common/config-check.ts): each with the test and
 * what a good value looks like, for the message.
 */
export const ADDRESS_FORMATS = {
  'listen-address-or-off': {
    test: (s: string) => s === 'off' || !failed(readHostPort(s, 'listen')),
    expected: `${EXPECTED.listen} or "off"`,
  },
  'dial-address': { test: (s: string) => !failed(readHostPort(s, 'dial')), expected: EXPECTED.dial },
  /** One exact socket address: an IP literal (a name's answers may change) and a port 1-65535. */
  'ip-port': {
    test: (s: string) => {
      const r = readHostPort(s, 'dial');
      return !failed(r) && r.family !== 0;
    },
    expected: 'IP:PORT or [IPv6]:PORT with a port 1-65535, e.g. 127.0.0.1:9000',
  },
  'allow-rule': { test: (s: string) => !failed(readAllowRule(s)), expected: EXPECTED.allow },
} as const;

function refusal(
  source: AddressSource,
  text: string,
  why: string,
  expected: string,
  example: string,
): BadParameterError {
  return new BadParameterError(
    source.code,
    `${source.label ?? source.field} "${text}": ${why}; expected ${expected}, e.g. ${source.example ?? example}`,
    { field: source.field },
  );
}

function wholeProblem(text: string): string | undefined {
  if (text === '') return 'empty';
  if (/\s/.test(text)) return 'contains whitespace';
  return undefined;
}

/** The host of HOST:PORT: `[IPv6]`, IPv4, or (dial) a DNS name / (listen) `localhost`. */
function readHost(text: string, form: AddressForm): Read<{ host: string; family: 0 | 4 | 6 }> {
  if (text.startsWith('[')) {
    const ip = readBracketed(text);
    return failed(ip) ? ip : { host: ip.addr, family: 6 };
  }
  if (text === '') return problem('no host before ":"');
  if (isIP(text) === 4) return { host: text, family: 4 };
  if (form === 'listen') {
    if (text === 'localhost') return { host: text, family: 0 };
    return problem(`"${text}" is not an IP address (a listener binds an address; of names only "localhost" is taken)`);
  }
  if (!isDnsName(text)) return problem(`"${text}" is neither an IP address nor a DNS name`);
  return { host: text, family: 0 };
}

/** `[IPv6]` (brackets included) → the address inside. */
function readBracketed(text: string): Read<{ addr: string }> {
  if (!text.endsWith(']')) return problem(`"${text}" has text after its closing "]"`);
  const addr = text.slice(1, -1);
  if (addr.includes('%')) return problem('a zone id ("%…") is not supported; give the address without it');
  if (isIP(addr) !== 6) return problem(`"${addr}" in brackets is not an IPv6 address`);
  return { addr };
}

function isDnsName(text: string): boolean {
  return DNS_NAME.test(text) && !DIGITS_AND_DOTS.test(text);
}

function readPort(text: string, min: number): Read<{ port: number }> {
  if (text === '') return problem('no port after ":"');
  if (!/^\d+$/.test(text)) return problem(`port "${text}" is not a number`);
  const port = Number(text);
  if (text.length > 5 || port < min || port > 65535) return problem(`port ${text} is out of range (${min}-65535)`);
  return { port };
}

function readPortRange(text: string): Read<{ from: number; to: number }> {
  if (text === '') return problem('no port after ":"');
  if (!/^\d+(?:-\d+)?$/.test(text)) return problem(`ports "${text}" are neither PORT nor PORT-PORT`);
  const dash = text.indexOf('-');
  const from = readPort(dash < 0 ? text : text.slice(0, dash), 1);
  if (failed(from)) return from;
  if (dash < 0) return { from: from.port, to: from.port };
  const to = readPort(text.slice(dash + 1), 1);
  if (failed(to)) return to;
  if (to.port < from.port) return problem(`port range ${text} is reversed (write ${to.port}-${from.port})`);
  return { from: from.port, to: to.port };
}

/** The target of an allow rule: an IP network `ADDR/BITS` (IPv6 in brackets), an IP address or a name. */
function readAllowTarget(text: string): Read<Pick<AllowRule, 'cidr' | 'host'>> {
  const slash = text.startsWith('[') ? text.indexOf('/', text.indexOf(']')) : text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const bitsText = slash < 0 ? undefined : text.slice(slash + 1);
  let addr: string, family: 'ipv4' | 'ipv6';
  if (addrText.startsWith('[')) {
    const ip = readBracketed(addrText);
    if (failed(ip)) return ip;
    [addr, family] = [ip.addr, 'ipv6'];
  } else if (isIP(addrText) === 4) {
    [addr, family] = [addrText, 'ipv4'];
  } else {
    if (addrText === '') return problem('no address or name');
    if (bitsText !== undefined)
      return problem(`a prefix length ("/${bitsText}") follows an IP address, not "${addrText}"`);
    if (!isDnsName(addrText)) return problem(`"${addrText}" is neither an IP address nor a DNS name`);
    return { host: addrText };
  }
  const max = family === 'ipv4' ? 32 : 128;
  if (bitsText === undefined) return { cidr: { addr, bits: max, family } };
  if (!/^\d{1,3}$/.test(bitsText) || Number(bitsText) > max)
    return problem(`prefix length "/${bitsText}" is not 0-${max}`);
  return { cidr: { addr, bits: Number(bitsText), family } };
}
