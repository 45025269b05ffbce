/**
 * A tenant's integration instances, kept in its own LevelDB: each names the integration it is an instance of
 * (built-in `aws` or `http`, or a shared definition), the connection whose credentials it uses, and where
 * it runs. Only references: the credentials stay in the connection (connection-store.ts) and the commands
 * in the definition (integration-catalog.ts), so changing either changes every instance using it.
 * Not the checks that the references resolve (integration-routes.ts) nor running (integration-runner.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';
import { ConflictError, NotFoundError } from '#common/errors.js';

export interface IntegrationInstance {
  name: string;
  integration: string;
  connection: string;
  /** `tenant`, `engine:E` or `group:G`: where its commands (and fetches) run (integration-runner.ts). */
  runOn: string;
  /**
   * Random, set at create: what a fetching instance's de-duplication records are keyed by (incident-fetch.ts),
   * so a removed instance re-created under its name starts afresh, and a fetch that outlived its instance's
   * removal writes nothing. Absent only on instances created before it existed (their records go by name).
   */
  generation?: string;
  /** Pulls new items of its source into incidents every fetchInterval (incident-fetch.ts). */
  fetchIncidents?: boolean;
  /** A duration from 30s to 24h (fetch-scheduler.ts); set when fetchIncidents is. */
  fetchInterval?: string;
  /** The args of the definition's fetch command (for http's `get`: the path to the items). */
  fetchArgs?: Record<string, unknown>;
  createdAt: string;
  createdBy: string;
}
type Sub<V> = AbstractSublevel<Level<string, unknown>, string | Buffer | Uint8Array, string, V>;

export class IntegrationStore {
  private readonly instances: Sub<IntegrationInstance>;
  /** One change at a time: create checks the name is free, then writes. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(db: Level<string, unknown>) {
    this.instances = db.sublevel<string, IntegrationInstance>('integrations', {
      valueEncoding: 'json',
    }) as unknown as Sub<IntegrationInstance>;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  async list(): Promise<IntegrationInstance[]> {
    return this.instances.values().all();
  }

  async get(name: string): Promise<IntegrationInstance> {
    const i = await this.instances.get(name);
    if (!i)
      throw new NotFoundError('ERR_INTEGRATION_NOT_FOUND', `no integration instance "${name}" in this tenant`, {
        field: 'name',
      });
    return i;
  }

  /** The instance, or undefined when there is none of that name. */
  async find(name: string): Promise<IntegrationInstance | undefined> {
    return this.instances.get(name);
  }

  create(
    i: Omit<IntegrationInstance, 'createdAt' | 'createdBy' | 'generation'>,
    by: string,
  ): Promise<IntegrationInstance> {
    return this.serial(async () => {
      if (await this.instances.get(i.name))
        throw new ConflictError('ERR_INTEGRATION_EXISTS', `name: an integration instance named "${i.name}" exists`, {
          field: 'name',
        });
      const stored: IntegrationInstance = {
        ...i,
        generation: randomBytes(8).toString('hex'),
        createdAt: new Date().toISOString(),
        createdBy: by,
      };
      await this.instances.put(i.name, stored);
      return stored;
    });
  }

  /** Deletes the instance and answers it as it was (its generation names the fetch records to purge). */
  remove(name: string): Promise<IntegrationInstance> {
    return this.serial(async () => {
      const gone = await this.get(name);
      await this.instances.del(name);
      return gone;
    });
  }
}
