/**
 * A tenant's event pipeline and API in this process, for integration tests of events: a real LevelDB in a temp
 * dir, the real tenant app (signature guard, roles, routes) answering requests signed by a test key as main signs
 * them, and helpers to make syslog batches. Reusable by the e2e of the engine → tenant path (records as E1's
 * engines send them). Not a fake of anything Palisade owns: only main's key is made here.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import nacl from 'tweetnacl';
import { AUTH_HEADER, SIGNATURE_HEADER, bodyHash, signRequest, type CallerIdentity } from '#common/signed-request.js';
import type { SyslogBatch, SyslogRecord } from '#common/syslog-record.js';
import { TenantStore } from '../../agent/tenant/store.js';
import { buildTenantApp } from '../../agent/tenant/tenant-app.js';
import { createEventPipeline, type EventPipeline } from '../../agent/tenant/events/event-pipeline.js';

export const STAFF_ADMIN: CallerIdentity = { id: 'usr_admin', name: 'admin', roles: ['admin'] };

export interface EventTenant {
  name: string;
  dir: string;
  store: TenantStore;
  events: EventPipeline;
  app: FastifyInstance;
  /** A request signed for this tenant as `caller` (staff admin unless given); JSON in and out. */
  call<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    caller?: CallerIdentity,
    /** The tenant main's claim names (this one unless given): another tenant's claim must be refused. */
    claimTenant?: string,
  ): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

/** Opens (or re-opens, given `dir`) a tenant's store, pipeline and app. */
export async function openEventTenant(name: string, dir?: string, mainKey?: KeyObject): Promise<EventTenant> {
  const where = dir ?? (await mkdtemp(join(tmpdir(), 'events-')));
  const key = mainKey ?? generateKeyPairSync('ed25519').privateKey;
  const pub = Buffer.from(key.export({ format: 'jwk' }).x!, 'base64url').toString('base64');
  const store = new TenantStore(join(where, 'store'));
  await store.open();
  const log = pino({ level: 'silent' });
  const events = createEventPipeline({ db: store.db, log });
  const kp = nacl.box.keyPair();
  const cfg = { name, port: 0, mainPublicKey: pub, publicKey: '', createdAt: new Date().toISOString() };
  const app = await buildTenantApp(
    cfg,
    store,
    log,
    { publicKey: kp.publicKey, secretKey: kp.secretKey },
    undefined,
    events,
  );
  return {
    name,
    dir: where,
    store,
    events,
    app,
    async call<T>(method: string, path: string, body?: unknown, caller = STAFF_ADMIN, claimTenant = name) {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const s = signRequest(key, { tenant: claimTenant, method, path, bodySha256: bodyHash(payload), user: caller });
      const r = await app.inject({
        method: method as 'GET',
        url: path,
        headers: {
          [AUTH_HEADER]: s.auth,
          [SIGNATURE_HEADER]: s.signature,
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(payload !== undefined ? { payload } : {}),
      });
      return { status: r.statusCode, body: (r.body ? JSON.parse(r.body) : undefined) as T };
    },
    async close() {
      await app.close();
      await store.close();
    },
  };
}

/** One record as an engine forwards it. */
export function record(raw: string, o: Partial<SyslogRecord> = {}): SyslogRecord {
  return { receivedAt: Date.now(), sender: '192.0.2.10', transport: 'udp', raw, ...o };
}

export function batch(engine: string, seq: number, records: SyslogRecord[]): SyslogBatch {
  return { engine, seq, records };
}
