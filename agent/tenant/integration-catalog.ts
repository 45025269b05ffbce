/**
 * The integration definitions a tenant can make instances of: the built-ins `aws` and `http`, present on
 * every tenant without sharing and not editable (their commands are agent/integrations/'s tables), and the
 * definitions main shared to this tenant as content of type `integration`, found by the name in their body.
 * A shared body is checked again here (common/integration-definition.ts), so one that main's check did not
 * see (an older main) is never run. Tenants' own content items are not definitions:
 * only main publishes integrations. Not instances (integration-store.ts) nor running (integration-runner.ts).
 */
import { BadParameterError } from '#common/errors.js';
import {
  BUILT_IN_INTEGRATIONS,
  parseIntegrationDefinition,
  type IntegrationDefinition,
} from '#common/integration-definition.js';
import { AWS_COMMANDS } from '../integrations/aws/commands.js';
import { HTTP_REQUEST_ARGS } from '../integrations/http/run.js';
import type { ContentStore } from './content-store.js';

/** `request`'s args without method and body: `get` fixes the method, and a GET carries no body. */
const HTTP_GET_ARGS = (() => {
  const { method: _method, body: _body, ...properties } = HTTP_REQUEST_ARGS.properties as Record<string, unknown>;
  return { type: 'object', additionalProperties: false, required: ['path'], properties };
})();

const BUILT_INS: ReadonlyMap<string, IntegrationDefinition> = new Map([
  [
    'aws',
    {
      name: 'aws',
      description: 'AWS through the AWS SDK: keys, session token, instance role, AssumeRole with the ExternalId.',
      connectionType: 'aws',
      commands: [...AWS_COMMANDS.values()].map((c) => ({
        name: c.name,
        description: c.description,
        readOnly: c.readOnly,
        args: { ...c.args },
        runs: c.name,
      })),
    },
  ],
  [
    'http',
    {
      name: 'http',
      description: "A generic REST API at the connection's baseUrl, with its auth and TLS verification setting.",
      connectionType: 'http',
      commands: [
        {
          name: 'request',
          description: 'One HTTP request: {method, path, query?, headers?, body?}; answers {status, headers, body}.',
          readOnly: false,
          args: { ...HTTP_REQUEST_ARGS },
          runs: 'request',
        },
        {
          name: 'get',
          description: 'A GET: {path, query?, headers?}; answers {status, headers, body}. Read-only.',
          readOnly: true,
          args: HTTP_GET_ARGS,
          runs: 'request',
          with: { method: 'GET' },
        },
      ],
      // A source answering a JSON array, or {"items": [...]}, of {id, name?, severity?, details?}.
      fetch: { command: 'get', items: 'body' },
    },
  ],
]);

export interface ResolvedDefinition extends IntegrationDefinition {
  source: 'built-in' | 'shared';
  /** For a shared one: the content item and version it came from (a cache key for compiled schemas). */
  contentId?: string;
  version?: number;
}

export class IntegrationCatalog {
  constructor(private readonly content: ContentStore) {}

  /** The definition named `name`, or a 400 naming the field `integration`. */
  async resolve(name: string): Promise<ResolvedDefinition> {
    const builtIn = BUILT_INS.get(name);
    if (builtIn) return { ...builtIn, source: 'built-in' };
    for (const item of await this.content.list({ type: 'integration', shared: true })) {
      let def: IntegrationDefinition;
      try {
        def = parseIntegrationDefinition(item.body);
      } catch {
        continue; // not a definition this tenant can run; one malformed item must not hide the others
      }
      if (def.name === name) return { ...def, source: 'shared', contentId: item.id, version: item.version };
    }
    throw new BadParameterError(
      'ERR_INTEGRATION_UNKNOWN',
      `integration: no integration "${name}" here; the built-ins are ${BUILT_IN_INTEGRATIONS.join(', ')}, ` +
        'others must be published and shared by main as content of type integration',
      { field: 'integration' },
    );
  }
}

/** Refuses a connection of another type than the definition needs (at create, and at run: it may have changed). */
export function checkConnectionFits(c: { name: string; type: string }, def: IntegrationDefinition): void {
  if (c.type !== def.connectionType)
    throw new BadParameterError(
      'ERR_INTEGRATION_CONNECTION',
      `connection: ${c.name} is of type ${c.type}; ${def.name} needs an ${def.connectionType} connection`,
      { field: 'connection' },
    );
}
