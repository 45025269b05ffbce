/**
 * An enrolled engine driven by hand through main's relay, for flood tests: it speaks as a real engine whose
 * identity (certificate for main, box key, its tenant's public key) it read from the engine's directory,
 * and can do everything a real engine could — say Hello, open a sealed session with its tenant, send
 * sealed or junk records as fast as the socket takes them, stop reading. Main cannot tell it from a real
 * engine gone bad. Not rogue-engine.ts, which dials a host's direct port with a stolen key after revocation.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { AgentKind, decodeEnvelope, encodeEnvelope, type Envelope } from '#common/codec.js';
import { engineHandshake, type SessionKeys } from '../../agent/tunnel/tunnel-crypto.js';
import {
  engineHelloRecord,
  parseTenantHello,
  RECORD_HANDSHAKE,
  RECORD_SEALED,
} from '../../agent/tunnel/tunnel-records.js';
import type { Deployment } from './deployment.js';
import { until } from './processes.js';
import { identityOf, rawConnect, type RawConn } from './raw-agent.js';

const MiB = 1024 * 1024;
/** What the flood keeps in this process's socket buffer at most: enough to saturate main, not the test's memory. */
const FLOOD_BUFFER_BYTES = 8 * MiB;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tick = () => new Promise((r) => setImmediate(r));

export class HostileEngine {
  keys?: SessionKeys;
  /** The tenant's sealed records opened so far, and how many frames that took. */
  private readonly plain: Envelope[] = [];
  private seen = 0;
  private readonly tenantKey: Uint8Array;
  private readonly box: { publicKey: Uint8Array; secretKey: Uint8Array };

  private constructor(
    readonly name: string,
    /** The tenant its records go to unless a send names another. */
    readonly tenant: string,
    readonly conn: RawConn,
    dir: string,
  ) {
    const cfg = JSON.parse(readFileSync(join(dir, 'agent.json'), 'utf8')) as { tenantPublicKey: string };
    const box = JSON.parse(readFileSync(join(dir, 'pki', 'tunnel-key.json'), 'utf8')) as {
      publicKey: string;
      secretKey: string;
    };
    this.tenantKey = Buffer.from(cfg.tenantPublicKey, 'base64');
    this.box = { publicKey: Buffer.from(box.publicKey, 'base64'), secretKey: Buffer.from(box.secretKey, 'base64') };
  }

  /** Connects to `d`'s main with the identity of engine `name` (of `tenant`) and says Hello as that engine. */
  static async connect(d: Deployment, name: string, tenant: string): Promise<HostileEngine> {
    const dir = d.agents.get(name)!.dir;
    const conn = rawConnect(d.url, identityOf(dir));
    if (!(await conn.opened)) throw new Error(`${name} could not connect (HTTP ${conn.refused ?? 'none'})`);
    conn.ws.send(
      encodeEnvelope({
        id: 1,
        hello: { protocolMajor: 1, protocolMinor: 2, agentVersion: 'test', kind: AgentKind.AGENT_KIND_ENGINE, name },
      }),
    );
    await until(`${name}: Welcome`, () => conn.frames.some((f) => f.welcome), 10_000);
    return new HostileEngine(name, tenant, conn, dir);
  }

  get ws(): WebSocket {
    return this.conn.ws;
  }
  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(record: Uint8Array, tenant = this.tenant): void {
    this.ws.send(encodeEnvelope({ tenant, tunnel: { record } }));
  }

  /** A real handshake with its tenant through main: the relayed session opens, as for a real engine. */
  async handshake(): Promise<void> {
    const hs = engineHandshake(this.box, this.tenantKey);
    const from = this.conn.frames.length;
    this.send(engineHelloRecord(hs.hello));
    const reply = await until(
      `${this.name}: the tenant's answer`,
      () => this.conn.frames.slice(from).find((f) => f.tunnel?.record?.[0] === RECORD_HANDSHAKE),
      15_000,
    );
    this.keys = hs.finish(parseTenantHello(reply.tunnel!.record!));
  }

  /** A record sealed with the session's keys: the tenant opens it and takes it. */
  sealed(plain: Uint8Array): Buffer {
    return this.keys!.send.seal(plain, Uint8Array.of(RECORD_SEALED));
  }

  /** The tenant's sealed records received so far, opened once each and in order (their nonces count). */
  opened(): Envelope[] {
    for (; this.seen < this.conn.frames.length; this.seen++) {
      const rec = this.conn.frames[this.seen].tunnel?.record;
      if (rec?.[0] === RECORD_SEALED) this.plain.push(decodeEnvelope(this.keys!.receive.open(rec.subarray(1))));
    }
    return this.plain;
  }

  /**
   * Sends the records `next` makes (to its tenant, or the one named) as fast as the socket takes them,
   * keeping ≤ 8 MiB in this process, until `maxBytes` or `maxMs`, or main closes the connection. Returns
   * the bytes sent.
   */
  async flood(next: () => { record: Uint8Array; tenant?: string }, maxBytes: number, maxMs: number): Promise<number> {
    const t0 = Date.now();
    let sent = 0;
    for (let i = 1; sent < maxBytes && Date.now() - t0 < maxMs && this.open; i++) {
      if (this.ws.bufferedAmount > FLOOD_BUFFER_BYTES) {
        await sleep(2);
        continue;
      }
      const { record, tenant } = next();
      this.send(record, tenant);
      sent += record.length;
      if (i % 16 === 0) await tick(); // let the samplers and the bystander run
    }
    return sent;
  }

  /**
   * Asks main for a fresh direct-path statement for its tenant, nonstop (keeping ≤ 1 MiB in this process),
   * until `maxMs`, main closes the connection, or `cutOff()` (asked every 4096 requests) says it happened.
   * Whether it reads main's answers meanwhile is the caller's choice (`ws.pause()`). Returns the requests sent.
   */
  async floodRenewals(maxMs: number, cutOff: () => Promise<boolean>): Promise<number> {
    const renew = encodeEnvelope({ tenant: this.tenant, tunnel: { directRenew: true } });
    const t0 = Date.now();
    let sent = 0;
    while (Date.now() - t0 < maxMs && this.open) {
      if (this.ws.bufferedAmount > MiB) {
        await sleep(2);
        continue;
      }
      this.ws.send(renew);
      if (++sent % 4096 === 0 && (await cutOff())) break;
      if (sent % 256 === 0) await tick();
    }
    return sent;
  }

  error(): Envelope['error'] | undefined {
    return this.conn.frames.find((f) => f.error)?.error ?? undefined;
  }
}
