/**
 * A copied agent certificate, with a real main and host agent processes over real TLS: used while the
 * original is connected, the copy is refused (Error ERR_AGENT_DUPLICATE_SESSION, close 4005) and audited
 * as `agent.duplicate-session`, and the original keeps its session and keeps working. The genuine case
 * that looks alike — the same agent back while main still holds its dead connection (here: the original
 * process frozen with SIGSTOP, so its socket stays open but answers nothing) — still gets in promptly.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentKind, encodeEnvelope } from '#common/codec.js';
import { DUPLICATE_PROBE_MS } from '../../main/agents/gateway.js';
import { Deployment } from '../harness/deployment.js';
import { Proc, until } from '../harness/processes.js';
import { identityOf, rawConnect } from '../harness/raw-agent.js';

let d: Deployment;
let original: Proc;
let copyDir: string;
const copies: Proc[] = [];

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'h-orig');
  original = await d.startAgent('h-orig');
  // What a thief takes: the whole agent directory, certificate and key included (not the live state).
  copyDir = join(d.dir, 'h-orig-copy');
  await cp(d.agents.get('h-orig')!.dir, copyDir, { recursive: true });
  await rm(join(copyDir, 'data'), { recursive: true, force: true });
  await rm(join(copyDir, 'logs'), { recursive: true, force: true });
});
afterAll(async () => {
  if (original.running) original.kill('SIGKILL');
  await Promise.all(copies.map((c) => c.stop()));
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs(), copies.map((c) => c.output).join('\n'));
});

interface HostView {
  name: string;
  status: string;
  connectedAt: string | null;
}
interface AuditView {
  action: string;
  target?: string;
  outcome: string;
  detail?: Record<string, unknown>;
}

const hostView = async () => ((await d.cli(['hosts', '--json'])).json as HostView[]).find((h) => h.name === 'h-orig');
const auditRows = async (action: string) =>
  (await d.api<AuditView[]>('GET', `/audit?limit=1000&action=${action}`)).body.filter(
    (a) => a.target === 'host:h-orig',
  );

async function pingWorks(): Promise<void> {
  const r = await d.cli(['hosts', 'ping', 'h-orig', '--json']);
  expect(r.json, r.stdout + r.stderr).toMatchObject({ state: 'done', result: { pong: true, agent: 'h-orig' } });
}

describe("a copy of a live agent's certificate", () => {
  it('gets an Error ERR_AGENT_DUPLICATE_SESSION and close 4005 instead of a Welcome, and is audited', async () => {
    const before = await hostView();
    expect(before?.status).toBe('online');
    const c = rawConnect(d.url, identityOf(copyDir));
    expect(await c.opened).toBe(true);
    c.ws.send(
      encodeEnvelope({
        id: 1,
        hello: {
          protocolMajor: 1,
          protocolMinor: 1,
          agentVersion: 'thief',
          kind: AgentKind.AGENT_KIND_HOST,
          name: 'h-orig',
        },
      }),
    );
    const closed = await c.closed;
    expect(closed.code).toBe(4005);
    expect(c.frames.some((f) => f.welcome)).toBe(false);
    expect(c.frames[0]?.error).toMatchObject({ code: 'ERR_AGENT_DUPLICATE_SESSION', retryable: true });
    expect((await auditRows('agent.duplicate-session')).length).toBeGreaterThanOrEqual(1);
    // The original's session is the same one as before, and it still answers.
    expect((await hostView())?.connectedAt).toBe(before?.connectedAt);
    await pingWorks();
  });

  it('run as a second agent process, it stays out while the original keeps its session and keeps working', async () => {
    const before = await hostView();
    const denials = (await auditRows('agent.duplicate-session')).length;
    const copy = d.track(new Proc('agent h-orig (copy)', ['agent', 'start', '--dir', copyDir]));
    copies.push(copy);
    await until(
      'the copy refused',
      async () =>
        (await readFile(join(copyDir, 'logs', 'agent.log'), 'utf8').catch(() => '')).includes(
          'ERR_AGENT_DUPLICATE_SESSION',
        ),
      30_000,
    );
    expect(copy.output).not.toMatch(/connected to/);
    const rows = await until(
      'the refusal audited',
      async () => {
        const r = await auditRows('agent.duplicate-session');
        return r.length > denials ? r : undefined;
      },
      10_000,
    );
    expect(rows[0]).toMatchObject({ outcome: 'denied', detail: { code: 'ERR_AGENT_DUPLICATE_SESSION' } });
    expect((await hostView())?.connectedAt).toBe(before?.connectedAt);
    expect(await readFile(d.agentLog('h-orig'), 'utf8')).not.toContain('disconnected from main');
    await pingWorks();
    await copy.stop();
  });
});

describe('the same agent back while main still holds its dead connection', () => {
  it('takes over once the old connection fails to answer (audited agent.session-takeover)', async () => {
    // Frozen: the original's socket stays open in the kernel, but nothing answers main's probe.
    original.kill('SIGSTOP');
    const t0 = Date.now();
    const back = d.track(new Proc('agent h-orig (back)', ['agent', 'start', '--dir', copyDir]));
    copies.push(back);
    await back.waitFor(/connected to/, 30_000);
    expect(Date.now() - t0).toBeLessThan(DUPLICATE_PROBE_MS + 20_000);
    expect((await auditRows('agent.session-takeover')).length).toBeGreaterThanOrEqual(1);
    expect((await hostView())?.status).toBe('online');
    await pingWorks();
    original.kill('SIGKILL');
  });
});
