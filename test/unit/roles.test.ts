/** Role bodies and names (common/roles.ts) and how main resolves custom roles (principalFor): no I/O. */
import { describe, expect, it } from 'vitest';
import {
  CUSTOMER_CEILING,
  CUSTOM_MAIN_PERMISSIONS,
  checkRoleName,
  parseRoleBody,
  tenantPermissionsOf,
} from '#common/roles.js';
import { principalFor, type Permission } from '../../main/access/api-keys.js';
import type { UserRecord } from '../../main/registry.js';

const fieldOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return (e as { field?: string }).field;
  }
  return undefined;
};

describe('role bodies', () => {
  it('accept tenant and custom main permissions, de-duplicated', () => {
    expect(
      parseRoleBody(
        '{"permissions":["incidents:read","incidents:read"],"mainPermissions":["tenants:relay"],"description":"d"}',
      ),
    ).toEqual({ permissions: ['incidents:read'], mainPermissions: ['tenants:relay'], description: 'd' });
    expect(parseRoleBody('{"permissions":[]}')).toEqual({ permissions: [], mainPermissions: [] });
  });

  it.each([
    ['not json', 'body'],
    ['[]', 'body'],
    ['null', 'body'],
    ['{}', 'body.permissions'],
    ['{"permissions":["incidents:read","x"]}', 'body.permissions'],
    ['{"permissions":[1]}', 'body.permissions'],
    ['{"permissions":[],"mainPermissions":["users:write"]}', 'body.mainPermissions'],
    ['{"permissions":[],"mainPermissions":["roles:write"]}', 'body.mainPermissions'],
    ['{"permissions":[],"extra":true}', 'body.extra'],
    ['{"permissions":[],"description":5}', 'body.description'],
  ])('refuse %s naming %s', (text, field) => {
    expect(fieldOf(() => parseRoleBody(text))).toBe(field);
  });

  it('names: the pattern, and never a built-in', () => {
    for (const bad of ['Tier1', '1tier', 'a b', 'x'.repeat(33), 'admin', 'read-only', 'viewer'])
      expect(
        fieldOf(() => checkRoleName(bad)),
        bad,
      ).toBe('name');
    expect(() => checkRoleName('tier-1')).not.toThrow();
  });

  it('a tenant reads a pushed body leniently: unknown names grant nothing, bad JSON grants nothing', () => {
    expect(tenantPermissionsOf('{"permissions":["incidents:read","future:thing"]}')).toEqual(['incidents:read']);
    expect(tenantPermissionsOf('nope')).toEqual([]);
  });

  it('the customer ceiling leaves tunnels, engine commands and the audit log to staff', () => {
    for (const p of ['tunnels:write', 'engines:run', 'audit:read'] as const)
      expect(CUSTOMER_CEILING.has(p)).toBe(false);
  });
});

describe('custom roles on main', () => {
  const user = (roles: string[], extra: Partial<UserRecord> = {}): UserRecord => ({
    id: 'usr_1',
    name: 'u',
    roles,
    createdAt: '',
    ...extra,
  });
  const lookup = (table: Record<string, Permission[]>) => (n: string) => table[n];

  it('grant their main permissions, never users:write, roles:write or commands:write even if a stored body says so', () => {
    const stored: Permission[] = ['tenants:relay', 'users:write', 'roles:write', 'commands:write'];
    const p = principalFor(user(['tier1']), 'k', lookup({ tier1: stored }));
    expect([...p.permissions].sort()).toEqual(['tenants:relay']);
    expect(CUSTOM_MAIN_PERMISSIONS).not.toContain('users:write');
    expect(CUSTOM_MAIN_PERMISSIONS).not.toContain('commands:write');
  });

  it('give commands:write to built-in admin only, and never to staff limited to some tenants', () => {
    expect(principalFor(user(['admin']), 'k').permissions.has('commands:write')).toBe(true);
    expect(principalFor(user(['analyst']), 'k').permissions.has('commands:write')).toBe(false);
    expect(principalFor({ ...user(['admin']), tenants: ['acme'] }, 'k').permissions.has('commands:write')).toBe(false);
  });

  it('cannot redefine a built-in name, and give a customer user nothing on main but its relay and search', () => {
    expect(principalFor(user(['viewer']), 'k', lookup({ viewer: ['audit:read'] })).permissions.has('audit:read')).toBe(
      false,
    );
    expect([
      ...principalFor(user(['tier1'], { tenant: 'ea' }), 'k', lookup({ tier1: ['audit:read'] })).permissions,
    ]).toEqual(['tenants:relay', 'search:read']);
  });

  it('staff limited to some tenants keep only the scoped part', () => {
    const p = principalFor(
      user(['tier1'], { tenants: ['ea'] }),
      'k',
      lookup({ tier1: ['tenants:relay', 'audit:read'] }),
    );
    expect([...p.permissions]).toEqual(['tenants:relay']);
  });
});
