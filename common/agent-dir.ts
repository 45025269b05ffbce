/**
 * The layout of an agent's directory (`--dir DIR`), shared by the installer (which writes the config,
 * CA and one-time key) and the agent (which enrols and runs from it). The config schema lives here too.
 */
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { configChecker, type ConfigRule } from './config-check.js';
import { ADDRESS_FORMATS } from './address.js';
import { MAIN_URL_FORMAT } from './main-url.js';
import { BadParameterError } from './errors.js';
import { NAME_PATTERN } from './names.js';
import { MAX_SYSLOG_LISTENERS, SYSLOG_HOST_FORMAT, SYSLOG_TRANSPORTS, type SyslogListen } from './syslog-listen.js';

export function agentPaths(dir: string) {
  return {
    dir,
    config: join(dir, 'agent.json'),
    caCert: join(dir, 'ca.pem'),
    enrolKey: join(dir, 'enrol-key'),
    key: join(dir, 'pki', 'agent-key.pem'),
    cert: join(dir, 'pki', 'agent.pem'),
    boxKey: join(dir, 'pki', 'tunnel-key.json'),
    identity: join(dir, 'identity.json'),
    state: join(dir, 'data', 'state'),
    logFile: join(dir, 'logs', 'agent.log'),
  };
}
export type AgentPaths = ReturnType<typeof agentPaths>;

export interface AgentConfig {
  format: 1;
  kind: 'host' | 'engine';
  name: string;
  /**
   * Main's URLs, tried in order (agent/main-url-rotation.ts). A file may give the single `mainUrl` of
   * earlier versions instead; checkAgentConfig reads it as a list of one.
   */
  mainUrls: readonly string[];
  tenant?: string;
  tenantPublicKey?: string;
  group?: string;
  /**
   * Engines: destinations the engine may dial (CIDR[:PORT|PORT-PORT] or HOST[:PORT|PORT-PORT], address.ts); empty =
   * deny all.
   */
  allow?: string[];
  /**
   * Hosts: where to listen for engines' direct tunnel connections (ADDR:PORT, port 0 = any free one), or
   * "off" for the relayed path only. Default DEFAULT_ENGINE_LISTEN.
   */
  engineListen?: string;
  /** Hosts: the HOST:PORT engines should dial when it is not the listen address (NAT, port forward, DNS name). */
  engineAdvertise?: string;
  /** Engines: false = never dial the host directly, always relay through main (default true). */
  direct?: boolean;
  /**
   * Hosts run as root: false = tenants run as the host's user, not one system user each (default true; for machines
   * without useradd).
   */
  tenantUsers?: boolean;
  /**
   * Hosts: loopback or own addresses (IP:PORT, exact) that integrations run on its tenants may still connect to,
   * e.g. a local proxy; by default they may connect to none (agent/integrations/target-guard.ts).
   */
  integrationLoopbackAllow?: string[];
  /** Engines: where to receive syslog (`--syslog`, agent/engine/syslog/); none by default. */
  syslog?: SyslogListen[];
  /** Engines: the syslog spool bound on disk in MiB (default DEFAULT_SYSLOG_SPOOL_MB); oldest batches go first. */
  syslogSpoolMb?: number;
  logLevel?: string;
}

/** 256 MiB: minutes of a busy sender's events (a few MB/s) while the tenant restarts or moves, on any engine's disk. */
export const DEFAULT_SYSLOG_SPOOL_MB = 256;

/**
 * Loopback by default: a host opens no new port to the network unless its operator says so (e.g.
 * "0.0.0.0:7443" plus a firewall rule); engines on the same machine (demo, tests, benchmark) use it, and
 * any engine that cannot reach it relays through main as before.
 */
export const DEFAULT_ENGINE_LISTEN = '127.0.0.1:0';

/** agent.json as written: `mainUrls`, or the single `mainUrl` of earlier versions (ONE_MAIN_URL_KEY). */
type AgentConfigFile = Omit<AgentConfig, 'mainUrls'> & { mainUrls?: string[]; mainUrl?: string };

export const AGENT_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['format', 'kind', 'name'],
  properties: {
    format: { const: 1 },
    kind: { enum: ['host', 'engine'] },
    name: { type: 'string', pattern: NAME_PATTERN },
    mainUrls: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', format: 'main-url' } },
    mainUrl: { type: 'string', format: 'main-url' },
    tenant: { type: 'string', pattern: NAME_PATTERN },
    tenantPublicKey: { type: 'string' },
    group: { type: 'string', pattern: NAME_PATTERN },
    allow: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 300, format: 'allow-rule' } },
    engineListen: { type: 'string', format: 'listen-address-or-off' },
    engineAdvertise: { type: 'string', format: 'dial-address' },
    direct: { type: 'boolean' },
    tenantUsers: { type: 'boolean' },
    integrationLoopbackAllow: {
      type: 'array',
      maxItems: 100,
      uniqueItems: true,
      items: { type: 'string', format: 'ip-port' },
    },
    syslog: {
      type: 'array',
      maxItems: MAX_SYSLOG_LISTENERS,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['transport', 'host', 'port'],
        properties: {
          transport: { enum: SYSLOG_TRANSPORTS },
          host: { type: 'string', format: 'syslog-host' },
          port: { type: 'integer', minimum: 0, maximum: 65535 },
        },
      },
    },
    syslogSpoolMb: { type: 'integer', minimum: 1, maximum: 1_048_576 },
    logLevel: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] },
  },
} as const;

/** Exactly one of `mainUrls` and `mainUrl`: with both, which one the agent obeys would be a guess. */
const ONE_MAIN_URL_KEY: ConfigRule = (raw) => {
  if ('mainUrls' in raw && 'mainUrl' in raw) return '/mainUrl and /mainUrls are both given: keep /mainUrls';
  if (!('mainUrls' in raw) && !('mainUrl' in raw)) return '/mainUrls is missing (the list of main URLs to try)';
  return undefined;
};

const check = configChecker<AgentConfigFile>(
  AGENT_CONFIG_SCHEMA,
  {
    ...ADDRESS_FORMATS,
    'main-url': MAIN_URL_FORMAT,
    'syslog-host': SYSLOG_HOST_FORMAT,
  },
  [ONE_MAIN_URL_KEY],
);

/** Checks agent.json and returns it frozen, with a single `mainUrl` read as `mainUrls` of one. */
export function checkAgentConfig(raw: unknown, source: string): Readonly<AgentConfig> {
  const { format, kind, name, mainUrl, mainUrls, ...rest } = check(raw, source);
  // The list right after the name, where an operator reading agent.json looks for it.
  return Object.freeze({ format, kind, name, mainUrls: Object.freeze([...(mainUrls ?? [mainUrl!])]), ...rest });
}

export async function loadAgentConfig(paths: AgentPaths): Promise<Readonly<AgentConfig>> {
  let text: string;
  try {
    text = await readFile(paths.config, 'utf8');
  } catch {
    throw new BadParameterError(
      'ERR_AGENT_NOT_INSTALLED',
      `${paths.config} not found: install first with 'palisade agent install --bundle FILE --dir ${paths.dir}'`,
      { field: 'dir' },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new BadParameterError('ERR_CONFIG_INVALID', `${paths.config} is not valid JSON`);
  }
  return checkAgentConfig(raw, paths.config);
}
