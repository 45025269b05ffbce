/**
 * Which version each tenant should hold of a shared item (main/content/share-targets.ts): by the share's labels, or by
 * name (the list:share and playbook:publish write commands), not a later tenant of the same name.
 */
import { describe, expect, it } from 'vitest';
import { ShareTargets } from '../../main/content/share-targets.js';
import type { ContentItemRecord, TenantRecord } from '../../main/registry.js';

const tenant = (name: string, labels: string[], createdAt = '2026-01-01T00:00:00.000Z'): TenantRecord => ({
  name,
  hostId: 'h',
  hostName: 'h',
  port: 18501,
  labels,
  publicKey: '',
  status: 'running',
  createdAt,
  createdBy: 'usr_1',
});
const item = (sharing: ContentItemRecord['sharing']): ContentItemRecord => ({
  id: 'cnt_1',
  type: 'list',
  name: 'blocked',
  labels: ['emea'],
  latest: 2,
  published: 2,
  sharing,
  createdAt: '',
  createdBy: '',
  updatedAt: '',
});

describe('share targets', () => {
  it('give a tenant named by the share its version, besides those the labels match', () => {
    const i = item({
      version: 2,
      at: '',
      by: '',
      labels: ['emea'],
      tenants: [{ name: 'acme', createdAt: '2026-01-01T00:00:00.000Z' }],
    });
    expect(ShareTargets.own(i, tenant('acme', ['apac']))).toBe(2);
    expect(ShareTargets.own(i, tenant('globex', ['emea']))).toBe(2);
    expect(ShareTargets.own(i, tenant('initech', ['apac']))).toBeNull();
  });

  it('do not give it to a later tenant of the same name, nor to anyone once unshared', () => {
    const named = [{ name: 'acme', createdAt: '2026-01-01T00:00:00.000Z' }];
    const i = item({ version: 2, at: '', by: '', labels: [], tenants: named });
    expect(ShareTargets.own(i, tenant('acme', ['emea'], '2026-06-01T00:00:00.000Z'))).toBeNull();
    expect(ShareTargets.own(item(null), tenant('acme', ['emea']))).toBeNull();
  });
});
