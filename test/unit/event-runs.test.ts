/**
 * EventRuns (agent/tenant/events/event-runs.ts): a batch's messages and property values read RUN records at a time,
 * the regexes of a run timed together. What must hold: every record's text and values are what reading it alone
 * gives; a run holding a slow event is worked out again event by event (so the slow one is timed on its own, as the
 * pipeline's checks need); and once such a run held no event slow on its own, the rest of the batch is timed event
 * by event, never a run twice again. Pure: a matcher "takes" the time a test says on a message by moving a clock
 * of the test's own, which times both the runs and the events, so that no figure depends on the machine's load.
 */
import { describe, expect, it } from 'vitest';
import { RecordArray } from '#common/syslog-record.js';
import { EventRuns, RUN, type Property } from '../../agent/tenant/events/event-runs.js';
import { SLOW_ON_V8_MS } from '../../agent/tenant/events/property-matcher.js';

/** The test's clock (ms): matchers move it by what they take. */
let clock = 0;
const now = () => clock;

/** A property reading `name=(\w+)`, taking `slow(text)` ms on a message. */
function property(name: string, slow: (text: string) => number = () => 0): Property {
  const re = new RegExp(`${name}=(\\w+)`);
  return {
    id: name,
    name,
    regex: re.source,
    created: '',
    re: {
      first(text) {
        clock += slow(text);
        return re.exec(text)?.[1];
      },
    },
  };
}

const records = (texts: string[]) =>
  new RecordArray(texts.map((raw) => ({ raw, receivedAt: 1, sender: '192.0.2.1', transport: 'tcp' as const })));

/** Reads every record in order; returns the texts, the values per record, and the texts timed one by one. */
function readAll(texts: string[], on: Property[]) {
  const timed: string[] = [];
  const runs = new EventRuns(
    records(texts),
    on,
    (text, out, at) => {
      timed.push(text);
      const started = now();
      on.forEach((p, k) => (out[at + k] = p.re.first(text)));
      return now() - started;
    },
    now,
  );
  const seen: { text: string; values: (string | undefined)[] }[] = [];
  for (let i = 0; i < texts.length; i++) {
    const r = runs.at(i);
    seen.push({ text: runs.texts[r], values: runs.values.slice(r * on.length, (r + 1) * on.length) });
  }
  return { seen, timed };
}

describe('event runs', () => {
  it('give every record its own text and values, several runs and a short last one', () => {
    const texts = Array.from({ length: RUN * 2 + 3 }, (_, i) => `m${i} user=u${i % 5}${i % 3 ? ` site=s${i}` : ''}`);
    const { seen, timed } = readAll(texts, [property('user'), property('site')]);
    expect(seen.map((x) => x.text)).toEqual(texts);
    expect(seen.map((x) => x.values)).toEqual(texts.map((t, i) => [`u${i % 5}`, i % 3 ? `s${i}` : undefined]));
    expect(timed).toEqual([]); // quick runs: no event timed on its own
  });

  it('time each event of a run that took long on its own, and only that run', () => {
    const texts = Array.from({ length: RUN * 3 }, (_, i) => `m${i} user=u${i}`);
    const slow = texts[RUN + 3];
    const { seen, timed } = readAll(texts, [property('user', (t) => (t === slow ? SLOW_ON_V8_MS * 2 : 0))]);
    expect(timed).toEqual(texts.slice(RUN, RUN * 2));
    expect(seen.map((x) => x.values[0])).toEqual(texts.map((_, i) => `u${i}`));
  });

  it('time every event after a slow run held no event slow on its own', () => {
    // Each event just under the mark: a run takes long, no event does.
    const texts = Array.from({ length: RUN * 3 }, (_, i) => `m${i} user=u${i}`);
    let calls = 0;
    const { timed } = readAll(texts, [property('user', () => (calls++, SLOW_ON_V8_MS / 4))]);
    expect(timed).toEqual(texts);
    // The first run twice (together, then one by one), the others once each.
    expect(calls).toBe(texts.length + RUN);
  });
});
