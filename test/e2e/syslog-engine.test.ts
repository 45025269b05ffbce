/**
 * Syslog on engines, end to end (issue 19 item 1): real main, host, tenants and engines installed with
 * `agent install --syslog …`; `logger` (util-linux) sends RFC 3164 and RFC 5424 messages over UDP and TCP (newline
 * and octet-counted framing), a TLS client sends per RFC 5425 to the engine's certificate, and each message is found
 * by the tenant's event search, filed under the engine that received it, on the direct and the relayed session
 * path. An engine's events reach only its own tenant, filed under its own name whatever a batch claims. A tenant
 * killed with SIGKILL, or moved to another host, while a sender streams over TCP loses none of the messages its engine
 * accepted: they wait in the engine's spool and arrive once the tenant is back. Every kind of domain mapping decides
 * the domain of a message logger sends, in QRadar's order. The engine learns from its tenant's hello that the tenant
 * reads binary batches, so these all travel in the binary form.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, execFile } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { encodeEnvelope, jsonBytes, parseJsonBytes } from '#common/codec.js';
import { MINOR_BINARY_EVENTS } from '#common/protocol-version.js';
import { Deployment } from '../harness/deployment.js';
import { HostileEngine } from '../harness/hostile-engine.js';
import { freePort, runCli, until } from '../harness/processes.js';

const run = promisify(execFile);

interface EventRow {
  id: string;
  time: string;
  message: string;
  engine: string;
  sender: string;
  transport: string;
  logSource: string;
  host?: string;
}
interface EventPage {
  items: EventRow[];
  next: string | null;
}

let d: Deployment;
const ports = { udp: 0, tcp: 0, tls: 0, other: 0 };
const RUN = randomBytes(4).toString('hex');

/** Every event of `tenant` whose text holds `q`, all pages. */
async function search(tenant: string, q: string): Promise<EventRow[]> {
  const all: EventRow[] = [];
  let before: string | null = null;
  do {
    const qs: URLSearchParams = new URLSearchParams({ q, limit: '1000', ...(before ? { before } : {}) });
    const r: { status: number; body: EventPage; raw: string } = await d.api<EventPage>(
      'GET',
      `/tenants/${tenant}/api/events?${qs.toString()}`,
    );
    if (r.status !== 200) throw new Error(`search ${tenant}: ${r.status} ${r.raw}`);
    all.push(...r.body.items);
    before = r.body.next;
  } while (before);
  return all;
}
const found = (tenant: string, q: string, n = 1) =>
  until(`${n} event(s) "${q}" in ${tenant}`, async () => {
    const rows = await search(tenant, q);
    return rows.length >= n && rows;
  });

function logger(port: number, args: string[], message: string): Promise<unknown> {
  return run('logger', ['-n', '127.0.0.1', '-P', String(port), '-t', 'e2e', ...args, message]);
}

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'h1');
  await d.startAgent('h1');
  await d.createTenant('sa', 'h1');
  await d.createTenant('sb', 'h1');
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  const listen = (t: string, p: number) => ['--syslog', `${t}:127.0.0.1:${p}`];
  await d.startEngine('ea', 'sa', {
    flags: [...listen('udp', ports.udp), ...listen('tcp', ports.tcp), ...listen('tls', ports.tls)],
  });
  // eb relays through main: batches travel both session paths.
  await d.startEngine('eb', 'sb', { flags: [...listen('tcp', ports.other), '--no-direct'], transport: 'relay' });
}, 180_000);

afterAll(async () => {
  await d?.stop();
});

describe('agent install --syslog', () => {
  it('writes the listeners to agent.json, and the engine says where it listens', async () => {
    const cfg = JSON.parse(readFileSync(join(d.agents.get('ea')!.dir, 'agent.json'), 'utf8')) as {
      syslog: unknown[];
    };
    expect(cfg.syslog).toEqual([
      { transport: 'udp', host: '127.0.0.1', port: ports.udp },
      { transport: 'tcp', host: '127.0.0.1', port: ports.tcp },
      { transport: 'tls', host: '127.0.0.1', port: ports.tls },
    ]);
    const log = readFileSync(d.agentLog('ea'), 'utf8');
    for (const t of ['udp', 'tcp', 'tls'] as const)
      expect(log).toContain(`syslog listening on ${t}:127.0.0.1:${ports[t]}`);
  });

  it('refuses a bad listener with exit 2 and one line naming --syslog, installing nothing', async () => {
    const dir = join(d.dir, 'never-installed');
    for (const bad of ['smtp:127.0.0.1:514', 'udp:127.0.0.1', 'tcp:example.com:514', 'udp:[::1]:99999']) {
      const r = await runCli([
        'agent',
        'install',
        '--bundle',
        join(d.dir, 'none.tar.gz'),
        '--dir',
        dir,
        '--syslog',
        bad,
      ]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`--syslog "${bad}"`);
    }
    const j = await runCli(['agent', 'install', '--bundle', 'x', '--dir', dir, '--syslog', 'bogus', '--json']);
    expect(j.code).toBe(2);
    expect(JSON.stringify(j.json ?? j.stdout + j.stderr)).toContain('ERR_BAD_SYSLOG');
  });
});

describe('logger → engine → tenant', () => {
  it.each([
    ['UDP', 'RFC 3164', ['-d', '--rfc3164'], 'udp'],
    ['UDP', 'RFC 5424', ['-d', '--rfc5424'], 'udp'],
    ['TCP newline-framed', 'RFC 3164', ['-T', '--rfc3164'], 'tcp'],
    ['TCP octet-counted', 'RFC 5424', ['-T', '--octet-count', '--rfc5424'], 'tcp'],
  ])('%s %s messages are searchable in the tenant', async (_how, _rfc, args, transport) => {
    const tag = `m-${RUN}-${randomBytes(3).toString('hex')}`;
    await logger(transport === 'udp' ? ports.udp : ports.tcp, args, `login failed for ${tag} src=10.1.2.3`);
    const [e] = await found('sa', tag);
    expect(e.message).toContain(`login failed for ${tag}`);
    expect(e).toMatchObject({ engine: 'ea', transport, sender: '127.0.0.1' });
  });

  it('TLS (RFC 5425): the engine presents its own certificate, and octet-counted messages arrive', async () => {
    const tag = `tls-${RUN}`;
    // This sender pins the engine's certificate by fingerprint (RFC 5425 §4.2.2); the next test verifies by CA.
    const sock = tlsConnect({ host: '127.0.0.1', port: ports.tls, rejectUnauthorized: false });
    await new Promise<void>((res, rej) => sock.once('secureConnect', res).once('error', rej));
    const engineCert = new X509Certificate(readFileSync(join(d.agents.get('ea')!.dir, 'pki', 'agent.pem')));
    expect(sock.getPeerCertificate().fingerprint256).toBe(engineCert.fingerprint256);
    expect(engineCert.checkIssued(new X509Certificate(readFileSync(d.caCertPath)))).toBe(true);
    expect(sock.getProtocol()).toMatch(/^TLSv1\.[23]$/);
    const msgs = [1, 2, 3].map((i) => `<38>1 2026-12-06T12:00:00Z web1 sshd 77 - - ${tag} number ${i}`);
    sock.end(msgs.map((m) => `${Buffer.byteLength(m)} ${m}`).join(''));
    const rows = await found('sa', tag, 3);
    expect(rows.map((r) => r.message).sort()).toEqual([1, 2, 3].map((i) => `${tag} number ${i}`));
    expect(rows[0]).toMatchObject({ transport: 'tls', engine: 'ea', host: 'web1' });
    sock.destroy();
  });

  it("TLS: a sender verifying against main's CA (server purpose) accepts the engine's certificate", async () => {
    // Node: the CA and the server purpose are checked; the name is the engine id, not an address, so not compared.
    const sock = tlsConnect({
      host: '127.0.0.1',
      port: ports.tls,
      ca: readFileSync(d.caCertPath),
      checkServerIdentity: () => undefined,
    });
    await new Promise<void>((res, rej) => sock.once('secureConnect', res).once('error', rej));
    expect(sock.authorized).toBe(true);
    sock.destroy();
    // openssl s_client checks the purpose (sslserver) and fails on any verify error.
    const client = run('openssl', [
      ...['s_client', '-connect', `127.0.0.1:${ports.tls}`, '-verify_return_error', '-CAfile', d.caCertPath],
      '-brief',
    ]);
    client.child.stdin?.end(); // s_client reads stdin until EOF, then closes
    const r = await client.catch((e: { stdout?: string; stderr?: string }) => e);
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    expect(out).toContain('Verification: OK');
    expect(out).not.toContain('unsuitable certificate purpose');
  });

  it("an engine's events reach its own tenant only (also when its session is relayed through main)", async () => {
    const tagB = `b-${RUN}`;
    const tagA = `a-${RUN}`;
    await logger(ports.other, ['-T', '--rfc3164'], `for sb ${tagB}`);
    await logger(ports.tcp, ['-T', '--rfc3164'], `for sa ${tagA}`);
    const [b] = await found('sb', tagB);
    expect(b.engine).toBe('eb');
    await found('sa', tagA);
    expect(await search('sa', tagB)).toEqual([]);
    expect(await search('sb', tagA)).toEqual([]);
  });

  it("the tenant's engine list shows what each engine's batches brought", async () => {
    const r = await d.api<{ engines: { name: string; events?: { records: number; engineDropped: number } }[] }>(
      'GET',
      '/tenants/sa/api/engines',
    );
    const ea = r.body.engines.find((e) => e.name === 'ea');
    expect(ea?.events?.records).toBeGreaterThanOrEqual(5);
    expect(ea?.events?.engineDropped).toBe(0);
  });

  it("learns from its tenant's hello that the tenant reads binary batches (protocol 1.11)", () => {
    const established = readFileSync(d.agentLog('ea'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"tunnel session established"'))
      .map((l) => JSON.parse(l) as { tenantMinor?: number });
    expect(established.length).toBeGreaterThan(0);
    for (const e of established) expect(e.tenantMinor).toBeGreaterThanOrEqual(MINOR_BINARY_EVENTS);
  });
});

describe('domain tagging of what logger sends', () => {
  it("each mapping kind decides in QRadar's order, and the CEP fall-through switch lets a later rule decide", async () => {
    const cli = async (...args: string[]) => {
      const r = await d.cli([...args, '--tenant', 'sa']);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
    };
    const source = `${hostname()}@ea`; // logger names this machine in its header
    const send = async (kind: string, extra: string) => {
      const tag = `kind-${kind}-${RUN}`;
      await logger(ports.tcp, ['-T', '--rfc5424'], `${tag} ${extra}`);
      const [e] = await found('sa', tag);
      return e as EventRow & { domain: string; domainRule: string };
    };
    const steps: [kind: string, map: string[], extra: string, rule: string][] = [
      ['collector', ['--event-collector', 'ea'], 'x=1', 'event-collector:ea'],
      ['group', ['--log-source-group', 'lab'], 'x=1', 'log-source-group:lab'],
      ['source', ['--log-source', source], 'x=1', `log-source:${source}`],
      ['flow', ['--flow-source', 'probe1'], 'flowSource=probe1', 'flow-source:probe1'],
      ['vlan', ['--vlan', '12'], 'vlan=12 flowSource=probe1', 'vlan:12'],
      ['property', ['--property', 'cust=acme'], 'cust=acme vlan=12', 'property:cust=acme'],
    ];
    await cli('log-sources', 'group', source, '--group', 'lab');
    await cli('properties', 'create', 'cust', '--regex', 'cust=(\\w+)');
    try {
      // Each step adds a rule that outranks the ones before it, and a message only it can decide.
      for (const [kind, map, extra, rule] of steps) {
        await cli('domains', 'create', `k-${kind}`);
        await cli('domains', 'map', `k-${kind}`, ...map);
        expect(await send(kind, extra)).toMatchObject({ domain: `k-${kind}`, domainRule: rule, logSource: source });
      }
      // A value no mapping has: the Default Domain at once, unless the CEP fall-through lets later rules decide.
      expect(await send('unmatched', 'cust=zzz vlan=12')).toMatchObject({
        domain: 'Default Domain',
        domainRule: 'property-unmatched:cust',
      });
      await cli('domains', 'settings', '--cep-fallthrough', 'on');
      expect(await send('fallthrough', 'cust=zzz vlan=12')).toMatchObject({ domain: 'k-vlan', domainRule: 'vlan:12' });
    } finally {
      await d.cli(['domains', 'settings', '--cep-fallthrough', 'off', '--tenant', 'sa']);
      for (const [kind] of steps) await d.cli(['domains', 'remove', `k-${kind}`, '--tenant', 'sa']);
      await d.cli(['properties', 'remove', 'cust', '--tenant', 'sa']);
      await d.cli(['log-sources', 'group', source, '--group', 'lab', '--remove', '--tenant', 'sa']);
    }
  });
});

describe('an engine gone bad, speaking its sealed session by hand', () => {
  let bad: HostileEngine;
  let nextId = 1;
  /** Sends one command to the tenant and waits for its answer. */
  const command = async (name: string, args: unknown) => {
    const id = nextId++;
    bad.send(bad.sealed(encodeEnvelope({ id, command: { name, args: jsonBytes(args) } })));
    const r = await until(`the answer to command ${id}`, () => bad.opened().find((e) => Number(e.replyTo) === id));
    return r.result!;
  };
  const rec = (raw: string) => ({ receivedAt: Date.now(), sender: '10.9.9.9', transport: 'udp', raw });

  beforeAll(async () => {
    // A real engine of sa enrols and stops: its identity is the hostile engine's.
    await d.startEngine('ex', 'sa');
    await d.agents.get('ex')!.proc!.stop();
    await until('ex out of session', async () => !(await d.engineSessions('sa')).some((s) => s.name === 'ex'));
    bad = await HostileEngine.connect(d, 'ex', 'sa');
    await bad.handshake();
  }, 120_000);
  afterAll(() => bad?.ws.close());

  it("cannot file events under another engine's name: the tenant takes the name from the session", async () => {
    const tag = `spoof-${RUN}`;
    const r = await command('events.batch', { engine: 'eb', seq: 1, records: [rec(`<13>${tag}`)] });
    expect(r.ok).toBe(true);
    expect(parseJsonBytes(r.value)).toMatchObject({ seq: 1, accepted: 1, duplicate: false });
    const [e] = await found('sa', tag);
    expect(e.engine).toBe('ex');
    expect(await search('sb', tag)).toEqual([]);
  });

  it('a malformed batch is refused whole, naming the field, and stores nothing; other commands are refused', async () => {
    const tag = `malformed-${RUN}`;
    const r = await command('events.batch', { seq: 2, records: [rec(`<13>${tag}`), { ...rec(tag), transport: 'x' }] });
    expect(r).toMatchObject({ ok: false, errorCode: 'ERR_EVENTS_BATCH' });
    expect(r.errorMessage).toContain('records[1].transport');
    const other = await command('tunnel.listen', { id: 'tun_000000000000', listen: '127.0.0.1:0' });
    expect(other).toMatchObject({ ok: false, errorCode: 'ERR_COMMAND_UNKNOWN' });
    // A later good batch is stored, and the refused one never was.
    await command('events.batch', { seq: 3, records: [rec(`<13>after-${tag}`)] });
    await found('sa', `after-${tag}`);
    const rows = await search('sa', tag);
    expect(rows).toHaveLength(1);
    expect(rows[0].message).toContain(`after-${tag}`);
  });
});

/** Streams `total` lines tagged `tag` over one logger TCP connection, calling `midway` a quarter of the way in. */
async function stream(tag: string, total: number, midway: () => Promise<unknown>): Promise<void> {
  const sender = spawn('logger', ['-n', '127.0.0.1', '-P', String(ports.tcp), '-T', '--rfc3164', '-t', 'stream']);
  const exited = new Promise<number | null>((res) => sender.once('exit', (code) => res(code)));
  let sent = 0;
  const burst = async (upTo: number) => {
    while (sent < upTo) {
      const lines: string[] = [];
      for (let i = 0; i < 50 && sent < upTo; i++) lines.push(`${tag} seq=${sent++}`);
      if (!sender.stdin.write(lines.join('\n') + '\n')) await new Promise((r) => sender.stdin.once('drain', r));
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await burst(total / 4);
  const during = midway();
  await burst(total);
  sender.stdin.end();
  expect(await exited).toBe(0);
  await during;
}

/** How many sessions engine `name` has established so far, by its log. */
const sessionsOf = (name: string) =>
  readFileSync(d.agentLog(name), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"tunnel session established"')).length;

/** Waits until `tenant` holds all `total` events of `tag`, each once. */
async function allStored(tenant: string, tag: string, total: number): Promise<void> {
  const rows = await until(
    `all ${total} streamed events in ${tenant}`,
    async () => {
      const r = await search(tenant, tag);
      return r.length >= total && r;
    },
    120_000,
    1_000,
  );
  const seqs = new Set(rows.map((r) => Number(/seq=(\d+)/.exec(r.message)![1])));
  expect(seqs.size).toBe(total);
  expect(rows).toHaveLength(total); // each stored once, re-sent batches included
}

describe('a tenant restart or move while events stream over TCP', () => {
  it('loses none of the messages the engine accepted (kill -9, then back)', async () => {
    const tag = `k-${RUN}`;
    const total = 4000;
    const tenant = await d.tenantRunning('sa');
    const sessions = sessionsOf('ea');
    await stream(tag, total, async () => process.kill(tenant.pid!, 'SIGKILL'));
    await d.tenantRunning('sa', { notPid: tenant.pid! });
    await allStored('sa', tag, total);
    expect(sessionsOf('ea')).toBeGreaterThan(sessions); // the engine lost its session and made a new one
  }, 200_000);

  it('loses none when the tenant moves to another host', async () => {
    await d.install('host', 'h2');
    await d.startAgent('h2');
    const tag = `mv-${RUN}`;
    const total = 4000;
    const sessions = sessionsOf('ea');
    await stream(tag, total, async () => {
      const r = await d.cli(['tenant', 'move', 'sa', '--to', 'h2', '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    });
    expect(await d.tenant('sa')).toMatchObject({ host: 'h2', status: 'running' });
    await allStored('sa', tag, total);
    expect(sessionsOf('ea')).toBeGreaterThan(sessions);
  }, 300_000);
});
