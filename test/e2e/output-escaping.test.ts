/**
 * Names other people choose reach the admin's terminal and the log files escaped: incident names and
 * types (a tenant's users), content names, a host's reported system info (a forged heartbeat from an
 * enrolled host) and an audit row's target and reason (a forged event from an enrolled engine) carry
 * ESC sequences, a C1 CSI (U+009B), CR/LF, U+2028 and U+202E. The real CLI prints them as visible
 * escapes in every table and text view, `--json` stays the exact value with no raw character, and no
 * log file of the deployment holds one raw.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { AgentKind, encodeEnvelope, jsonBytes } from '#common/codec.js';
import { Deployment } from '../harness/deployment.js';
import { until, type CliResult } from '../harness/processes.js';
import { identityOf, rawConnect, type RawConn } from '../harness/raw-agent.js';

/** A screen clear, red text, a one-byte CSI, a forged second row, a line separator and a right-to-left override. */
const EVIL = 'Phish\x1b[2J\x1b[31mRED\x9b1;1H\r\nadmin  auth.key  ok\u2028x\u202egpj.exe';
const EVIL_TYPE = 'mal\x1b[0mware\x9b\r\n\u2028\u202e';
/** Content names refuse C0 and DEL on input; the rest must still be shown escaped. */
const EVIL_CONTENT = 'Play\x9b2Jbook\u2028\u202egpj.exe';
/** Each class as the CLI must show it. */
const SHOWN = ['\\x1b[2J', '\\x1b[31m', '\\x9b1;1H', '\\r\\n', '\\u2028', '\\u202e'];
// eslint-disable-next-line no-control-regex -- what must never reach a terminal or a log raw (LF is checked apart)
const RAW = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;

let d: Deployment;
const raw: RawConn[] = [];

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'h-esc');
  await d.startAgent('h-esc');
  await d.createTenant('esc', 'h-esc');
  // Two agents that enrol for real, then stop: the test speaks for them with their certificates.
  await d.install('host', 'h-forge');
  await d.startAgent('h-forge');
  await d.agents.get('h-forge')!.proc!.stop();
  await d.install('engine', 'e-forge', [], 'esc');
  await d.startAgent('e-forge');
  await d.agents.get('e-forge')!.proc!.stop();
});
afterAll(async () => {
  for (const c of raw) c.ws.terminate();
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

/** Connects as an enrolled agent (its own certificate) and completes the Hello. */
async function forgeAs(name: string, kind: 'host' | 'engine'): Promise<RawConn> {
  const c = rawConnect(d.url, identityOf(d.agents.get(name)!.dir));
  raw.push(c);
  expect(await c.opened).toBe(true);
  c.ws.send(
    encodeEnvelope({
      id: 1,
      hello: {
        protocolMajor: 1,
        protocolMinor: 0,
        agentVersion: 'test',
        kind: kind === 'host' ? AgentKind.AGENT_KIND_HOST : AgentKind.AGENT_KIND_ENGINE,
        name,
      },
    }),
  );
  await until('welcome', () => c.frames.some((f) => f.welcome), 10_000);
  return c;
}

/** What a terminal would get: no raw character of the class anywhere, LF only between lines. */
function expectShownEscaped(r: CliResult, expected = SHOWN): void {
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(r.stdout).not.toMatch(RAW);
  expect(r.stderr).not.toMatch(RAW);
  for (const s of expected) expect(r.stdout).toContain(s);
}

/** `--json`: exact JSON whose values are the original strings, with no raw character in the text. */
function expectExactJson(r: CliResult): unknown {
  expect(r.code, r.stdout + r.stderr).toBe(0);
  expect(r.stdout).not.toMatch(RAW);
  return r.json;
}

describe('the CLI shows hostile names escaped', () => {
  it('incident names and types: incidents list, incidents get, search incidents', async () => {
    const c = await d.api<{ id: string }>('POST', '/tenants/esc/api/incidents', {
      name: EVIL,
      type: EVIL_TYPE,
      severity: 2,
    });
    expect(c.status).toBe(201);
    const list = await d.cli(['incidents', 'list', '--tenant', 'esc']);
    expectShownEscaped(list);
    // One incident is one row: the CR/LF inside the name did not start a forged one.
    expect(list.stdout.trimEnd().split('\n')).toHaveLength(2);
    expectShownEscaped(await d.cli(['incidents', 'get', c.body.id, '--tenant', 'esc']), [
      '\\u001b[2J',
      '\\u009b',
      '\\r\\n',
      '\\u2028',
      '\\u202e',
    ]);
    expectShownEscaped(await d.cli(['search', 'incidents', '--tenants', 'esc']));
    const json = expectExactJson(await d.cli(['incidents', 'list', '--tenant', 'esc', '--json'])) as {
      items: { name: string; type: string }[];
    };
    expect(json.items[0]).toMatchObject({ name: EVIL, type: EVIL_TYPE });
  });

  it('content names: content list', async () => {
    const bad = await d.api('POST', '/content', { type: 'playbook', name: EVIL, body: 'x' });
    expect(bad.status).toBe(400); // C0 refused on input
    const c = await d.api<{ id: string }>('POST', '/content', { type: 'playbook', name: EVIL_CONTENT, body: 'x' });
    expect(c.status).toBe(201);
    expectShownEscaped(await d.cli(['content', 'list']), ['\\x9b2J', '\\u2028', '\\u202e']);
    const json = expectExactJson(await d.cli(['content', 'list', '--json'])) as { name: string }[];
    expect(json.map((i) => i.name)).toContain(EVIL_CONTENT);
  });

  it("a host's reported system info: hosts, hosts show", async () => {
    const c = await forgeAs('h-forge', 'host');
    c.ws.send(
      encodeEnvelope({
        id: 2,
        heartbeat: {
          sentAtMs: Date.now(),
          sysinfo: { hostname: EVIL, os: EVIL, release: EVIL_TYPE, arch: 'x64', cpuCores: 1 },
        },
      }),
    );
    await until(
      'main holds the forged system info',
      async () =>
        (await d.api<{ name: string; sysinfo?: { os?: string } }[]>('GET', '/hosts')).body.find(
          (h) => h.name === 'h-forge',
        )?.sysinfo?.os === EVIL,
      15_000,
    );
    expectShownEscaped(await d.cli(['hosts']));
    expectShownEscaped(await d.cli(['hosts', 'show', 'h-forge']), [
      '\\u001b[2J',
      '\\u009b',
      '\\r\\n',
      '\\u2028',
      '\\u202e',
    ]);
    const json = expectExactJson(await d.cli(['hosts', '--json'])) as {
      name: string;
      sysinfo?: { os: string; hostname: string };
    }[];
    expect(json.find((h) => h.name === 'h-forge')?.sysinfo).toMatchObject({ os: EVIL, hostname: EVIL });
  });

  it("an audit row's target and reason: audit", async () => {
    const c = await forgeAs('e-forge', 'engine');
    c.ws.send(
      encodeEnvelope({
        id: 2,
        event: { type: 'audit', data: jsonBytes({ action: 'tunnel.dial', target: EVIL, code: 'ERR_X', reason: EVIL }) },
      }),
    );
    await until(
      'the audit row',
      async () =>
        (await d.api<{ target?: string }[]>('GET', '/audit?action=engine.')).body.some((a) => a.target === EVIL),
      15_000,
    );
    const text = await d.cli(['audit', '--action', 'engine.']);
    expectShownEscaped(text);
    expect(text.stdout.trimEnd().split('\n')).toHaveLength(2); // no forged "admin … ok" row
    const json = expectExactJson(await d.cli(['audit', '--action', 'engine.', '--json'])) as {
      target: string;
      detail: { reason: string };
    }[];
    expect(json[0]).toMatchObject({ target: EVIL, detail: { reason: EVIL } });
  });

  it('an error quoting a hostile file is one escaped line', async () => {
    // JSON.parse quotes the start of the file in its message: an alerts file from elsewhere picks the text.
    const file = join(d.dir, 'hostile.json');
    await writeFile(file, `${EVIL}{`);
    const r = await d.cli(['incidents', 'create', '--tenant', 'esc', '--file', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(RAW);
    expect(r.stderr).toContain('\\x1b[2J');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    const json = await d.cli(['incidents', 'create', '--tenant', 'esc', '--file', file, '--json']);
    expect(json.stdout).not.toMatch(RAW);
    expect((json.json as { error: { code: string } }).error.code).toBe('ERR_CLI_BAD_FILE');
  });
});

describe('log files', () => {
  it('no log line of main, the hosts or the tenant holds a raw control, separator or bidi character', async () => {
    const logs = await logFiles(d.dir);
    expect(logs.some((f) => f.endsWith(join('tenants', 'esc', 'logs', 'tenant.log')))).toBe(true);
    expect(logs).toContain(d.mainLog);
    // The hostile strings did reach main's log (the audit rows), escaped.
    await until(
      'main logged the audit row',
      async () => (await readFile(d.mainLog, 'utf8')).includes('\\u009b1;1H'),
      10_000,
    );
    for (const f of logs) {
      const lines = (await readFile(f, 'utf8')).split('\n');
      lines.forEach((l, i) => expect(l, `${f}:${i + 1}`).not.toMatch(RAW));
    }
  });
});

/** Every process's log file (`…/logs/*.log`; LevelDB's own *.log files are binary, not logs). */
async function logFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.log') && basename(e.parentPath) === 'logs')
      out.push(join(e.parentPath, e.name));
  }
  return out;
}
