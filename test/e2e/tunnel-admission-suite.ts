/**
 * Engine session admission, in the tunnel flow suite (tunnel-flow-suite.ts sets up the deployment and
 * registers these): engines that reach main but must never get a session with their tenant — one
 * configured with a wrong tenant public key, one a copy of a real engine's directory with its certificate
 * but another box key — while streams keep flowing through the engines that do, and the copy's original
 * gets its session back once it returns.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { logLines } from '../harness/log-lines.js';
import { Proc, readLog, until } from '../harness/processes.js';
import { openStream } from '../harness/tunnel-flow-services.js';
import { within } from '../harness/tunnel-hold.js';
import type { FlowWorld } from './tunnel-flow-suite.js';

const MiB = 1024 * 1024;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function agentId(dir: string): Promise<string> {
  return (JSON.parse(await readFile(join(dir, 'identity.json'), 'utf8')) as { agentId: string }).agentId;
}

export function sessionAdmissionTests(w: FlowWorld): void {
  /** Agent ids of the engines with a live session at the tenant (the list holds ids or `{id, …}` views). */
  async function engines(): Promise<string[]> {
    const r = await w.d.api<{ engines: (string | { id: string })[] }>('GET', `/tenants/${w.tenant}/api/tunnels`);
    if (r.status !== 200) throw new Error(`GET tunnels: ${r.status} ${r.raw}`);
    return r.body.engines.map((e) => (typeof e === 'string' ? e : e.id));
  }

  /** Creates an engine bundle for the tenant and installs it (allow-listing our servers); not started. */
  const installEngine = (name: string) => w.d.installEngine(name, w.tenant, w.allow);

  /** One stream's worth of data through the tunnel, checked: proves some engine session serves streams. */
  async function streamWorks(id: number): Promise<void> {
    const c = openStream(w.tunnelPort.stream, id, MiB);
    const got = await within(c.done, 20_000, `stream ${id}`);
    expect(got.bytes).toBe(MiB);
    expect(got.hash).toBe(w.services.served.get(id)?.hash);
  }

  describe('engine session admission', () => {
    it('an engine configured with a wrong tenant public key connects to main but never gets a session; streams still use the good engine', async () => {
      const good = await agentId(w.d.agents.get('fe1')!.dir);
      expect(await engines()).toEqual([good]); // the list names engines by agent id: the check below is meaningful
      const dir = await installEngine('fwrongkey');
      const cfgPath = join(dir, 'agent.json');
      const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as { tenantPublicKey?: string };
      expect(cfg.tenantPublicKey).toBeTruthy();
      await writeFile(
        cfgPath,
        JSON.stringify({ ...cfg, tenantPublicKey: randomBytes(32).toString('base64') }, null, 2),
      );
      await w.d.startAgent('fwrongkey');
      const bad = await agentId(dir);
      // Its hello reaches the tenant, which cannot open it (sealed to another key) and says so.
      const refused = await until(
        'the tenant to refuse the engine',
        async () => {
          const l = await logLines(w.tenantLog(), { engineId: bad });
          return l.find((o) => o.code === 'ERR_TUNNEL_ENGINE_AUTH');
        },
        15_000,
      );
      expect(refused.msg).toMatch(/refused/);
      for (let i = 0; i < 12; i++) {
        expect(await engines()).toEqual([good]);
        await sleep(250);
      }
      // The engine never gets a session, and after its handshake deadline says why in its own log.
      await until(
        'the engine to report its unanswered handshake',
        async () => (await logLines(w.d.agentLog('fwrongkey'), { code: 'ERR_TUNNEL_HANDSHAKE_TIMEOUT' })).length > 0,
        30_000,
      );
      expect(await logLines(w.d.agentLog('fwrongkey'), { msg: 'tunnel session established' })).toEqual([]);
      await streamWorks(1000);
    }, 90_000);

    it("a copy of an engine's directory with its certificate but another box key is refused by the tenant", async () => {
      const dir = await installEngine('forig');
      await w.d.startAgent('forig');
      const id = await agentId(dir);
      await until('the original engine gets a session', async () => (await engines()).includes(id), 30_000);
      // Only one connection per agent identity: main would swap the two in turn, so the original goes first.
      await w.d.agents.get('forig')!.proc!.stop();
      await until('its session ends', async () => !(await engines()).includes(id), 30_000);

      const copy = join(w.d.dir, 'engine-forig-copy');
      await cp(dir, copy, { recursive: true });
      await rm(join(copy, 'logs'), { recursive: true, force: true });
      const boxPath = join(copy, 'pki', 'tunnel-key.json');
      const enrolled = JSON.parse(await readFile(boxPath, 'utf8')) as { publicKey: string; secretKey: string };
      const fresh = nacl.box.keyPair();
      const forged = {
        ...enrolled,
        publicKey: Buffer.from(fresh.publicKey).toString('base64'),
        secretKey: Buffer.from(fresh.secretKey).toString('base64'),
      };
      expect(Object.keys(forged)).toEqual(Object.keys(enrolled));
      await writeFile(boxPath, JSON.stringify(forged));
      const logFrom = (await readLog(w.tenantLog())).length;
      w.d.agents.set('forig-copy', { dir: copy });
      const p: Proc = await w.d.startAgent('forig-copy');
      expect(p.output).toMatch(/connected to/); // main accepted the certificate: only the box key is wrong

      const refused = await until(
        'the tenant to refuse the copy',
        async () => {
          const text = (await readLog(w.tenantLog())).slice(logFrom);
          return text
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as Record<string, unknown>)
            .find((o) => o.engineId === id && o.code === 'ERR_TUNNEL_ENGINE_UNKNOWN');
        },
        15_000,
      );
      expect(refused.msg).toMatch(/refused/);
      for (let i = 0; i < 12; i++) {
        expect(await engines()).not.toContain(id);
        await sleep(250);
      }
      expect(await logLines(w.d.agentLog('forig-copy'), { msg: 'tunnel session established' })).toEqual([]);

      // Control: the same certificate with the enrolled key gets its session back.
      await p.stop();
      await w.d.startAgent('forig');
      await until('the original engine gets its session again', async () => (await engines()).includes(id), 30_000);
      await streamWorks(1001);
      await streamWorks(1002); // with two sessions, streams alternate: both engines serve
    }, 90_000);
  });
}
