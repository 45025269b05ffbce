/**
 * Inbound tunnels of the tunnel suite (tunnel-suite.ts sets up the deployment and registers these): a
 * listener on the engine's side whose connections reach a service on the tenant's side, both ways, until
 * the tunnel is closed; and the tunnel API's refusals of a bad direction, an outbound listener off
 * loopback and an inbound destination at a metadata address.
 */
import { describe, expect, it } from 'vitest';
import { connect, createServer as createTcpServer } from 'node:net';
import { until } from '../harness/processes.js';
import type { TunnelWorld } from './tunnel-suite.js';

export function inboundTunnelTests(w: TunnelWorld): void {
  describe('inbound tunnel', () => {
    it("an engine-side listener's connections reach a service on the tenant side, both ways", async () => {
      // The tenant-side service: answers each line in upper case.
      const svc = createTcpServer((sock) => sock.on('data', (c: Buffer) => sock.write(c.toString().toUpperCase())));
      await new Promise<void>((r) => svc.listen(0, '127.0.0.1', r));
      try {
        const r = await w.d.cli([
          'tunnel',
          'open',
          '--inbound',
          '--tenant',
          'cust',
          '--listen',
          '127.0.0.1:0',
          '--to',
          `127.0.0.1:${(svc.address() as { port: number }).port}`,
          '--json',
        ]);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        const view = r.json as { id: string; direction: string; engines: Record<string, string> };
        expect(view.direction).toBe('inbound');
        const at = view.engines.te1;
        expect(at).toMatch(/^127\.0\.0\.1:\d+$/);
        const reply = await new Promise<string>((resolve, reject) => {
          const s = connect(Number(at.split(':')[1]), '127.0.0.1', () => s.write('syslog line from a customer device'));
          s.on('data', (c: Buffer) => {
            resolve(c.toString());
            s.end();
          });
          s.on('error', reject);
          s.setTimeout(10_000, () => reject(new Error('no answer through the inbound tunnel')));
        });
        expect(reply).toBe('SYSLOG LINE FROM A CUSTOMER DEVICE');
        const closed = await w.d.cli(['tunnel', 'close', view.id, '--tenant', 'cust', '--json']);
        expect(closed.code).toBe(0);
        // The engine stops listening once the tunnel is closed.
        await until(
          'engine listener closed',
          () =>
            new Promise<boolean>((resolve) => {
              const s = connect(Number(at.split(':')[1]), '127.0.0.1');
              s.on('connect', () => {
                s.destroy();
                resolve(false);
              });
              s.on('error', () => resolve(true));
            }),
          10_000,
        );
      } finally {
        svc.close();
      }
    });

    it('refuses a bad direction, an outbound listener off loopback, and an inbound destination at metadata addresses', async () => {
      const r = await w.d.api<{ error: { code: string } }>('POST', '/tenants/cust/api/tunnels', {
        direction: 'sideways',
        to: '127.0.0.1:1',
        listen: '127.0.0.1:0',
      });
      expect(r.status).toBe(400);
      expect(r.raw).toContain('direction');
      const wide = await w.d.api<{ error: { code: string; message: string } }>('POST', '/tenants/cust/api/tunnels', {
        to: `127.0.0.1:${w.targetPort}`,
        listen: '0.0.0.0:0',
      });
      expect(wide.status).toBe(400);
      expect(wide.body.error.message).toContain('listen');
      const meta = await w.d.api<{ error: { code: string; message: string } }>('POST', '/tenants/cust/api/tunnels', {
        direction: 'inbound',
        to: '169.254.169.254:80',
        listen: '127.0.0.1:0',
      });
      expect(meta.status).toBe(400);
      expect(meta.body.error.message).toContain('to');
    });
  });
}
