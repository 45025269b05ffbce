/**
 * `main install-service`: checks the data directory, writes main's systemd unit (main/service-unit.ts) and
 * enables and starts it when systemd runs this machine. Where it does not (a container, a test with
 * `--unit-dir`), or with `--no-enable`, it only writes the unit and says what to run. Not a package
 * manager: it makes no user and installs no files but the unit.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { BadParameterError, UnavailableError } from '#common/errors.js';
import { shellArg } from '#common/systemd-text.js';
import { loadMainConfig } from './config.js';
import { mainPaths } from './data-dir.js';
import { MAIN_UNIT_NAME, mainServiceShellCommand, mainServiceUnit } from './service-unit.js';

export const DEFAULT_UNIT_DIR = '/etc/systemd/system';

export interface InstallServiceOptions {
  data: string;
  user?: string;
  unitDir?: string;
  enable: boolean;
  node: string;
  cli: string;
}

export interface InstallServiceResult {
  unitFile: string;
  user: string;
  enabled: boolean;
  /** What the admin runs next: the systemctl line, or the command itself where there is no systemd. */
  next: string[];
}

/** PrivateTmp=yes gives the service a /tmp of its own: a data directory there would be an empty one. */
const PRIVATE_TMP = ['/tmp/', '/var/tmp/'];

export async function installMainService(o: InstallServiceOptions): Promise<InstallServiceResult> {
  const data = resolve(o.data);
  const port = (await loadMainConfig(mainPaths(data).config)).port;
  if (PRIVATE_TMP.some((t) => `${data}/`.startsWith(t)))
    throw new BadParameterError(
      'ERR_SERVICE_DATA_DIR',
      `${data} is under a temporary directory, which the service's PrivateTmp hides: move it (e.g. /var/lib/palisade)`,
      { field: 'data' },
    );
  if (o.user !== undefined && ['root', '0'].includes(o.user.trim()))
    throw new BadParameterError(
      'ERR_SERVICE_USER_ROOT',
      `--user ${o.user}: main never runs as root; name a service account`,
      {
        field: 'user',
      },
    );
  const user = o.user ?? (await ownerOf(data));
  const unitDir = resolve(o.unitDir ?? DEFAULT_UNIT_DIR);
  const unitFile = join(unitDir, MAIN_UNIT_NAME);
  await mkdir(unitDir, { recursive: true });
  await writeFile(unitFile, mainServiceUnit({ data, user, port, node: o.node, cli: o.cli }), { mode: 0o644 });
  // Only the system's unit directory is systemd's to load: a unit written elsewhere is for review or a test.
  const canEnable = o.enable && unitDir === DEFAULT_UNIT_DIR && systemdRuns();
  if (!canEnable) {
    const copy = unitDir === DEFAULT_UNIT_DIR ? [] : [`install -m 0644 ${shellArg(unitFile)} ${DEFAULT_UNIT_DIR}/`];
    const enable = [...copy, `systemctl daemon-reload && systemctl enable --now ${MAIN_UNIT_NAME}`];
    const next = systemdRuns() ? enable : [mainServiceShellCommand({ node: o.node, cli: o.cli, data })];
    return { unitFile, user, enabled: false, next };
  }
  await systemctl(['daemon-reload']);
  await systemctl(['enable', '--now', MAIN_UNIT_NAME]);
  return { unitFile, user, enabled: true, next: [`journalctl -u ${MAIN_UNIT_NAME} -f`] };
}

/** The data directory's owner: main init ran as the account that should run main. Root never does. */
async function ownerOf(data: string): Promise<string> {
  const { uid } = await stat(data);
  if (uid === 0)
    throw new BadParameterError(
      'ERR_SERVICE_USER_ROOT',
      `${data} belongs to root: give it to a service account (chown -R) or name one with --user; main never runs as root`,
      { field: 'user' },
    );
  return String(uid);
}

/** systemd's own test (sd_booted): this directory exists only when systemd is PID 1. */
function systemdRuns(): boolean {
  return existsSync('/run/systemd/system');
}

async function systemctl(args: string[]): Promise<void> {
  try {
    await promisify(execFile)('systemctl', args);
  } catch (e) {
    const stderr = (e as { stderr?: string }).stderr?.trim();
    throw new UnavailableError('ERR_SERVICE_ENABLE', `systemctl ${args.join(' ')} failed: ${stderr || String(e)}`);
  }
}
