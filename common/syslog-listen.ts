/**
 * Where an engine receives syslog: `udp:ADDR:PORT`, `tcp:ADDR:PORT` or `tls:ADDR:PORT` as the installer's
 * `--syslog` flag takes it, and `{transport, host, port}` as agent.json keeps it (the `syslog` key). ADDR is
 * what a socket binds (address.ts's listen form: an IP literal or localhost; port 0 = any free one). Syntax
 * only: the listeners are agent/engine/syslog/.
 */
import { formatHostPort, readHostPort } from './address.js';
import { BadParameterError } from './errors.js';
import type { SyslogTransport } from './syslog-record.js';

export interface SyslogListen {
  transport: SyslogTransport;
  host: string;
  port: number;
}

export const SYSLOG_TRANSPORTS: readonly SyslogTransport[] = ['udp', 'tcp', 'tls'];
/** More listeners than this on one engine is a mistake (a loop in a script), not a deployment. */
export const MAX_SYSLOG_LISTENERS = 16;
const EXPECTED = 'udp:ADDR:PORT, tcp:ADDR:PORT or tls:ADDR:PORT with an IP address or localhost';

/** `udp:127.0.0.1:5514` in parts, or what is wrong with it. */
export function readSyslogListen(text: string): SyslogListen | { problem: string } {
  const colon = text.indexOf(':');
  const transport = text.slice(0, colon) as SyslogTransport;
  if (colon < 0 || !SYSLOG_TRANSPORTS.includes(transport))
    return { problem: 'it does not start with udp:, tcp: or tls:' };
  const at = readHostPort(text.slice(colon + 1), 'listen');
  if ('problem' in at) return at;
  return { transport, host: at.host, port: at.port };
}

/** `--syslog SPEC` (repeatable), checked at install: a typo fails there with exit 2, not at the engine's start. */
export function parseSyslogListens(values: readonly string[]): SyslogListen[] {
  if (values.length > MAX_SYSLOG_LISTENERS)
    throw new BadParameterError(
      'ERR_BAD_SYSLOG',
      `--syslog is given ${values.length} times; at most ${MAX_SYSLOG_LISTENERS}`,
      {
        field: 'syslog',
      },
    );
  const seen = new Set<string>();
  return values.map((raw) => {
    const text = raw.trim();
    const r = readSyslogListen(text);
    if ('problem' in r)
      throw new BadParameterError(
        'ERR_BAD_SYSLOG',
        `--syslog "${text}": ${r.problem}; expected ${EXPECTED}, e.g. udp:0.0.0.0:514`,
        {
          field: 'syslog',
        },
      );
    const key = `${r.transport === 'udp' ? 'udp' : 'tcp'}:${r.port}:${r.host}`;
    if (r.port !== 0 && seen.has(key))
      throw new BadParameterError('ERR_BAD_SYSLOG', `--syslog "${text}": that port is given twice`, {
        field: 'syslog',
      });
    seen.add(key);
    return r;
  });
}

export function formatSyslogListen(l: SyslogListen): string {
  return `${l.transport}:${formatHostPort(l.host, l.port)}`;
}

/** agent.json's `syslog` items' host: an address a listener can bind. */
export const SYSLOG_HOST_FORMAT = {
  test: (s: string) => !('problem' in readHostPort(formatHostPort(s, 0), 'listen')),
  expected: 'an IP address or localhost',
};
