/**
 * The README's first quick-start command: `palisade demo` brings up main, a host, two tenants with
 * incidents and an engine with a working tunnel, and stops all of it on SIGTERM.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { request } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { rm } from 'node:fs/promises';
import { createSocket } from 'node:dgram';
import { Proc, freePort, runCli, tempDir, until } from '../harness/processes.js';

const run = promisify(execFile);
let demo: Proc | undefined;
let dir: string | undefined;
afterAll(async () => {
  await demo?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function httpGet(hostPort: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const [host, port] = hostPort.split(':');
    request({ host, port: Number(port), path: '/' }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c;
      });
      res.on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });
}

/** `logger --tcp` where util-linux has it (the command the demo prints), else the same octet-counted frame. */
async function sendTcp(port: number, text: string): Promise<void> {
  const logger = ['-n', '127.0.0.1', '-P', String(port), '--octet-count', '--rfc5424', text];
  if (existsSync('/usr/bin/logger')) {
    await run('/usr/bin/logger', ['--tcp', ...logger]);
    return;
  }
  const frame = `<13>1 - demo app - - - ${text}`;
  await new Promise<void>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.end(`${Buffer.byteLength(frame)} ${frame}`));
    s.on('error', reject).on('close', () => resolve());
  });
}

describe('palisade demo', () => {
  it('runs a whole deployment on loopback whose tenants, incidents and tunnel answer, and stops cleanly', async () => {
    dir = await tempDir('palisade-demo-test-');
    demo = new Proc('demo', ['demo', '--dir', dir, '--port', String(await freePort()), '--json']);
    const m = await demo.waitFor(/\{"dir".*\}\n/, 120_000);
    const info = JSON.parse(m[0]) as { url: string; adminApiKey: string; caCertPath: string; tunnel: string };
    const env = { PALISADE_URL: info.url, PALISADE_API_KEY: info.adminApiKey, PALISADE_CA_CERT: info.caCertPath };
    expect(readFileSync(info.caCertPath, 'utf8')).toContain('BEGIN CERTIFICATE');
    const tenants = await runCli(['tenants', '--json'], env);
    expect((tenants.json as { name: string; status: string }[]).map((t) => `${t.name}:${t.status}`).sort()).toEqual([
      'acme:running',
      'globex:running',
    ]);
    const incidents = await runCli(['incidents', 'list', '--tenant', 'acme', '--json'], env);
    expect((incidents.json as { items: unknown[] }).items.length).toBe(3);
    const engines = await runCli(['engines', '--json'], env);
    expect((engines.json as { name: string; status: string }[])[0]).toMatchObject({
      name: 'acme-engine',
      status: 'online',
    });
    expect(await httpGet(info.tunnel)).toContain('reached through the engine tunnel');
    // Syslog into acme's engine is searchable in acme.
    const port = Number((info as unknown as { syslog: string }).syslog.split(':').pop());
    const sock = createSocket('udp4');
    const found = await until('the demo syslog event in acme', async () => {
      await new Promise<void>((r) =>
        sock.send('<13>1 - demo app - - - demo syslog works', port, '127.0.0.1', () => r()),
      );
      const r = await runCli(['events', 'search', '--tenant', 'acme', '--q', 'demo syslog works', '--json'], env);
      return ((r.json as { items?: unknown[] } | undefined)?.items?.length ?? 0) > 0;
    });
    sock.close();
    expect(found).toBe(true);
    // And over TCP, as the demo's text says (docs/syslog.md's logger --tcp example), octet-counted RFC 5424.
    const tcp = (info as unknown as { syslogTcp: string }).syslogTcp;
    expect(tcp).toMatch(/^tcp:127\.0\.0\.1:\d+$/);
    const tcpPort = Number(tcp.split(':').pop());
    const msg = 'demo tcp syslog works';
    const viaTcp = await until('the demo TCP syslog event in acme', async () => {
      await sendTcp(tcpPort, msg);
      const r = await runCli(['events', 'search', '--tenant', 'acme', '--q', msg, '--json'], env);
      return ((r.json as { items?: unknown[] } | undefined)?.items?.length ?? 0) > 0;
    });
    expect(viaTcp).toBe(true);
    expect(await demo.stop('SIGTERM')).toBe(0);
    demo = undefined;
  }, 180_000);
});
