/**
 * Several main URLs, end to end with real processes: a host installed with `--main-url` twice, the first
 * a closed loopback port and the second the real main, enrols and connects through the second; after a
 * restart of main it comes back (trying the next URL first, as it should after a lost connection); a
 * revocation is still final although another URL is listed; an agent.json with the single `mainUrl` of
 * earlier versions still works; and a bad `--main-url` is refused at install.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { freePort, Proc, runCli, until } from '../harness/processes.js';
import { logLines } from '../harness/log-lines.js';

const HOST = 'hm';
let d: Deployment;
/** Nothing listens there: every dial to it is refused. */
let closedUrl: string;

beforeAll(async () => {
  d = await Deployment.create();
  closedUrl = `https://127.0.0.1:${await freePort()}`;
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

interface HostView {
  name: string;
  status: string;
}

async function hostStatus(): Promise<string | undefined> {
  const list = (await d.cli(['hosts', '--json'])).json as HostView[];
  return list.find((h) => h.name === HOST)?.status;
}

/** The agent's log lines from `from` on, reduced to what a reader follows: message and URL. */
async function urlLines(from = 0): Promise<{ msg: string; url?: string }[]> {
  return (await logLines(d.agentLog(HOST), {}))
    .slice(from)
    .filter((l) => typeof l.url === 'string')
    .map((l) => ({ msg: String(l.msg), url: l.url as string }));
}

describe('an agent with two main URLs, the first unreachable', () => {
  it('is installed with them in order, enrols and connects through the second, and shows online', async () => {
    const dir = await d.install('host', HOST, ['--main-url', closedUrl, '--main-url', d.url]);
    const cfg = JSON.parse(await readFile(join(dir, 'agent.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg.mainUrls).toEqual([closedUrl, d.url]);
    expect(cfg.mainUrl).toBeUndefined();
    const p = await d.startAgent(HOST);
    expect(p.output).toMatch(/enrolled as hst_/);
    expect(p.output).toContain(`connected to ${d.url}`);
    await until('the host online', async () => (await hostStatus()) === 'online');
    const lines = await until('the connection in the log', async () => {
      const l = await urlLines();
      return l.some((x) => x.msg === 'connected to main') ? l : undefined;
    });
    expect(lines).toEqual([
      { msg: 'enrolling', url: closedUrl },
      { msg: 'enrolment at this main URL failed; trying the next', url: closedUrl },
      { msg: 'enrolling', url: d.url },
      { msg: 'connecting to main', url: closedUrl },
      { msg: 'connection to main failed', url: closedUrl },
      { msg: 'connecting to main', url: d.url },
      { msg: 'connected to main', url: d.url },
    ]);
  });

  it('comes back when main restarts on the second URL, having tried the next URL first', async () => {
    const before = (await logLines(d.agentLog(HOST), {})).length;
    expect(await d.main!.stop('SIGTERM')).toBe(0);
    await d.startMain();
    await until('the host online again', async () => (await hostStatus()) === 'online', 60_000, 250);
    const ping = await d.cli(['hosts', 'ping', HOST, '--json']);
    expect(ping.json).toMatchObject({ state: 'done', result: { pong: true } });
    const after = await until('the reconnection in the log', async () => {
      const l = await urlLines(before);
      return l.some((x) => x.msg === 'connected to main') ? l : undefined;
    });
    // Lost on the second URL: the wait main asked for, then the list from the next URL on (wrapping to the first).
    expect(after[0]).toEqual({ msg: 'disconnected from main', url: d.url });
    expect(after[1]).toMatchObject({ msg: 'reconnecting after backoff', url: closedUrl });
    expect(after[2]).toEqual({ msg: 'connecting to main', url: closedUrl });
    expect(after.at(-1)).toEqual({ msg: 'connected to main', url: d.url });
    expect(after.filter((x) => x.msg === 'connected to main')).toHaveLength(1);
  });

  it('a revoked agent stops for good though it has another URL: the refusal is not a failed dial', async () => {
    const live = d.agents.get(HOST)!.proc!;
    expect((await d.cli(['hosts', 'remove', HOST, '--json'])).code).toBe(0);
    expect(await live.waitExit()).toBe(2);
    const before = (await logLines(d.agentLog(HOST), {})).length;
    // Started again, its certificate still on disk: refused at connect on the second URL, and it stops there.
    const again = d.track(new Proc(`agent ${HOST} again`, ['agent', 'start', '--dir', d.agents.get(HOST)!.dir]));
    expect(await again.waitExit()).toBe(2);
    expect(again.output).toContain('ERR_AGENT_REVOKED');
    const after = await until('the refusal in the log', async () => {
      const l = await urlLines(before);
      return l.some((x) => x.msg === 'main refused this agent permanently') ? l : undefined;
    });
    expect(after).toEqual([
      { msg: 'connecting to main', url: closedUrl },
      { msg: 'connection to main failed', url: closedUrl },
      { msg: 'connecting to main', url: d.url },
      { msg: 'main refused this agent permanently', url: d.url },
    ]);
  });
});

describe('an agent.json of an earlier version', () => {
  it('with the single mainUrl still starts, enrols and connects', async () => {
    const dir = await d.install('host', 'hold');
    const path = join(dir, 'agent.json');
    const { mainUrls, ...rest } = JSON.parse(await readFile(path, 'utf8')) as { mainUrls: string[] };
    await writeFile(path, JSON.stringify({ ...rest, mainUrl: mainUrls[0] }, null, 2));
    const p = await d.startAgent('hold');
    expect(p.output).toContain(`connected to ${d.url}`);
  });
});

describe('agent install --main-url', () => {
  it('refuses a URL that is not https, naming the flag (exit 2), and creates nothing', async () => {
    const bundle = join(d.dir, 'host-hbad.tar.gz');
    const c = await d.cli(['installer', 'create', '--kind', 'host', '--name', 'hbad', '--out', bundle]);
    expect(c.code, c.stdout + c.stderr).toBe(0);
    const dir = join(d.dir, 'host-hbad');
    for (const urls of [['http://127.0.0.1:8443'], [d.url, d.url]]) {
      const i = await runCli([
        'agent',
        'install',
        '--bundle',
        bundle,
        '--dir',
        dir,
        ...urls.flatMap((u) => ['--main-url', u]),
      ]);
      expect(i.code, i.stdout + i.stderr).toBe(2);
      expect(i.stdout + i.stderr).toContain('--main-url "');
      await expect(access(dir)).rejects.toThrow();
    }
  });

  it("without the flag the agent keeps the bundle's URL, and the output says which URLs it tries", async () => {
    const bundle = join(d.dir, 'host-hbad.tar.gz');
    const dir = join(d.dir, 'host-hplain');
    const i = await runCli(['agent', 'install', '--bundle', bundle, '--dir', dir, '--json']);
    expect(i.code, i.stdout + i.stderr).toBe(0);
    expect(i.json).toMatchObject({ mainUrls: [d.url], mainUrl: d.url });
    const two = await runCli([
      'agent',
      'install',
      '--bundle',
      bundle,
      '--dir',
      `${dir}-2`,
      '--main-url',
      closedUrl,
      '--main-url',
      d.url,
    ]);
    expect(two.code, two.stdout + two.stderr).toBe(0);
    expect(two.stdout).toContain(`main: ${closedUrl}, ${d.url} (tried in this order)`);
  });
});
