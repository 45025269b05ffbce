/**
 * A batch's messages and their custom property values, read RUN records at a time for the pipeline's loop
 * (event-pipeline.ts). Why runs: a property's regex must be timed on each event, so that a slow pattern is caught on
 * the event that was slow (moved from V8 to re2js, or switched off), and two clock reads per event and property cost
 * more than the regex itself on a short message. A run's regexes are timed together; a run that took SLOW_ON_V8_MS or
 * more is worked out again event by event, timed each (`timedValues`: the checks as they were). So that no run is
 * worked out twice over and over (many events each just under the mark), once a run worked out again held no slow
 * event the rest of the batch is timed event by event. Not what a property is (event-config.ts, property-matcher.ts).
 */
import { MAX_SYSLOG_MESSAGE_BYTES, type SyslogRecords } from '#common/syslog-record.js';
import { propertyValue, type CustomProperty } from './event-config.js';
import { SLOW_ON_V8_MS, type PropertyMatcher } from './property-matcher.js';

/** Records read and matched at once. */
export const RUN = 16;

/** A property as the pipeline runs it: its matcher with it. */
export type Property = CustomProperty & { re: PropertyMatcher };

/**
 * Works out `text`'s values of the properties `on` into `out` from `at`, timing each (and acting on a slow one);
 * returns the longest one took, in ms.
 */
export type TimedValues = (text: string, out: (string | undefined)[], at: number) => number;

/** Cuts `raw` to MAX_SYSLOG_MESSAGE_BYTES of UTF-8 (the engine should have; a record over it is flagged). */
function bounded(raw: string): string {
  if (raw.length * 3 <= MAX_SYSLOG_MESSAGE_BYTES || Buffer.byteLength(raw) <= MAX_SYSLOG_MESSAGE_BYTES) return raw;
  return Buffer.from(raw).subarray(0, MAX_SYSLOG_MESSAGE_BYTES).toString('utf8');
}

export class EventRuns {
  /** The current run's messages (cut to the bound) and whether each was cut. */
  readonly texts = new Array<string>(RUN);
  readonly truncated = new Array<boolean>(RUN);
  /** The current run's property values: event j's value of property k at j × on.length + k. */
  readonly values: (string | undefined)[];
  private start = 0;
  private end = 0;
  private eachTimed = false;

  constructor(
    private readonly records: SyslogRecords,
    private readonly on: readonly Property[],
    private readonly timedValues: TimedValues,
    /** The clock runs are timed by (ms); tests give their own. */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.values = new Array<string | undefined>(RUN * on.length);
  }

  /** Record `i`'s place in its run (reading the run it begins); records are asked for in order. */
  at(i: number): number {
    if (i >= this.end) this.read(i);
    return i - this.start;
  }

  private read(from: number): void {
    const to = Math.min(this.records.length, from + RUN);
    [this.start, this.end] = [from, to];
    for (let i = from; i < to; i++) {
      const raw = this.records.text(i);
      const text = bounded(raw);
      this.texts[i - from] = text;
      this.truncated[i - from] = text !== raw;
    }
    const on = this.on;
    if (on.length === 0) return;
    const n = to - from;
    if (!this.eachTimed) {
      const ascii = this.records.plain === true;
      const started = this.now();
      for (let j = 0; j < n; j++)
        for (let k = 0; k < on.length; k++)
          this.values[j * on.length + k] = on[k].disabled ? undefined : propertyValue(on[k].re, this.texts[j], ascii);
      if (this.now() - started < SLOW_ON_V8_MS) return;
    }
    let slowest = 0;
    for (let j = 0; j < n; j++)
      slowest = Math.max(slowest, this.timedValues(this.texts[j], this.values, j * on.length));
    if (slowest < SLOW_ON_V8_MS) this.eachTimed = true;
  }
}
