/**
 * Bytes handed to an asynchronous send (ws.send, child.send) whose completion callback has not run yet:
 * what this process holds in memory on one peer's behalf. Not a queue of the data itself, and not a
 * limit: callers compare `bytes` with theirs.
 *
 * Sends on one socket or IPC channel complete in the order they were made, so one callback (`done`,
 * bound once) and a FIFO of lengths account for them: no closure per send on the relay's hot path.
 * Every send handed `done` must be counted with `add` right after, and must call `done` exactly once
 * (ws and child.send call back on success and on a closed channel alike).
 */
export class PendingBytes {
  bytes = 0;
  private readonly lengths: number[] = [];
  private head = 0;

  /** `onDone` runs after each completion, with `bytes` already lowered. */
  constructor(private readonly onDone?: () => void) {}

  add(n: number): void {
    this.bytes += n;
    this.lengths.push(n);
  }

  readonly done = (): void => {
    this.bytes -= this.lengths[this.head++] ?? 0;
    // Emptied: start over. Never emptied (a steady stream): drop the consumed front now and then.
    if (this.head === this.lengths.length) {
      this.lengths.length = 0;
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.lengths.length) {
      this.lengths.splice(0, this.head);
      this.head = 0;
    }
    this.onDone?.();
  };
}
