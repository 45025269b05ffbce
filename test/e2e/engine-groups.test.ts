/**
 * Engine groups end to end: a tenant with engines a1, a2 (group a) and b1 (group b), each allowed to reach the
 * same services, so a connection that landed on b1 would succeed and show. A tunnel bound to group a carries its
 * connections only through a1 and a2 (the operating system says which engine process dialled each connection the
 * service received; the tenant's per-session stream counts, read while the connections are held open, agree).
 * A read-only `engine run --group a` whose engine is killed before it answers runs again on the other engine of
 * the group (the operating system says which engine made each request); after that kill new connections go
 * through the group's other engine, never b1; when it is killed too, connections are refused with an error naming
 * the group, and still never reach b1. `engine run --group b` runs on b1 only; bad group input is refused naming
 * the field. Groups come from main's signed statement (the installer bundle's `--group`), never from the engine;
 * run once per path, since the group reaches the tenant in the relayed hello on one and in the direct preamble on
 * the other.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { Deployment, type EngineSession } from '../harness/deployment.js';
import { freePort, until } from '../harness/processes.js';
import { rawHttpGet } from '../harness/raw-http-get.js';
import { socketOwner } from '../harness/socket-owner.js';

interface Listener {
  id: string;
  listen: string;
  group?: string;
  connections: number;
  lastError?: string;
}
type Engine = EngineSession & { group: string | null; streams: number };

describe.each(['relay', 'direct'] as const)('engine groups (%s path)', (path) => {
  let d: Deployment;
  let web: Server;
  let hold: TcpServer;
  let webPort = 0;
  let holdPort = 0;
  /** Connections the hold service accepted (each one an engine dialled for a tunnel), by the client's port. */
  const holdFrom: number[] = [];
  const clients: Socket[] = [];
  /** The tunnels bound to group a: to the hold service and to the web service. */
  let heldTunnel: Listener;
  let webTunnel: Listener;
  /** Requests for /slow the web service received, by the client's port; the first is never answered. */
  const slowFrom: number[] = [];
  /** The engine of group a killed first (the one a command was running on), and the other. */
  let first: 'a1' | 'a2';
  let second: 'a1' | 'a2';

  const listing = async () =>
    (await d.api<{ tunnels: Listener[]; engines: Engine[] }>('GET', '/tenants/cust/api/tunnels')).body;
  /** Live streams per engine, as the tenant counts them on each engine's session. */
  const streams = async () => Object.fromEntries((await listing()).engines.map((e) => [e.name, e.streams]));
  const portOf = (l: Listener) => Number(l.listen.split(':').pop());
  const openTunnel = async (to: number, extra: string[] = []) => {
    const r = await d.cli(['tunnel', 'open', '--tenant', 'cust', '--to', `127.0.0.1:${to}`, ...extra, '--json']);
    return { ...r, view: r.json as Listener };
  };
  const enginePids = () =>
    Object.fromEntries(['a1', 'a2', 'b1'].map((name) => [name, d.agents.get(name)!.proc!.child.pid!]));
  /**
   * Opens `n` connections through the held tunnel, waits until the hold service accepted them all, and answers
   * how many each engine dialled, as the operating system says.
   */
  const holdConnections = async (n: number) => {
    const before = holdFrom.length;
    for (let i = 0; i < n; i++) {
      const s = connect(portOf(heldTunnel), '127.0.0.1');
      s.on('error', () => undefined);
      clients.push(s);
    }
    await until(`${n} held connections at the service`, () => holdFrom.length === before + n, 20_000);
    const pids = enginePids();
    const by: Record<string, number> = {};
    for (const port of holdFrom.slice(before)) {
      const owner = socketOwner(port, pids) ?? 'unknown';
      by[owner] = (by[owner] ?? 0) + 1;
    }
    return by;
  };
  const dropConnections = async () => {
    for (const s of clients.splice(0)) s.destroy();
    await until('no stream left on any engine', async () => Object.values(await streams()).every((n) => n === 0));
  };
  const sessionNames = async () => (await d.engineSessions('cust')).map((s) => s.name).sort();
  const kill = async (name: string) => {
    await d.agents.get(name)!.proc!.stop('SIGKILL');
    await until(`${name}'s session gone`, async () => !(await sessionNames()).includes(name), 30_000);
  };

  beforeAll(async () => {
    web = createServer((req, res) => {
      if (req.url !== '/slow') return res.end('inside');
      slowFrom.push(req.socket.remotePort!);
      if (slowFrom.length > 1) res.end('slow answer');
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    webPort = (web.address() as { port: number }).port;
    hold = createTcpServer((sock) => {
      holdFrom.push(sock.remotePort!);
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => hold.listen(0, '127.0.0.1', r));
    holdPort = (hold.address() as { port: number }).port;
    d = await Deployment.create();
    await d.install('host', 'gh', ['--engine-listen', path === 'relay' ? 'off' : `127.0.0.1:${await freePort()}`]);
    await d.startAgent('gh');
    await d.createTenant('cust', 'gh');
    const allow = [`127.0.0.1:${webPort}`, `127.0.0.1:${holdPort}`];
    for (const [name, group] of [
      ['a1', 'a'],
      ['a2', 'a'],
      ['b1', 'b'],
    ])
      await d.startEngine(name, 'cust', { allow, group, transport: path });
  });
  afterAll(async () => {
    for (const s of clients) s.destroy();
    await d?.stop();
    web?.close();
    hold?.close();
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(d.logs());
  });

  it("shows each engine's group, as main signed it, to the tenant and on main", async () => {
    const groups = Object.fromEntries((await listing()).engines.map((e) => [e.name, e.group]));
    expect(groups).toEqual({ a1: 'a', a2: 'a', b1: 'b' });
    const onMain = await d.cli(['engines', '--json']);
    expect(onMain.json).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'a1', group: 'a', tenant: 'cust' }),
        expect.objectContaining({ name: 'b1', group: 'b', tenant: 'cust' }),
      ]),
    );
    const text = await d.cli(['tunnel', 'list', '--tenant', 'cust']);
    expect(text.stdout).toContain('a1 (group a)');
  });

  it('engine run --group b runs on b1 only, while a1 and a2 are live too', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await d.cli([
        'engine',
        'run',
        'http.request',
        '--tenant',
        'cust',
        '--group',
        'b',
        '--args',
        JSON.stringify({ url: `http://127.0.0.1:${webPort}/` }),
        '--json',
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json).toMatchObject({ engine: 'b1', group: 'b', result: { status: 200, body: 'inside' } });
    }
  });

  it('refuses bad group input with a 400 or 404 naming the field', async () => {
    const body = { to: `127.0.0.1:${holdPort}`, listen: '127.0.0.1:0' };
    const malformed = await d.api<{ error: { code: string; message: string } }>('POST', '/tenants/cust/api/tunnels', {
      ...body,
      group: 'A B',
    });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.message).toContain('group');
    const unknown = await openTunnel(holdPort, ['--listen', '127.0.0.1:0', '--group', 'zz']);
    expect(unknown.code).toBe(2);
    expect(unknown.json).toMatchObject({ error: { code: 'ERR_ENGINE_GROUP_UNKNOWN' } });
    expect((unknown.json as { error: { message: string } }).error.message).toMatch(/^group: .*"zz".*groups seen: a, b/);
    const outside = await openTunnel(holdPort, ['--listen', '127.0.0.1:0', '--group', 'a', '--engine', 'b1']);
    expect(outside.json).toMatchObject({ error: { code: 'ERR_ENGINE_NOT_IN_GROUP' } });
    expect((outside.json as { error: { message: string } }).error.message).toMatch(/^engine: "b1"/);
    const run = await d.api<{ error: { code: string; message: string } }>('POST', '/tenants/cust/api/engine-commands', {
      command: 'tcp.check',
      args: { host: '127.0.0.1', port: holdPort },
      group: '-x',
    });
    expect(run.status).toBe(400);
    expect(run.body.error.message).toContain('group');
    expect((await listing()).tunnels).toEqual([]);
  });

  it('a tunnel bound to group a carries its connections through a1 and a2 only', async () => {
    const held = await openTunnel(holdPort, ['--listen', '127.0.0.1:0', '--group', 'a']);
    expect(held.code, held.stdout + held.stderr).toBe(0);
    heldTunnel = held.view;
    expect(heldTunnel.group).toBe('a');
    webTunnel = (await openTunnel(webPort, ['--listen', '127.0.0.1:0', '--group', 'a'])).view;
    const dialled = await holdConnections(8);
    expect(Object.keys(dialled).sort()).toEqual(['a1', 'a2']);
    const s = await streams();
    expect(s.b1).toBe(0);
    expect(s.a1 + s.a2).toBe(8);
    // Spread over the group, not pinned to one engine of it.
    expect(s.a1).toBeGreaterThan(0);
    expect(s.a2).toBeGreaterThan(0);
    await dropConnections();
  });

  it('a read-only command moves to the other engine of its group when its engine is killed before answering', async () => {
    const pids = enginePids();
    const running = d.cli([
      'engine',
      'run',
      'http.request',
      '--tenant',
      'cust',
      '--group',
      'a',
      '--args',
      JSON.stringify({ url: `http://127.0.0.1:${webPort}/slow` }),
      '--json',
    ]);
    await until('the command at the web service', () => slowFrom.length === 1, 20_000);
    const owner = socketOwner(slowFrom[0], pids);
    expect(owner === 'a1' || owner === 'a2', `request made by ${owner}`).toBe(true);
    first = owner as 'a1' | 'a2';
    second = first === 'a1' ? 'a2' : 'a1';
    await kill(first);
    const r = await running;
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.json).toMatchObject({ engine: second, group: 'a', failedOver: [first], result: { body: 'slow answer' } });
    expect(slowFrom).toHaveLength(2);
  });

  it("after one engine of group a is killed, new connections go through the group's other engine, never b1", async () => {
    expect(await holdConnections(6)).toEqual({ [second]: 6 });
    expect(await streams()).toEqual({ [second]: 6, b1: 0 });
    for (let i = 0; i < 3; i++) expect((await rawHttpGet(portOf(webTunnel))).body).toBe('inside');
    await dropConnections();
  });

  it("with the group's other engine killed too, connections are refused with the group's error, never reaching b1", async () => {
    await kill(second);
    expect(await sessionNames()).toEqual(['b1']);
    const before = holdFrom.length;
    const closed = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<boolean>((resolve) => {
            const s = connect(portOf(heldTunnel), '127.0.0.1');
            s.on('error', () => undefined);
            s.once('close', () => resolve(true));
            setTimeout(() => {
              s.destroy();
              resolve(false); // still open: carried somewhere
            }, 20_000).unref();
          }),
      ),
    );
    expect(closed).toEqual([true, true, true]);
    const t = (await listing()).tunnels.find((l) => l.id === heldTunnel.id)!;
    expect(t.lastError).toMatch(/^ERR_ENGINE_GROUP_OFFLINE: no engine of group "a" has a session with tenant cust/);
    expect(await streams()).toEqual({ b1: 0 });
    expect(holdFrom).toHaveLength(before);
    const run = await d.cli([
      'engine',
      'run',
      'tcp.check',
      '--tenant',
      'cust',
      '--group',
      'a',
      '--args',
      JSON.stringify({ host: '127.0.0.1', port: holdPort }),
      '--json',
    ]);
    expect(run.code).toBe(1); // unavailable: an operational failure, not the user's input
    expect(run.json).toMatchObject({ error: { code: 'ERR_ENGINE_GROUP_OFFLINE' } });
    expect(holdFrom).toHaveLength(before);
  });
});
