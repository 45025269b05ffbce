/**
 * Tunnel data flow and session admission end to end, with real processes and sockets: many parallel
 * streams where one slow reader must not stall the others or make anyone buffer without bound; bulk
 * transfers that arrive bit-exact both ways; and engines that may not get a session at all (a wrong
 * tenant key in the config, a copied certificate without the enrolled box key). Run once per path:
 * tunnel-flow.test.ts (direct engine ⇄ host connection) and tunnel-flow-relay.test.ts (through main).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { Deployment } from '../harness/deployment.js';
import { Proc, readLog, until } from '../harness/processes.js';

export function flowSuite(path: 'direct' | 'relay'): void {
  const MiB = 1024 * 1024;
  const TENANT = 'flow';
  /** Bulk transfer size (default 1 GiB); smaller for a quick local run. */
  const BULK_BYTES = Number(process.env.PALISADE_TEST_TUNNEL_BYTES ?? 1024 * MiB);
  /** The upload proves the other direction and half-close; the 1 GiB of the issue is the download. */
  const UPLOAD_BYTES = Math.max(MiB, Math.floor(BULK_BYTES / 4));

  let d: Deployment;
  let hostDir = '';
  const servers: Server[] = [];
  const tunnelPort: Record<'stream' | 'bulk' | 'sink', number> = { stream: 0, bulk: 0, sink: 0 };
  const allow: string[] = [];

  /** A 1 MiB random block; streams are views into it (rotated per stream id), bulk data is it plus a counter. */
  const BLOCK = randomBytes(MiB);
  const DOUBLE_BLOCK = Buffer.concat([BLOCK, BLOCK]);
  const CHUNK = 64 * 1024;

  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const sha256 = () => createHash('sha256');

  /** What the stream source knows about one connection: how far it got and whether the kernel/tunnel pushed back. */
  interface Served {
    sock: Socket;
    size: number;
    handed: number;
    sawBackpressure: boolean;
    waitingForDrain: boolean;
    hash?: string;
  }
  const served = new Map<number, Served>();

  /** Bytes the source's socket really let go of (handed to write() minus what Node still buffers). */
  const accepted = (s: Served) => s.handed - s.sock.writableLength;

  function listen(server: Server): Promise<number> {
    servers.push(server);
    return new Promise((r) => server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)));
  }

  /**
   * The stream source: reads an 8-byte header (u32 stream id, u32 size), then sends `size` bytes of that
   * id's pattern, respecting backpressure (waits for 'drain' whenever write() returns false).
   */
  function streamSource(): Server {
    return createServer((sock) => {
      sock.on('error', () => undefined);
      let head = Buffer.alloc(0);
      const onHead = (c: Buffer) => {
        head = Buffer.concat([head, c]);
        if (head.length < 8) return;
        sock.off('data', onHead);
        const id = head.readUInt32BE(0);
        const s: Served = {
          sock,
          size: head.readUInt32BE(4),
          handed: 0,
          sawBackpressure: false,
          waitingForDrain: false,
        };
        served.set(id, s);
        const hash = sha256();
        let pos = (id * 4099) % MiB;
        const pump = () => {
          s.waitingForDrain = false;
          while (s.handed < s.size) {
            const n = Math.min(CHUNK, s.size - s.handed);
            const chunk = DOUBLE_BLOCK.subarray(pos, pos + n);
            pos = (pos + n) % MiB;
            hash.update(chunk);
            s.handed += n;
            if (!sock.write(chunk)) {
              s.sawBackpressure = true;
              s.waitingForDrain = true;
              sock.once('drain', pump);
              return;
            }
          }
          s.hash = hash.digest('hex');
          sock.end();
        };
        pump();
      };
      sock.on('data', onHead);
    });
  }

  /**
   * Bulk data: BLOCK with the block counter in its first 8 bytes, a fresh buffer per MiB (write() keeps a reference).
   */
  function bulkBlock(i: number, n: number): Buffer {
    const b = Buffer.from(BLOCK.subarray(0, n));
    if (n >= 8) b.writeBigUInt64BE(BigInt(i));
    return b;
  }

  /** Writes `total` bulk bytes to `sock` with backpressure; resolves with their sha256 once all are handed over. */
  async function sendBulk(sock: Socket, total: number): Promise<string> {
    const hash = sha256();
    for (let i = 0, sent = 0; sent < total; i++) {
      const b = bulkBlock(i, Math.min(MiB, total - sent));
      hash.update(b);
      sent += b.length;
      if (!sock.write(b)) {
        await new Promise<void>((resolve, reject) => {
          const onClose = () => reject(new Error(`socket closed after ${sent} of ${total} bytes`));
          sock.once('close', onClose);
          sock.once('drain', () => {
            sock.off('close', onClose);
            resolve();
          });
        });
      }
    }
    return hash.digest('hex');
  }

  /** What a receiver saw: byte count, sha256, and whether the stream ended cleanly (FIN) rather than by error. */
  interface Received {
    bytes: number;
    hash: string;
    ended: boolean;
  }

  function hashIncoming(sock: Socket): Promise<Received> {
    return new Promise((resolve) => {
      const hash = sha256();
      let bytes = 0,
        ended = false;
      sock.on('data', (c: Buffer) => {
        bytes += c.length;
        hash.update(c);
      });
      sock.on('end', () => {
        ended = true;
      });
      sock.on('error', () => undefined);
      sock.on('close', () => resolve({ bytes, hash: hash.digest('hex'), ended }));
    });
  }

  /** Bulk download source: sends BULK_BYTES to each connection; results in connection order. */
  const bulkSent: Promise<string>[] = [];
  function bulkSource(): Server {
    return createServer((sock) => {
      sock.on('error', () => undefined);
      bulkSent.push(
        sendBulk(sock, BULK_BYTES).then((h) => {
          sock.end();
          return h;
        }),
      );
    });
  }

  /** Upload sink: hashes whatever arrives until the client's end, then closes its side too. */
  const sinkReceived: Promise<Received>[] = [];
  function uploadSink(): Server {
    return createServer({ allowHalfOpen: true }, (sock) => {
      sinkReceived.push(hashIncoming(sock));
      sock.on('end', () => sock.end());
    });
  }

  /** Opens one stream through the tunnel asking the source for `size` bytes of stream `id`. */
  function openStream(id: number, size: number, paused = false): { sock: Socket; done: Promise<Received> } {
    const sock = connect(tunnelPort.stream, '127.0.0.1');
    const done = hashIncoming(sock);
    sock.once('connect', () => {
      const head = Buffer.alloc(8);
      head.writeUInt32BE(id, 0);
      head.writeUInt32BE(size, 4);
      sock.write(head);
      if (paused) sock.pause();
    });
    return { sock, done };
  }

  function timeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let t: NodeJS.Timeout | undefined;
    return Promise.race([
      p,
      new Promise<never>((_, rej) => {
        t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]).finally(() => clearTimeout(t));
  }

  /** Agent ids of the engines with a live session at the tenant (the list holds ids or `{id, …}` views). */
  async function engines(): Promise<string[]> {
    const r = await d.api<{ engines: (string | { id: string })[] }>('GET', `/tenants/${TENANT}/api/tunnels`);
    if (r.status !== 200) throw new Error(`GET tunnels: ${r.status} ${r.raw}`);
    return r.body.engines.map((e) => (typeof e === 'string' ? e : e.id));
  }

  async function openTunnel(to: number): Promise<number> {
    const r = await d.api<{ listen: string }>('POST', `/tenants/${TENANT}/api/tunnels`, {
      to: `127.0.0.1:${to}`,
      listen: '127.0.0.1:0',
    });
    if (r.status !== 201) throw new Error(`open tunnel: ${r.status} ${r.raw}`);
    return Number(r.body.listen.split(':').pop());
  }

  /** Creates an engine bundle for the tenant and installs it (allow-listing our servers); not started. */
  const installEngine = (name: string) => d.installEngine(name, TENANT, allow);

  async function agentId(dir: string): Promise<string> {
    return (JSON.parse(await readFile(join(dir, 'identity.json'), 'utf8')) as { agentId: string }).agentId;
  }

  const tenantLog = () => join(hostDir, 'tenants', TENANT, 'logs', 'tenant.log');
  /** The deployment's logs plus the tenant's own (the harness does not know where tenants log). */
  const allLogs = async () => `${d.logs()}\n--- tenant ${TENANT}\n${(await readLog(tenantLog())).slice(-20_000)}`;

  /** Pino lines of a log file that match every given field. */
  async function logLines(path: string, match: Record<string, unknown>): Promise<Record<string, unknown>[]> {
    return (await readLog(path))
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return {};
        }
      })
      .filter((o) => Object.entries(match).every(([k, v]) => o[k] === v));
  }

  function rssMiB(pid: number): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (!m) throw new Error(`no VmRSS for pid ${pid}`);
    return Number(m[1]) / 1024;
  }

  /** Growth over a run must stay below this per process: the budget of a tunnel is its windows, not its data. */
  const RSS_GROWTH_LIMIT_MiB = 200;

  /**
   * Samples the RSS of main, the host, the tenant process and the engine until `stop()`, which logs base →
   * peak and returns the growth per process. The tenant pid is the one `GET /tenants` reports.
   */
  async function watchRss(): Promise<{ stop(label: string): Record<string, number> }> {
    const tenant = await d.tenant(TENANT);
    expect(tenant?.pid, 'GET /tenants reports the tenant pid').toBeGreaterThan(0);
    const pids: Record<string, number> = {
      main: d.main!.child.pid!,
      host: d.agents.get('fh')!.proc!.child.pid!,
      tenant: tenant!.pid!,
      engine: d.agents.get('fe1')!.proc!.child.pid!,
    };
    const base = Object.fromEntries(Object.entries(pids).map(([k, p]) => [k, rssMiB(p)]));
    const peak = { ...base };
    const sampler = setInterval(() => {
      for (const [k, p] of Object.entries(pids)) peak[k] = Math.max(peak[k], rssMiB(p));
    }, 100);
    return {
      stop(label) {
        clearInterval(sampler);
        console.log(
          `${label}: RSS MiB base → peak: ${Object.keys(pids)
            .map((k) => `${k} ${base[k].toFixed(0)} → ${peak[k].toFixed(0)}`)
            .join(', ')}`,
        );
        return Object.fromEntries(Object.keys(pids).map((k) => [k, peak[k] - base[k]]));
      },
    };
  }

  function expectBoundedGrowth(growth: Record<string, number>): void {
    for (const [k, g] of Object.entries(growth)) expect(g, `${k} RSS growth (MiB)`).toBeLessThan(RSS_GROWTH_LIMIT_MiB);
  }

  /** One stream's worth of data through the tunnel, checked: proves some engine session serves streams. */
  async function streamWorks(id: number): Promise<void> {
    const c = openStream(id, MiB);
    const got = await timeout(c.done, 20_000, `stream ${id}`);
    expect(got.bytes).toBe(MiB);
    expect(got.hash).toBe(served.get(id)?.hash);
  }

  beforeAll(async () => {
    // The services "inside the customer network"; the engines' allow-list names exactly these.
    const service = {
      stream: await listen(streamSource()),
      bulk: await listen(bulkSource()),
      sink: await listen(uploadSink()),
    };
    allow.push(...Object.values(service).map((p) => `127.0.0.1:${p}`));
    d = await Deployment.create();
    hostDir = await d.install('host', 'fh');
    if (path === 'relay') d.configure('fh', { engineListen: 'off' });
    await d.startAgent('fh');
    await d.createTenant(TENANT, 'fh');
    const fe1 = await d.startEngine('fe1', TENANT, { allow }).catch(async (e: unknown) => {
      console.error(await allLogs());
      throw e;
    });
    expect(fe1.transport).toBe(path);
    // One tunnel listener in front of each service; clients only ever connect to these.
    tunnelPort.stream = await openTunnel(service.stream);
    tunnelPort.bulk = await openTunnel(service.bulk);
    tunnelPort.sink = await openTunnel(service.sink);
  });
  afterAll(async () => {
    await d?.stop();
    for (const s of servers) {
      s.close();
    }
    for (const s of served.values()) s.sock.destroy();
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(await allLogs());
  });

  describe('tunnel flow control', () => {
    it('100 parallel streams: 99 finish while one reader is paused, nobody buffers without bound, the paused one then arrives intact', async () => {
      const N = 100,
        SLOW = 0,
        FAST_BYTES = 3 * MiB,
        SLOW_BYTES = 64 * MiB;
      const rss = await watchRss();
      let growth: Record<string, number> | undefined;
      try {
        const t0 = Date.now();
        const streams = Array.from({ length: N }, (_, i) =>
          openStream(i, i === SLOW ? SLOW_BYTES : FAST_BYTES, i === SLOW),
        );
        const fast = await timeout(
          Promise.all(streams.filter((_, i) => i !== SLOW).map((s) => s.done)),
          180_000,
          '99 fast streams',
        );
        console.log(
          `99 × ${FAST_BYTES / MiB} MiB streams done in ${Date.now() - t0} ms while stream ${SLOW} was paused`,
        );
        fast.forEach((r, j) => {
          const id = j < SLOW ? j : j + 1;
          expect(r, `stream ${id}`).toMatchObject({ bytes: FAST_BYTES, ended: true, hash: served.get(id)!.hash });
        });

        // The paused stream's source is stuck on backpressure, far short of what it wants to send.
        const slow = served.get(SLOW)!;
        let last = -1;
        await until(
          'the slow source to stop making progress',
          async () => {
            const now = accepted(slow);
            const still = now === last && slow.waitingForDrain;
            last = now;
            return still;
          },
          20_000,
          1000,
        );
        console.log(
          `paused stream: source handed over ${(accepted(slow) / MiB).toFixed(2)} MiB of ${SLOW_BYTES / MiB} MiB before stalling`,
        );
        expect(slow.sawBackpressure).toBe(true);
        expect(slow.hash, 'the slow source must not have finished').toBeUndefined();
        // Kernel socket buffers on both loopback legs plus one 256 KiB stream window on each side, not 64 MiB.
        expect(accepted(slow)).toBeLessThan(16 * MiB);
        expect(streams[SLOW].sock.destroyed).toBe(false);

        growth = rss.stop('100 streams, one paused');
        expectBoundedGrowth(growth);

        // Resumed, the slow reader gets all 64 MiB, bit-exact.
        streams[SLOW].sock.resume();
        const got = await timeout(streams[SLOW].done, 60_000, 'the resumed slow stream');
        expect(got).toMatchObject({ bytes: SLOW_BYTES, ended: true, hash: slow.hash });
      } finally {
        if (!growth) rss.stop('100 streams (failed)');
      }
    }, 300_000);
  });

  describe('bulk transfer', () => {
    it(`${BULK_BYTES} bytes download through the tunnel arrive intact (sha256)`, async () => {
      const rss = await watchRss();
      const t0 = Date.now();
      const got = await hashIncoming(connect(tunnelPort.bulk, '127.0.0.1'));
      const secs = (Date.now() - t0) / 1000;
      const growth = rss.stop('download');
      console.log(
        `download ${BULK_BYTES} bytes in ${secs.toFixed(1)} s = ${(BULK_BYTES / MiB / secs).toFixed(1)} MiB/s`,
      );
      const sentHash = await bulkSent[bulkSent.length - 1];
      expect(got).toEqual({ bytes: BULK_BYTES, hash: sentHash, ended: true });
      expectBoundedGrowth(growth);
    }, 600_000);

    it(`${UPLOAD_BYTES} bytes upload through the tunnel arrive intact (sha256), then the client half-closes`, async () => {
      const sock = connect(tunnelPort.sink, '127.0.0.1');
      sock.on('error', () => undefined);
      await new Promise((r) => sock.once('connect', r));
      const rss = await watchRss();
      const t0 = Date.now();
      const sentHash = await sendBulk(sock, UPLOAD_BYTES);
      sock.end();
      await until('the sink to see the connection', () => sinkReceived.length > 0, 10_000);
      const got = await timeout(sinkReceived[sinkReceived.length - 1], 60_000, 'sink result');
      const secs = (Date.now() - t0) / 1000;
      const growth = rss.stop('upload');
      console.log(
        `upload ${UPLOAD_BYTES} bytes in ${secs.toFixed(1)} s = ${(UPLOAD_BYTES / MiB / secs).toFixed(1)} MiB/s`,
      );
      expect(got).toEqual({ bytes: UPLOAD_BYTES, hash: sentHash, ended: true });
      expectBoundedGrowth(growth);
    }, 600_000);

    it('uploads of odd sizes that half-close right after their last write arrive complete (like `nc -N < file`)', async () => {
      // Sizes that are not multiples of the 64 KiB stream chunk: the last chunk may still wait for credit
      // when the client's FIN arrives, and it must not be dropped.
      const bad: string[] = [];
      for (let k = 0; k < 40; k++) {
        const size = MiB + 1 + k * 7919;
        const before = sinkReceived.length;
        const sock = connect(tunnelPort.sink, '127.0.0.1');
        sock.on('error', () => undefined);
        await new Promise((r) => sock.once('connect', r));
        const sentHash = await sendBulk(sock, size);
        sock.end();
        await until('the sink to see the connection', () => sinkReceived.length > before, 10_000);
        const got = await timeout(sinkReceived[before], 30_000, `upload ${k}`);
        if (got.bytes !== size || got.hash !== sentHash)
          bad.push(`${size} bytes sent, ${got.bytes} received${got.ended ? ' (clean FIN)' : ''}`);
      }
      expect(bad).toEqual([]);
    }, 300_000);
  });

  describe('engine session admission', () => {
    it('an engine configured with a wrong tenant public key connects to main but never gets a session; streams still use the good engine', async () => {
      const good = await agentId(d.agents.get('fe1')!.dir);
      expect(await engines()).toEqual([good]); // the list names engines by agent id: the check below is meaningful
      const dir = await installEngine('fwrongkey');
      const cfgPath = join(dir, 'agent.json');
      const cfg = JSON.parse(await readFile(cfgPath, 'utf8')) as { tenantPublicKey?: string };
      expect(cfg.tenantPublicKey).toBeTruthy();
      await writeFile(
        cfgPath,
        JSON.stringify({ ...cfg, tenantPublicKey: randomBytes(32).toString('base64') }, null, 2),
      );
      await d.startAgent('fwrongkey');
      const bad = await agentId(dir);
      // Its hello reaches the tenant, which cannot open it (sealed to another key) and says so.
      const refused = await until(
        'the tenant to refuse the engine',
        async () => {
          const l = await logLines(tenantLog(), { engineId: bad });
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
        async () => (await logLines(d.agentLog('fwrongkey'), { code: 'ERR_TUNNEL_HANDSHAKE_TIMEOUT' })).length > 0,
        30_000,
      );
      expect(await logLines(d.agentLog('fwrongkey'), { msg: 'tunnel session established' })).toEqual([]);
      await streamWorks(1000);
    }, 90_000);

    it("a copy of an engine's directory with its certificate but another box key is refused by the tenant", async () => {
      const dir = await installEngine('forig');
      await d.startAgent('forig');
      const id = await agentId(dir);
      await until('the original engine gets a session', async () => (await engines()).includes(id), 30_000);
      // Only one connection per agent identity: main would swap the two in turn, so the original goes first.
      await d.agents.get('forig')!.proc!.stop();
      await until('its session ends', async () => !(await engines()).includes(id), 30_000);

      const copy = join(d.dir, 'engine-forig-copy');
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
      const logFrom = (await readLog(tenantLog())).length;
      d.agents.set('forig-copy', { dir: copy });
      const p: Proc = await d.startAgent('forig-copy');
      expect(p.output).toMatch(/connected to/); // main accepted the certificate: only the box key is wrong

      const refused = await until(
        'the tenant to refuse the copy',
        async () => {
          const text = (await readLog(tenantLog())).slice(logFrom);
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
      expect(await logLines(d.agentLog('forig-copy'), { msg: 'tunnel session established' })).toEqual([]);

      // Control: the same certificate with the enrolled key gets its session back.
      await p.stop();
      await d.startAgent('forig');
      await until('the original engine gets its session again', async () => (await engines()).includes(id), 30_000);
      await streamWorks(1001);
      await streamWorks(1002); // with two sessions, streams alternate: both engines serve
    }, 90_000);
  });
}
