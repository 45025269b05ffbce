/**
 * Connections main shared with this tenant (content items of type `connection`, common/connection-content.ts), kept
 * beside the tenant's own (connection-store.ts) in a sublevel of their own, keyed by main's content id. On arrival the
 * sealed copy main relayed (sealed by the admin's CLI to this tenant's public key) is opened once and re-sealed at
 * rest with the tenant's data key (connection-sealing.ts), as a local connection's secret is; the content item the
 * tenant lists keeps only `{type, fields, scope, hasSecret}`, so no reader of content sees even the ciphertext.
 * Not which one a run uses: connection-resolve.ts.
 */
import type { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';
import {
  parseConnectionBody,
  sealedName,
  type ConnectionContentBody,
  type ConnectionScope,
} from '#common/connection-content.js';
import { BadParameterError } from '#common/errors.js';
import type { SharedContentPush } from '#common/content.js';
import { checkSecret, type ConnectionSettings, type ConnectionType } from '#common/connections.js';
import { openSealedSecret } from '#common/sealed-secret.js';
import { connectionDataKey, openAtRest, sealAtRest } from './connection-sealing.js';

export interface SharedConnection {
  contentId: string;
  name: string;
  version: number;
  type: ConnectionType;
  settings: ConnectionSettings;
  scope: ConnectionScope;
  /** The tenant's region when main pushed it (region-scoped items apply only while it is theirs). */
  region: string | null;
  /** connection-sealing.ts's form, under the name `atRestName(contentId)`; absent: no secret. */
  sealedSecret?: string;
}
type Sub<V> = AbstractSublevel<Level<string, unknown>, string | Buffer | Uint8Array, string, V>;

/** The at-rest AAD name of a shared item's secret: its id, so it never opens as another item's or a local one's. */
const atRestName = (contentId: string) => `shared:${contentId}`;

export class SharedConnections {
  private readonly items: Sub<SharedConnection>;
  private readonly key: Buffer;
  /**
   * Every item as last read, until the next change here (the only writer of the sublevel): a call's resolution reads
   * them on every call, and they are few. Dropped after each write, so a read begun before one is never kept.
   */
  private all?: Promise<SharedConnection[]>;

  constructor(
    db: Level<string, unknown>,
    private readonly tenant: string,
    private readonly tenantSecretKey: Uint8Array,
  ) {
    this.items = db.sublevel<string, SharedConnection>('shared-connections', {
      valueEncoding: 'json',
    }) as unknown as Sub<SharedConnection>;
    this.key = connectionDataKey(tenantSecretKey, tenant);
  }

  /**
   * Main's push of a connection item: checked, its secret opened and re-sealed at rest; answers the body the content
   * item keeps (no secret in any form). A copy that does not open for this tenant is refused (400) and nothing kept.
   */
  async accept(contentId: string, p: SharedContentPush): Promise<string> {
    const b = parseConnectionBody(p.body);
    const copy = b.sealed && Object.hasOwn(b.sealed, this.tenant) ? b.sealed[this.tenant] : undefined;
    const secret = copy === undefined ? undefined : checkSecret(this.open(copy, contentId, p.name, b));
    const stored: SharedConnection = {
      contentId,
      name: p.name,
      version: p.version,
      type: b.type,
      settings: b.fields,
      scope: b.scope,
      region: p.region ?? null,
      ...(secret !== undefined
        ? { sealedSecret: sealAtRest(this.key, this.tenant, atRestName(contentId), secret) }
        : {}),
    };
    try {
      await this.items.put(contentId, stored);
    } finally {
      this.all = undefined;
    }
    return JSON.stringify({ type: b.type, fields: b.fields, scope: b.scope, hasSecret: secret !== undefined });
  }

  /**
   * The copy opened under the name it must be sealed for, which binds the type and destination settings of this very
   * body: a copy kept in a version that sends it elsewhere is refused, and the item fails with how to re-seal.
   */
  private open(copy: string, contentId: string, name: string, b: ConnectionContentBody): string {
    try {
      return openSealedSecret(copy, this.tenantSecretKey, this.tenant, sealedName(name, b.type, b.fields));
    } catch {
      throw new BadParameterError(
        'ERR_CONNECTION_SEALED',
        `sealed: not sealed for this tenant with these connection settings (sealed for other connection settings?); ` +
          `re-seal with 'palisade connections author ${name} --update ${contentId} --secret-stdin'`,
        { field: 'sealed' },
      );
    }
  }

  async remove(contentId: string): Promise<void> {
    try {
      await this.items.del(contentId);
    } finally {
      this.all = undefined;
    }
  }

  /** The shared connections of that name, whatever their scope. */
  async named(name: string): Promise<SharedConnection[]> {
    const all = (this.all ??= this.items.values().all());
    all.catch(() => this.all === all && (this.all = undefined));
    return (await all).filter((c) => c.name === name);
  }

  /** Its secret opened, for one call. */
  secretOf(c: SharedConnection): string | undefined {
    return c.sealedSecret === undefined
      ? undefined
      : openAtRest(this.key, this.tenant, atRestName(c.contentId), c.sealedSecret);
  }
}
