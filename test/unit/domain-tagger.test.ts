/**
 * Domain tagging in QRadar's order (agent/tenant/events/domain-tagger.ts), as a pure function: every rule kind, the
 * precedence between them, and CEP fall-through exactly: an unmatched value of a mapped property sends the event to
 * the Default Domain when off and on to the later rules when on; no value at all always goes on.
 */
import { describe, expect, it } from 'vitest';
import { buildTagTables, tagDomain, type TagInput } from '../../agent/tenant/events/domain-tagger.js';
import type { DomainMapping } from '../../agent/tenant/events/event-config.js';

const MAPPINGS: DomainMapping[] = [
  { kind: 'property', key: 'customer', value: 'acme', domain: 'acme' },
  { kind: 'property', key: 'site', value: 'lyon', domain: 'lyon' },
  { kind: 'vlan', key: '12', domain: 'vlan12' },
  { kind: 'flow-source', key: 'probe1', domain: 'probes' },
  { kind: 'log-source', key: 'fw1@eng-a', domain: 'fw1' },
  { kind: 'log-source-group', key: 'branch', domain: 'branch' },
  { kind: 'log-source-group', key: 'zz-other', domain: 'other' },
  { kind: 'event-collector', key: 'eng-a', domain: 'collector-a' },
];
const off = buildTagTables(MAPPINGS, false);
const on = buildTagTables(MAPPINGS, true);
const ev = (o: Partial<TagInput>): TagInput => ({ logSource: 'fw9@eng-z', groups: [], engine: 'eng-z', ...o });

describe('domain tagging', () => {
  it('takes the first rule in QRadar order that matches', () => {
    const fw1 = { logSource: 'fw1@eng-a', engine: 'eng-a', groups: ['branch'] };
    expect(tagDomain(ev({ ...fw1, properties: { customer: 'acme' }, vlan: 12 }), off)).toEqual({
      domain: 'acme',
      rule: 'property:customer=acme',
    });
    expect(tagDomain(ev({ ...fw1, vlan: 12 }), off).rule).toBe('vlan:12');
    expect(tagDomain(ev({ ...fw1, vlan: 13, flowSource: 'probe1' }), off).rule).toBe('flow-source:probe1');
    expect(tagDomain(ev(fw1), off).rule).toBe('log-source:fw1@eng-a');
    expect(tagDomain(ev({ ...fw1, logSource: 'fw2@eng-a' }), off).rule).toBe('log-source-group:branch');
    expect(tagDomain(ev({ logSource: 'fw2@eng-a', engine: 'eng-a', groups: ['zz-other'] }), off).domain).toBe('other');
    expect(tagDomain(ev({ logSource: 'fw2@eng-a', engine: 'eng-a' }), off).rule).toBe('event-collector:eng-a');
    expect(tagDomain(ev({}), off)).toEqual({ domain: 'Default Domain', rule: 'default' });
  });

  it('CEP fall-through: an unmatched value stops at the Default Domain when off, falls through when on', () => {
    const fw1 = { logSource: 'fw1@eng-a', engine: 'eng-a', properties: { customer: 'globex' } };
    expect(tagDomain(ev(fw1), off)).toEqual({ domain: 'Default Domain', rule: 'property-unmatched:customer' });
    expect(tagDomain(ev(fw1), on)).toEqual({ domain: 'fw1', rule: 'log-source:fw1@eng-a' });
    // Another mapped property that matches still decides, whichever comes first by name.
    const both = { ...fw1, properties: { customer: 'globex', site: 'lyon' } };
    expect(tagDomain(ev(both), off)).toEqual({ domain: 'lyon', rule: 'property:site=lyon' });
    // No value for any mapped property (an unmapped one does not count): the later rules decide, either way.
    const none = { logSource: 'fw1@eng-a', engine: 'eng-a', properties: { unmapped: 'x' } };
    expect(tagDomain(ev(none), off).rule).toBe('log-source:fw1@eng-a');
    expect(tagDomain(ev(none), on).rule).toBe('log-source:fw1@eng-a');
  });
});
