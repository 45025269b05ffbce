/**
 * The strict exposition reader the metrics e2e test relies on (test/harness/prometheus-text.ts): it reads what
 * prom-client writes, and refuses every kind of malformed line, so a broken /metrics cannot pass that test.
 */
import { describe, expect, it } from 'vitest';
import { Counter, Histogram, Registry } from 'prom-client';
import { parseExposition, sampleSum } from '../harness/prometheus-text.js';

const ok = [
  '# HELP a_total Things, with a \\\\ and a \\n',
  '# TYPE a_total counter',
  'a_total{kind="host",path="C:\\\\x \\"q\\"\\n"} 3',
  'a_total 1.5e3',
  '# TYPE h histogram',
  'h_bucket{le="+Inf"} 2',
  'h_sum 0.25',
  'h_count 2',
  '# TYPE g gauge',
  'g NaN 1700000000000',
  'g{as="prom-client writes it"} Nan',
  'g{sign="minus"} -Inf',
  '',
].join('\n');

describe('parseExposition', () => {
  it('reads families, samples, label escapes and special values', () => {
    const e = parseExposition(ok);
    expect(e.types.get('a_total')).toBe('counter');
    expect(e.samples[0]).toEqual({ name: 'a_total', labels: { kind: 'host', path: 'C:\\x "q"\n' }, value: 3 });
    expect(sampleSum(e, 'a_total')).toBe(1503);
    expect(sampleSum(e, 'a_total', { kind: 'host' })).toBe(3);
    expect(sampleSum(e, 'h_bucket', { le: '+Inf' })).toBe(2);
    expect(sampleSum(e, 'missing')).toBe(0);
    expect(sampleSum(e, 'g', { sign: 'minus' })).toBe(-Infinity);
    expect(sampleSum(e, 'g', { as: 'prom-client writes it' })).toBeNaN();
  });

  it.each([
    ['a line that is no sample', 'a_total three\n'],
    ['a comment other than HELP or TYPE', '# just words\n'],
    ['an unknown TYPE', '# TYPE x counters\n'],
    ['a sample before its TYPE', 'x 1\n# TYPE x gauge\n'],
    ['a histogram suffix on a gauge', '# TYPE g gauge\ng_bucket 1\n'],
    ['a second TYPE', '# TYPE x gauge\n# TYPE x gauge\n'],
    ['an unquoted label value', '# TYPE x gauge\nx{a=b} 1\n'],
    ['a bad escape', '# TYPE x gauge\nx{a="\\t"} 1\n'],
    ['a label twice', '# TYPE x gauge\nx{a="1",a="2"} 1\n'],
    ['a space inside the labels', '# TYPE x gauge\nx{a="1", b="2"} 1\n'],
    ['no value', '# TYPE x gauge\nx{a="1"}\n'],
    ['a word for a value', '# TYPE x gauge\nx nope\n'],
    ['an escape in upper case', '# TYPE x gauge\nx{a="\\N"} 1\n'],
    ['a line of spaces', '# TYPE x gauge\n  \nx 1\n'],
    ['a space before the value twice', '# TYPE x gauge\nx  1\n'],
    ['no final newline', '# TYPE x gauge\nx 1'],
  ])('refuses %s', (_what, text) => {
    expect(() => parseExposition(text)).toThrow();
  });

  it("reads prom-client's own output", async () => {
    const registry = new Registry();
    const c = new Counter({ name: 'c_total', help: 'c', labelNames: ['why'], registers: [registry] });
    const h = new Histogram({ name: 'd_seconds', help: 'd', buckets: [0.1, 1], registers: [registry] });
    c.inc({ why: 'a "quoted"\nreason' }, 2);
    h.observe(0.5);
    const e = parseExposition(await registry.metrics());
    expect(sampleSum(e, 'c_total', { why: 'a "quoted"\nreason' })).toBe(2);
    expect(sampleSum(e, 'd_seconds_bucket', { le: '1' })).toBe(1);
    expect(sampleSum(e, 'd_seconds_count')).toBe(1);
  });
});
