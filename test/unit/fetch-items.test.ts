/**
 * Reading fetched items (agent/tenant/fetch-items.ts) and the definition's fetch spec check
 * (common/integration-definition.ts): where the list is, each field with its defaults and bounds, one item
 * per source id, and a whole answer refused when it holds no list or an item has no usable id. No I/O.
 */
import { describe, expect, it } from 'vitest';
import { extractItems, severityOf, MAX_SOURCE_ID } from '../../agent/tenant/fetch-items.js';
import { parseIntegrationDefinition, type IntegrationDefinition } from '#common/integration-definition.js';

const SOURCE = { instance: 'alerts', integration: 'http' };
const HTTP_SPEC = { command: 'get', items: 'body' };
/** The result itself is the list. */
const ROOT = { command: 'x' };

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    const err = e as { code: string; message: string };
    return `${err.code}|${err.message}`;
  }
  return 'accepted';
}

describe('extractItems', () => {
  it('reads an array or {items: [...]} at the path, with each field and the source labels', () => {
    const list = [{ id: 'a1', name: 'phish', severity: 3, details: 'user clicked' }];
    for (const body of [list, { items: list }]) {
      expect(extractItems({ status: 200, body }, HTTP_SPEC, SOURCE)).toEqual([
        {
          sourceId: 'a1',
          name: 'phish',
          type: 'http',
          severity: 3,
          details: 'user clicked',
          labels: { source: 'integration:alerts', sourceId: 'a1' },
        },
      ]);
    }
  });

  it('applies defaults: a named name, severity 0, the item as JSON for details; numbers are ids', () => {
    const [item] = extractItems([{ id: 42, host: 'web-1' }], { command: 'x' }, SOURCE);
    expect(item).toMatchObject({
      sourceId: '42',
      name: 'http item 42',
      severity: 0,
      details: '{"id":42,"host":"web-1"}',
    });
  });

  it('follows the spec: dotted paths for each field and its own incident type', () => {
    const result = { data: { alerts: [{ meta: { uid: 'u-1' }, title: 't', level: 'high', text: 'd' }] } };
    const spec = { command: 'x', items: 'data.alerts', id: 'meta.uid', name: 'title', severity: 'level' };
    const [item] = extractItems(result, { ...spec, details: 'text', type: 'edr-alert' }, SOURCE);
    expect(item).toMatchObject({ sourceId: 'u-1', name: 't', severity: 3, details: 'd', type: 'edr-alert' });
  });

  it('keeps the first item of each source id', () => {
    const items = extractItems([{ id: 'x', name: 'first' }, { id: 'x', name: 'again' }, { id: 'y' }], ROOT, SOURCE);
    expect(items.map((i) => `${i.sourceId}:${i.name}`)).toEqual(['x:first', 'y:http item y']);
  });

  it('bounds names and details to what an incident holds', () => {
    const [item] = extractItems([{ id: 1, name: 'n'.repeat(600), details: 'd'.repeat(100_001) }], ROOT, SOURCE);
    expect(item.name).toHaveLength(500);
    expect(item.details).toHaveLength(100_000);
  });

  it('refuses an answer without a list, naming where it looked', () => {
    expect(refusal(() => extractItems({ body: '<html>oops</html>' }, HTTP_SPEC, SOURCE))).toBe(
      'ERR_INTEGRATION_FETCH_ITEMS|the source\'s answer cannot be read as items: no list at "body" ' +
        '(a JSON array, or an object with an "items" array)',
    );
    expect(refusal(() => extractItems({ body: { items: 'no' } }, HTTP_SPEC, SOURCE))).toMatch(/no list at "body"/);
  });

  it('refuses the whole answer when any item has no usable id', () => {
    for (const bad of [{ name: 'no id' }, { id: '' }, { id: { nested: 1 } }, { id: 'x'.repeat(MAX_SOURCE_ID + 1) }, 7])
      expect(refusal(() => extractItems([{ id: 'ok' }, bad], ROOT, SOURCE))).toMatch(
        /^ERR_INTEGRATION_FETCH_ITEMS\|.*item 1 has no id at "id"/,
      );
  });

  it('reads severities as 0-4 or their names, anything else as 0', () => {
    expect([0, 4, '2', 'Critical', 'informational', 'medium', 5, -1, 1.5, 'urgent', null].map(severityOf)).toEqual([
      0, 4, 2, 4, 0, 2, 0, 0, 0, 0, 0,
    ]);
  });
});

describe('a definition fetch spec', () => {
  const def: IntegrationDefinition = {
    name: 'edr',
    connectionType: 'http',
    commands: [
      { name: 'alerts', readOnly: true, args: { type: 'object' }, runs: 'request', with: { method: 'GET' } },
      { name: 'isolate', readOnly: false, args: { type: 'object' }, runs: 'request', with: { method: 'POST' } },
    ],
  };
  const parse = (fetch: unknown) => refusal(() => parseIntegrationDefinition(JSON.stringify({ ...def, fetch })));

  it('is accepted when it names a read-only command of the definition', () => {
    expect(parse({ command: 'alerts', items: 'body.data', id: 'uid' })).toBe('accepted');
  });

  it('is refused naming the field otherwise', () => {
    expect(parse({ command: 'isolate' })).toBe(
      'ERR_INTEGRATION_DEFINITION|fetch.command: isolate may write; a fetch runs a read-only one',
    );
    expect(parse({ command: 'nope' })).toMatch(/^ERR_INTEGRATION_DEFINITION\|fetch\.command: must be one of/);
    expect(parse({ command: 'alerts', items: 'a..b' })).toMatch(/\|fetch\.items: must match pattern/);
    expect(parse({ command: 'alerts', colour: 1 })).toMatch(/\|fetch\.colour: is not a known field/);
  });
});
