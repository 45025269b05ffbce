/**
 * Counts refusals by reason and writes the counts at most once per `everyMs`: a flood of refused
 * connections costs a log line per interval, not one per connection, and a flood that stops is still
 * written, by a timer, at the end of its interval.
 */
export class RefusalSummary {
  private counts = new Map<string, number>();
  private last = -Infinity;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly everyMs: number,
    private readonly write: (counts: Record<string, number>) => void,
  ) {}

  count(code: string): void {
    this.counts.set(code, (this.counts.get(code) ?? 0) + 1);
    const wait = this.last + this.everyMs - Date.now();
    if (wait <= 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), wait).unref();
  }

  /** Writes what is counted now (at close, or when the interval is over). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.counts.size === 0) return;
    this.last = Date.now();
    const counts = Object.fromEntries(this.counts);
    this.counts = new Map();
    this.write(counts);
  }
}
