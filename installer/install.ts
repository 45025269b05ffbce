/**
 * `palisade agent install` (and `install` of a release's palisade-agent.mjs, which install.sh runs): unpacks
 * a bundle into an agent directory — config, pinned CA, one-time key (0600) — and writes a systemd unit file
 * beside it. Refuses to overwrite an installed agent.
 */
import { access, mkdir, writeFile } from 'node:fs/promises';
import { resolve, join } from 'node:path';
import { readBundle } from '#common/bundle.js';
import { agentPaths, checkAgentConfig, DEFAULT_ENGINE_LISTEN, type AgentConfig } from '#common/agent-dir.js';
import { writeFileAtomic } from '#common/atomic-file.js';
import { parseAllowRule, parseHostPort, parseListenSetting } from '#common/address.js';
import { isMainUrl, MAIN_URL_EXPECTED } from '#common/main-url.js';
import { parseSyslogListens, type SyslogListen } from '#common/syslog-listen.js';
import { BadParameterError, ConflictError } from '#common/errors.js';
import {
  agentShellCommand,
  releaseShellCommand,
  releaseUnit,
  serviceUserOf,
  systemdUnit,
  unitFileName,
} from './systemd-unit.js';

export interface InstallOptions {
  bundle: string;
  dir: string;
  cli: string;
  /** The verb before `start` in `cli`'s command line: `agent` for bin/palisade.js, none for palisade-agent.mjs. */
  verb?: string[];
  /** `--main-url` (repeatable): main's URLs in the order to try them, instead of the one the bundle carries. */
  mainUrls?: string[];
  /** Engines: allow-list entries (`--allow`). */
  allow?: string[];
  /** Engines: false = never dial the host directly (`--no-direct`); commander sets true when not given. */
  direct?: boolean;
  /** Hosts: `--engine-listen ADDR:PORT|off` and `--engine-advertise HOST:PORT`. */
  engineListen?: string;
  engineAdvertise?: string;
  /** Engines: `--syslog udp:|tcp:|tls:ADDR:PORT` (repeatable), where to receive syslog. */
  syslog?: string[];
  /**
   * `--release-root PREFIX/<name>` (install.sh): the agent runs from that release layout as the palisade user,
   * so the unit and the start command are releaseUnit's and releaseShellCommand's; `dir` is its state/.
   */
  releaseRoot?: string;
}
export interface InstallResult {
  dir: string;
  kind: string;
  name: string;
  /** The URLs the agent tries, in order: the bundle's, or those given with --main-url. */
  mainUrls: string[];
  /** The first of mainUrls (the field of earlier versions, when there was only one). */
  mainUrl: string;
  unitFile: string;
  expiresAt: string;
  allow: string[];
  /**
   * Hosts: where it will listen for engines (as given, else the default) and, if given, what engines are told to dial.
   */
  engineListen?: string;
  engineAdvertise?: string;
  /** Engines: whether the direct path to the host is tried before relaying through main. */
  direct?: boolean;
  /** Engines: the syslog listeners, as agent.json keeps them. */
  syslog?: SyslogListen[];
  /** The unit's Environment= and ExecStart= as one shell command: how to start the agent by hand, as the unit would. */
  start: string;
  /** Installed from a release (--release-root): the system user it runs as, which install.sh makes. */
  serviceUser?: string;
}

type KindSettings = Pick<AgentConfig, 'allow' | 'direct' | 'engineListen' | 'engineAdvertise' | 'syslog'>;

export async function installAgent(o: InstallOptions): Promise<InstallResult> {
  const givenUrls = o.mainUrls?.length ? checkMainUrls(o.mainUrls) : undefined;
  const syslog = parseSyslogListens(o.syslog ?? []);
  const { manifest, caPem } = await readBundle(o.bundle);
  const paths = agentPaths(resolve(o.dir));
  if (
    await access(paths.config).then(
      () => true,
      () => false,
    )
  ) {
    throw new ConflictError('ERR_AGENT_ALREADY_INSTALLED', `${paths.dir} already holds an agent; use another --dir`, {
      field: 'dir',
    });
  }
  if (Date.parse(manifest.expiresAt) <= Date.now()) {
    throw new BadParameterError(
      'ERR_BUNDLE_EXPIRED',
      `this bundle's enrolment key expired at ${manifest.expiresAt}; ask the admin for a new one`,
      { field: 'bundle' },
    );
  }
  // Everything is checked before the directory is made: a refused install leaves nothing behind.
  const settings = kindSettings(manifest.kind, o, syslog);
  const config: AgentConfig = checkAgentConfig(
    {
      format: 1,
      kind: manifest.kind,
      name: manifest.name,
      mainUrls: givenUrls ?? [manifest.mainUrl],
      ...(manifest.tenant ? { tenant: manifest.tenant } : {}),
      ...(manifest.tenantPublicKey ? { tenantPublicKey: manifest.tenantPublicKey } : {}),
      ...(manifest.group ? { group: manifest.group } : {}),
      ...settings,
    },
    o.bundle,
  );
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(paths.caCert, caPem);
  await writeFileAtomic(paths.enrolKey, manifest.enrolKey + '\n', 0o600);
  const unitFile = join(paths.dir, unitFileName(manifest.kind, manifest.name));
  const root = o.releaseRoot === undefined ? undefined : resolve(o.releaseRoot);
  const dev = { node: process.execPath, cli: o.cli, dir: paths.dir, verb: o.verb };
  await writeFile(
    unitFile,
    root
      ? releaseUnit({ kind: manifest.kind, name: manifest.name, root })
      : systemdUnit({ kind: manifest.kind, name: manifest.name, ...dev }),
  );
  await writeFileAtomic(paths.config, JSON.stringify(config, null, 2) + '\n');
  const start = root ? releaseShellCommand({ kind: manifest.kind, name: manifest.name, root }) : agentShellCommand(dev);
  const shown =
    manifest.kind === 'host'
      ? {
          engineListen: config.engineListen ?? DEFAULT_ENGINE_LISTEN,
          ...(config.engineAdvertise ? { engineAdvertise: config.engineAdvertise } : {}),
        }
      : { direct: config.direct !== false, syslog: config.syslog ?? [] };
  return {
    dir: paths.dir,
    kind: manifest.kind,
    name: manifest.name,
    mainUrls: [...config.mainUrls],
    mainUrl: config.mainUrls[0]!,
    unitFile,
    expiresAt: manifest.expiresAt,
    allow: settings.allow ?? [],
    ...shown,
    start,
    ...(root ? { serviceUser: serviceUserOf(manifest.name) } : {}),
  };
}

/**
 * The settings only one kind of agent takes. A flag given for the other kind is refused rather than
 * ignored: an operator who typed it expects it to do something.
 */
function kindSettings(kind: 'host' | 'engine', o: InstallOptions, syslog: SyslogListen[]): KindSettings {
  const given = {
    allow: (o.allow ?? []).length > 0,
    direct: o.direct === false,
    engineListen: o.engineListen !== undefined,
    engineAdvertise: o.engineAdvertise !== undefined,
  };
  if (kind === 'engine') {
    if (given.engineListen) throw flagForOtherKind('--engine-listen', 'engineListen', 'hosts');
    if (given.engineAdvertise) throw flagForOtherKind('--engine-advertise', 'engineAdvertise', 'hosts');
    return {
      allow: (o.allow ?? []).map(checkAllowEntry),
      ...(given.direct ? { direct: false } : {}),
      ...(syslog.length ? { syslog } : {}),
    };
  }
  if (given.allow) throw flagForOtherKind('--allow', 'allow', 'engines');
  if (syslog.length) throw flagForOtherKind('--syslog', 'syslog', 'engines');
  if (given.direct) throw flagForOtherKind('--no-direct', 'direct', 'engines');
  const engineListen = o.engineListen === undefined ? undefined : checkEngineListen(o.engineListen);
  const engineAdvertise = o.engineAdvertise === undefined ? undefined : checkEngineAdvertise(o.engineAdvertise);
  if (engineListen === 'off' && engineAdvertise) {
    throw new BadParameterError(
      'ERR_BAD_ENGINE_ADVERTISE',
      '--engine-advertise has no effect with --engine-listen off (the host offers engines no direct path)',
      { field: 'engineAdvertise' },
    );
  }
  return { ...(engineListen ? { engineListen } : {}), ...(engineAdvertise ? { engineAdvertise } : {}) };
}

function flagForOtherKind(flag: string, field: string, kinds: 'hosts' | 'engines'): BadParameterError {
  return new BadParameterError(
    kinds === 'hosts' ? 'ERR_FLAG_HOST_ONLY' : 'ERR_FLAG_ENGINE_ONLY',
    `${flag} applies to ${kinds} only`,
    { field },
  );
}

/**
 * `--engine-listen`: an IP literal (or localhost) and a port, 0 = any free one; or `off`. The host binds
 * it at every start, so a typo would only show up then as engines silently relaying through main.
 */
export function checkEngineListen(value: string): string {
  const v = value.trim();
  parseListenSetting(v, {
    code: 'ERR_BAD_ENGINE_LISTEN',
    field: 'engineListen',
    label: '--engine-listen',
    example: '0.0.0.0:7443',
  });
  return v;
}

/** `--engine-advertise`: what engines dial — an IP literal or DNS name and a real port (main drops port 0). */
export function checkEngineAdvertise(value: string): string {
  const v = value.trim();
  parseHostPort(v, 'dial', {
    code: 'ERR_BAD_ENGINE_ADVERTISE',
    field: 'engineAdvertise',
    label: '--engine-advertise',
    example: 'gw.example.net:7443',
  });
  return v;
}

/**
 * `--main-url`, each `https://HOST[:PORT]`, none twice. They replace the bundle's URL rather than add to it,
 * so an operator can drop a name the agent's network cannot reach; to keep it, name it among them.
 */
export function checkMainUrls(values: readonly string[]): string[] {
  const urls = values.map((v) => v.trim());
  urls.forEach((url, i) => {
    if (!isMainUrl(url))
      throw new BadParameterError(
        'ERR_BAD_MAIN_URL',
        `--main-url "${url}": expected ${MAIN_URL_EXPECTED}, e.g. https://main.example.net:8443`,
        { field: 'mainUrls' },
      );
    if (urls.indexOf(url) !== i)
      throw new BadParameterError('ERR_BAD_MAIN_URL', `--main-url "${url}" is given twice`, { field: 'mainUrls' });
  });
  return urls;
}

/** `CIDR[:PORT|PORT-PORT]` or `HOST[:PORT|PORT-PORT]`; checked here so a typo fails at install, not at 3 a.m. */
export function checkAllowEntry(entry: string): string {
  return parseAllowRule(entry, { code: 'ERR_BAD_ALLOW', field: 'allow', label: '--allow' }).text;
}
