/**
 * The layout of an agent's directory (`--dir DIR`), shared by the installer (which writes the config,
 * CA and one-time key) and the agent (which enrols and runs from it). The config schema lives here too.
 */
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { configChecker } from './config-check.js';
import { BadParameterError } from './errors.js';
import { NAME_PATTERN } from './names.js';

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
  mainUrl: string;
  tenant?: string;
  tenantPublicKey?: string;
  group?: string;
  /** Engines: destinations the engine may dial (CIDR[:PORT|PORT-PORT] or HOST[:PORT]); empty = deny all. */
  allow?: string[];
  logLevel?: string;
}

export const AGENT_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['format', 'kind', 'name', 'mainUrl'],
  properties: {
    format: { const: 1 },
    kind: { enum: ['host', 'engine'] },
    name: { type: 'string', pattern: NAME_PATTERN },
    mainUrl: { type: 'string', pattern: '^https://' },
    tenant: { type: 'string', pattern: NAME_PATTERN },
    tenantPublicKey: { type: 'string' },
    group: { type: 'string', pattern: NAME_PATTERN },
    allow: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 300 } },
    logLevel: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] },
  },
} as const;

const check = configChecker<AgentConfig>(AGENT_CONFIG_SCHEMA);

export function checkAgentConfig(raw: unknown, source: string): Readonly<AgentConfig> {
  return Object.freeze({ ...check(raw, source) });
}

export async function loadAgentConfig(paths: AgentPaths): Promise<Readonly<AgentConfig>> {
  let text: string;
  try { text = await readFile(paths.config, 'utf8'); } catch {
    throw new BadParameterError('ERR_AGENT_NOT_INSTALLED', `${paths.config} not found: install first with 'palisade agent install --bundle FILE --dir ${paths.dir}'`, { field: 'dir' });
  }
  let raw: unknown;
  try { raw = JSON.parse(text); } catch { throw new BadParameterError('ERR_CONFIG_INVALID', `${paths.config} is not valid JSON`); }
  return checkAgentConfig(raw, paths.config);
}
