/**
 * Integration commands on the engine, in the tunnel suite (tunnel-suite.ts sets up the deployment and
 * registers these): `engine run` executes http.request and tcp.check on an engine of the tenant, within the
 * same allow-list as its tunnels; refusals are audited on main without the secrets a URL may carry, and bad
 * arguments or unknown commands are refused before any engine sees them.
 */
import { describe, expect, it } from 'vitest';
import { until } from '../harness/processes.js';
import type { AuditRow, TunnelWorld } from './tunnel-suite.js';

export function engineCommandTests(w: TunnelWorld): void {
  describe('integration commands on the engine', () => {
    it('http.request runs on the engine against an allow-listed service and returns status and body', async () => {
      const r = await w.d.cli([
        'engine',
        'run',
        'http.request',
        '--tenant',
        'cust',
        '--args',
        JSON.stringify({ url: `http://127.0.0.1:${w.targetPort}/x`, headers: { 'x-probe': '1' } }),
        '--json',
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json).toMatchObject({
        command: 'http.request',
        result: { status: 200, body: w.secretBody, bodyEncoding: 'utf8', truncated: false },
      });
      expect((r.json as { engine: string }).engine).toMatch(/^te[12]$/);
    });

    it('tcp.check reports reachable and unreachable allow-listed ports', async () => {
      const up = await w.d.cli([
        'engine',
        'run',
        'tcp.check',
        '--tenant',
        'cust',
        '--args',
        JSON.stringify({ host: '127.0.0.1', port: w.holdPort }),
        '--json',
      ]);
      expect(up.code, up.stdout + up.stderr).toBe(0);
      expect(up.json).toMatchObject({ result: { reachable: true, port: w.holdPort } });
    });

    it('a command towards a destination outside the allow-list is refused (403, exit 2) and audited on main', async () => {
      const r = await w.d.cli([
        'engine',
        'run',
        'tcp.check',
        '--tenant',
        'cust',
        '--args',
        JSON.stringify({ host: '127.0.0.1', port: w.forbiddenPort }),
        '--json',
      ]);
      expect(r.code).toBe(2);
      expect(r.json).toMatchObject({ error: { code: 'ERR_TUNNEL_NOT_ALLOWED' } });
      const h = await w.d.api<{ error: { code: string } }>('POST', '/tenants/cust/api/engine-commands', {
        command: 'http.request',
        args: { url: `http://169.254.169.254/latest/meta-data/?token=SECRETTOKEN` },
      });
      expect(h.status).toBe(403);
      const audit = await until(
        'audited',
        async () =>
          ((await w.d.cli(['audit', '--json'])).json as AuditRow[]).filter(
            (e) => e.action === 'engine.tcp.check' || e.action === 'engine.http.request',
          ),
        10_000,
      );
      expect(audit.map((a) => a.action).sort()).toEqual(['engine.http.request', 'engine.tcp.check']);
      // Only the origin of a refused URL is recorded: a query could hold credentials.
      expect(JSON.stringify(audit)).not.toContain('SECRETTOKEN');
    });

    it('bad arguments get a 400 naming the field; an unknown command is refused before reaching an engine', async () => {
      const bad = await w.d.api<{ error: { code: string; message: string } }>(
        'POST',
        '/tenants/cust/api/engine-commands',
        { command: 'tcp.check', args: { host: '127.0.0.1', port: 'eighty' } },
      );
      expect(bad.status).toBe(400);
      expect(bad.body.error.message).toContain('args.port');
      const unknown = await w.d.cli(['engine', 'run', 'rm.rf', '--tenant', 'cust', '--json']);
      expect(unknown.code).toBe(2);
      expect(unknown.stdout).toContain('command');
      const notJson = await w.d.cli(['engine', 'run', 'tcp.check', '--tenant', 'cust', '--args', '{nope']);
      expect(notJson.code).toBe(2);
      expect(notJson.stderr.trim().split('\n')).toHaveLength(1);
    });
  });
}
