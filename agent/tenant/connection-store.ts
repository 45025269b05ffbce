/**
 * A tenant's connections (credentials and settings for outside services, common/connections.ts), kept in its
 * own LevelDB. The secret rests sealed with the tenant's data key (connection-sealing.ts) and no view holds it:
 * each says `hasSecret` instead; only `openForCall` opens it, in memory, for an integration's call.
 * Not the checks of a setting's form (common/connections.ts) nor the HTTP edge (connection-routes.ts).
 */
import type { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';
import { BadParameterError, ConflictError, NotFoundError } from '#common/errors.js';
import {
  canonicalName,
  canonicalSettings,
  checkConnection,
  checkSettingName,
  withDesignNames,
  SECRET_DESTINATION,
  type ConnectionSettings,
  type ConnectionType,
  type ConnectionView,
} from '#common/connections.js';
import { connectionDataKey, openAtRest, sealAtRest } from './connection-sealing.js';

interface StoredConnection extends Omit<ConnectionView, 'hasSecret'> {
  /** connection-sealing.ts's form; absent: no secret. */
  sealedSecret?: string;
}
type Sub<V> = AbstractSublevel<Level<string, unknown>, string | Buffer | Uint8Array, string, V>;

/** A change to a connection's secret: a new one, removed, or (undefined) as it was. */
export type SecretChange = { set: string } | { clear: true } | undefined;

/** Connections kept as read for calls (forCall); a tenant has a handful. */
const MAX_KEPT = 256;

export class ConnectionStore {
  private readonly connections: Sub<StoredConnection>;
  private readonly key: Buffer;
  /**
   * Connections as read for calls (each run's integration task reads its connection), secrets still sealed, kept until
   * the next change here; a name not there is asked of the store again. Past MAX_KEPT, all are forgotten.
   */
  private readonly forCalls = new Map<string, Promise<StoredConnection | undefined>>();
  /** One change at a time: an update reads, checks and writes the whole record. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    db: Level<string, unknown>,
    private readonly tenant: string,
    tenantSecretKey: Uint8Array,
  ) {
    this.connections = db.sublevel<string, StoredConnection>('connections', {
      valueEncoding: 'json',
    }) as unknown as Sub<StoredConnection>;
    this.key = connectionDataKey(tenantSecretKey, tenant);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    // Any change forgets every connection read for calls (this store is the sublevel's one writer): changes are rare.
    const run = this.chain.then(fn, fn).finally(() => this.forCalls.clear());
    this.chain = run.catch(() => undefined);
    return run;
  }

  private view(c: StoredConnection): ConnectionView {
    const { sealedSecret, ...rest } = c;
    return { ...rest, settings: withDesignNames(c.type, c.settings), hasSecret: sealedSecret !== undefined };
  }

  private async find(name: string): Promise<StoredConnection> {
    const c = await this.connections.get(name);
    if (!c)
      throw new NotFoundError('ERR_CONNECTION_NOT_FOUND', `no connection "${name}" in this tenant`, { field: 'name' });
    return c;
  }

  async list(): Promise<ConnectionView[]> {
    const out: ConnectionView[] = [];
    for await (const c of this.connections.values()) out.push(this.view(c));
    return out;
  }

  async get(name: string): Promise<ConnectionView> {
    return this.view(await this.find(name));
  }

  create(
    c: { name: string; type: ConnectionType; settings: Record<string, unknown>; secret?: string },
    by: string,
  ): Promise<ConnectionView> {
    return this.serial(async () => {
      if (await this.connections.get(c.name))
        throw new ConflictError('ERR_CONNECTION_EXISTS', `name: a connection named "${c.name}" exists`, {
          field: 'name',
        });
      const settings = checkConnection(c.type, c.settings, c.secret !== undefined);
      const now = new Date().toISOString();
      const stored: StoredConnection = {
        name: c.name,
        type: c.type,
        settings,
        createdAt: now,
        createdBy: by,
        updatedAt: now,
        updatedBy: by,
        ...(c.secret !== undefined ? { sealedSecret: sealAtRest(this.key, this.tenant, c.name, c.secret) } : {}),
      };
      await this.connections.put(c.name, stored);
      return this.view(stored);
    });
  }

  /** Sets and unsets settings and changes the secret, checked as a whole: a refused change changes nothing. */
  update(
    name: string,
    change: { settings?: Record<string, unknown>; unset?: string[]; secret?: SecretChange },
    by: string,
  ): Promise<ConnectionView> {
    return this.serial(async () => {
      const cur = await this.find(name);
      for (const k of change.unset ?? []) checkSettingName(cur.type, k);
      // Either name of a setting (DESIGN.md's or ours) is taken, and merged under ours.
      const merged: Record<string, unknown> = {
        ...cur.settings,
        ...canonicalSettings(cur.type, change.settings ?? {}, cur.settings),
      };
      for (const k of change.unset ?? []) delete merged[canonicalName(cur.type, k)];
      const s = change.secret;
      // A kept secret must not follow its connection somewhere else: whoever may change settings must not be able
      // to send a credential someone else put there to a server of their own choosing.
      const moved = SECRET_DESTINATION[cur.type].filter(
        (k) => JSON.stringify(merged[k]) !== JSON.stringify(cur.settings[k]),
      );
      if (s === undefined && cur.sealedSecret !== undefined && moved.length)
        throw new BadParameterError(
          'ERR_CONNECTION_SECRET',
          `changing ${moved.join(', ')} changes where the secret goes: give the secret again (--secret-file, ` +
            '--secret-stdin) or clear it (--clear-secret) in the same update',
          { field: 'secret' },
        );
      const hasSecret = s === undefined ? cur.sealedSecret !== undefined : 'set' in s;
      const settings: ConnectionSettings = checkConnection(cur.type, merged, hasSecret);
      const { sealedSecret: kept, ...rest } = cur;
      const sealedSecret =
        s === undefined ? kept : 'set' in s ? sealAtRest(this.key, this.tenant, name, s.set) : undefined;
      const next: StoredConnection = {
        ...rest,
        settings,
        updatedAt: new Date().toISOString(),
        updatedBy: by,
        ...(sealedSecret !== undefined ? { sealedSecret } : {}),
      };
      await this.connections.put(name, next);
      return this.view(next);
    });
  }

  /** The connection with its secret opened, for one integration call; the caller drops it when the call ends. */
  async openForCall(name: string): Promise<ConnectionView & { secret?: string }> {
    return this.opened(name, await this.find(name));
  }

  /**
   * Connection `name` as one read finds it, undefined if there is none, with `open` to open its secret then (for
   * one call), without reading it again: what a call's resolution reads (connection-resolve.ts).
   */
  async forCall(name: string): Promise<{ open(): ConnectionView & { secret?: string } } | undefined> {
    let read = this.forCalls.get(name);
    if (!read) {
      if (this.forCalls.size >= MAX_KEPT) this.forCalls.clear();
      const p = this.connections.get(name);
      this.forCalls.set(name, p);
      p.then(
        (c) => c === undefined && this.forCalls.get(name) === p && this.forCalls.delete(name),
        () => this.forCalls.get(name) === p && this.forCalls.delete(name),
      );
      read = p;
    }
    const c = await read;
    return c && { open: () => this.opened(name, c) };
  }

  /** Its secret opened; a copy of the settings, so what a call does with them never reaches a kept record. */
  private opened(name: string, c: StoredConnection): ConnectionView & { secret?: string } {
    const secret = c.sealedSecret === undefined ? undefined : openAtRest(this.key, this.tenant, name, c.sealedSecret);
    return { ...this.view(c), settings: { ...c.settings }, ...(secret !== undefined ? { secret } : {}) };
  }

  remove(name: string): Promise<{ name: string; deleted: true }> {
    return this.serial(async () => {
      await this.find(name);
      await this.connections.del(name);
      return { name, deleted: true as const };
    });
  }
}
