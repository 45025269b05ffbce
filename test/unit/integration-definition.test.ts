/**
 * Integration definitions (common/integration-definition.ts): a good body parses; each kind of malformed
 * body is refused with ERR_INTEGRATION_DEFINITION naming its field; read-only is checked against what a
 * command runs; the built-ins' command list agrees with the runners' tables; the args checker names the
 * field; the tenant's ExternalId is its own and not the data key's. No I/O.
 */
import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import {
  argsChecker,
  BUILT_IN_COMMANDS,
  parseIntegrationDefinition,
  type IntegrationDefinition,
} from '#common/integration-definition.js';
import { AWS_COMMANDS } from '../../agent/integrations/aws/commands.js';
import { deriveExternalId } from '../../agent/integrations/aws/external-id.js';
import { auditableArgs, tenantExternalId } from '../../agent/tenant/integration-runner.js';
import { connectionDataKey } from '../../agent/tenant/connection-sealing.js';

const GOOD: IntegrationDefinition = {
  name: 'ticketing',
  connectionType: 'http',
  commands: [
    {
      name: 'list-tickets',
      readOnly: true,
      args: { type: 'object', properties: { query: { type: 'object' } } },
      runs: 'request',
      with: { method: 'GET', path: '/tickets' },
    },
  ],
};

/** The error a body gets, as `field: message (code)`. */
function refusal(def: unknown): string {
  try {
    parseIntegrationDefinition(typeof def === 'string' ? def : JSON.stringify(def));
  } catch (e) {
    const err = e as { code: string; field?: string; message: string };
    return `${err.field}|${err.code}|${err.message}`;
  }
  return 'accepted';
}
const command = (over: Record<string, unknown>) => ({ ...GOOD, commands: [{ ...GOOD.commands[0], ...over }] });

describe('integration definitions', () => {
  it('parse when whole', () => {
    expect(parseIntegrationDefinition(JSON.stringify(GOOD))).toEqual(GOOD);
  });

  it('are refused naming the field at fault', () => {
    expect(refusal('name: x')).toMatch(
      /^body\|ERR_INTEGRATION_DEFINITION\|body: an integration definition is a JSON object/,
    );
    expect(refusal({ ...GOOD, connectionType: 'ftp' })).toMatch(/^connectionType\|/);
    expect(refusal({ ...GOOD, name: 'aws' })).toBe(
      'name|ERR_INTEGRATION_DEFINITION|name: "aws" is a built-in integration',
    );
    expect(refusal({ ...GOOD, commands: [] })).toMatch(/^commands\|/);
    expect(refusal({ ...GOOD, colour: 'red' })).toBe('colour|ERR_INTEGRATION_DEFINITION|colour: is not a known field');
    expect(refusal(command({ readOnly: undefined }))).toMatch(/^commands\[0\]\.readOnly\|.*is required$/);
    expect(refusal(command({ runs: 's3.list-buckets' }))).toMatch(
      /^commands\[0\]\.runs\|.*must be a command of the http integration: request$/,
    );
    expect(refusal(command({ args: { type: 'strnig' } }))).toMatch(/^commands\[0\]\.args\|/);
    expect(refusal(command({ args: { type: 'object', properties: { a: { minimun: 1 } } } }))).toMatch(
      /^commands\[0\]\.args\|.*is not a valid JSON Schema/,
    );
    expect(refusal({ ...GOOD, commands: [GOOD.commands[0], GOOD.commands[0]] })).toMatch(
      /^commands\[1\]\.name\|.*defined twice/,
    );
  });

  it('say read-only only where what they run only reads', () => {
    expect(refusal(command({ with: { method: 'POST', path: '/tickets' } }))).toMatch(/^commands\[0\]\.readOnly\|/);
    expect(refusal(command({ with: { method: 'POST' }, readOnly: false }))).toBe('accepted');
    const aws = { name: 'aws-ro', connectionType: 'aws', commands: [{ ...GOOD.commands[0], runs: 'iam.list-users' }] };
    expect(refusal(aws)).toBe('accepted');
  });

  it("list the built-ins' commands as the runners implement them", () => {
    expect(BUILT_IN_COMMANDS.aws).toEqual(
      Object.fromEntries([...AWS_COMMANDS.values()].map((c) => [c.name, { readOnly: c.readOnly }])),
    );
  });
});

describe('args', () => {
  const check = argsChecker({
    type: 'object',
    additionalProperties: false,
    properties: { maxBuckets: { type: 'integer', minimum: 1 }, filters: { type: 'array', items: { type: 'string' } } },
  });

  it('are refused naming the field', () => {
    const err = (a: unknown) => {
      try {
        check(a);
        return 'accepted';
      } catch (e) {
        return `${(e as { code: string }).code} ${(e as Error).message}`;
      }
    };
    expect(err({ maxBuckets: 5 })).toBe('accepted');
    expect(err({ maxBuckets: 0 })).toBe('ERR_INTEGRATION_ARGS args.maxBuckets: must be >= 1');
    expect(err({ filters: ['a', 2] })).toBe('ERR_INTEGRATION_ARGS args.filters[1]: must be string');
    expect(err({ colour: 1 })).toBe('ERR_INTEGRATION_ARGS args.colour: is not a known field');
  });

  it('are audited without header values, bodies or secret-named values', () => {
    expect(
      auditableArgs({ method: 'GET', headers: { 'x-api-key': 'k' }, body: { p: 1 }, clientSecret: 's', path: '/a' }),
    ).toEqual({
      method: 'GET',
      headers: ['x-api-key'],
      body: '(not recorded)',
      clientSecret: '(not recorded)',
      path: '/a',
    });
    expect(auditableArgs({ query: { api_key: 'k', token: 't', page: '2' } })).toEqual({
      query: { api_key: '(not recorded)', token: '(not recorded)', page: '2' },
    });
  });
});

describe("a tenant's ExternalId", () => {
  it('is stable for the tenant, differs between tenants, and is not made from the data key', () => {
    const a = nacl.box.keyPair().secretKey;
    const b = nacl.box.keyPair().secretKey;
    expect(tenantExternalId(a, 'acme')).toBe(tenantExternalId(a, 'acme'));
    expect(tenantExternalId(a, 'acme')).not.toBe(tenantExternalId(b, 'acme'));
    expect(tenantExternalId(a, 'acme')).toMatch(/^palisade-acme-[0-9a-f]{32}$/);
    expect(tenantExternalId(a, 'acme')).not.toBe(deriveExternalId(a, 'acme'));
    expect(tenantExternalId(a, 'acme')).not.toBe(deriveExternalId(connectionDataKey(a, 'acme'), 'acme'));
  });
});
