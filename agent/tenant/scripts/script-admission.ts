/**
 * Who may start a script in this tenant: at most SCRIPT_MAX_CONCURRENT runs at once, and the sum of their memoryMb
 * within SCRIPT_MEMORY_BUDGET_MB, because each isolate's heap lies outside the tenant's --max-old-space-size (four
 * runs at 128 MB reached 614 MB RSS). A caller that may wait (a playbook's script task) joins a bounded FIFO queue
 * for at most SCRIPT_QUEUE_WAIT_MS; one that may not (the "run a script" route) is refused at once with
 * ERR_SCRIPT_BUSY. A slot is held until its run's host calls have settled, not only until the script ended
 * (script-sandbox.ts releases it). Not the sandbox, and no per-call bounds (script-host-calls.ts).
 */
import { UnavailableError } from '#common/errors.js';

/** Isolates at once in one tenant: each may take up to 2-3× its memoryMb before V8 stops it. */
export const SCRIPT_MAX_CONCURRENT = 4;
/**
 * The memoryMb of all running scripts together: a tenant's heap is 256 MB by default (agent/host/tenant-process.ts)
 * and isolates come on top of it, so scripts may add half that again (four at the default 32 MB, one at 128 MB).
 */
export const SCRIPT_MEMORY_BUDGET_MB = 128;
/** Runs waiting for a slot, at most; more are refused at once (a queue must not become the leak it prevents). */
export const SCRIPT_QUEUE_MAX = 32;
/** How long a waiting caller waits for a slot before ERR_SCRIPT_BUSY. */
export const SCRIPT_QUEUE_WAIT_MS = 30_000;

interface Waiter {
  memoryMb: number;
  admit: () => void;
}

let running = 0;
let memoryUsed = 0;
const queue: Waiter[] = [];

/** Running runs, their memory, and the queue's length: for tests and the tenant's diagnostics. */
export function scriptSlots(): { running: number; memoryMb: number; queued: number } {
  return { running, memoryMb: memoryUsed, queued: queue.length };
}

/**
 * A slot for a run of `memoryMb`; resolves to its release (call once). With `wait`, queues in FIFO order (a big
 * run is not overtaken forever by small ones); without, refuses unless a slot is free now and no one is queued.
 */
export function admitScript(memoryMb: number, wait: boolean): Promise<() => void> {
  const now = admitNow(memoryMb);
  if (now) return Promise.resolve(now);
  if (!wait || queue.length >= SCRIPT_QUEUE_MAX) return Promise.reject(busy());
  return new Promise((resolve, reject) => {
    const waiter: Waiter = {
      memoryMb,
      admit: () => {
        clearTimeout(timer);
        resolve(take(memoryMb));
      },
    };
    const timer = setTimeout(() => {
      queue.splice(queue.indexOf(waiter), 1);
      reject(busy(`waited ${SCRIPT_QUEUE_WAIT_MS} ms for a slot`));
      next(); // the head may have been this waiter, holding back smaller ones that fit
    }, SCRIPT_QUEUE_WAIT_MS);
    queue.push(waiter);
  });
}

/** A slot at once (its release), or none when no slot is free now or someone is queued: never waits, never throws. */
export function admitNow(memoryMb: number): (() => void) | undefined {
  return queue.length === 0 && fits(memoryMb) ? take(memoryMb) : undefined;
}

function fits(memoryMb: number): boolean {
  return running < SCRIPT_MAX_CONCURRENT && memoryUsed + memoryMb <= SCRIPT_MEMORY_BUDGET_MB;
}

function take(memoryMb: number): () => void {
  running++;
  memoryUsed += memoryMb;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    running--;
    memoryUsed -= memoryMb;
    next();
  };
}

function next(): void {
  while (queue.length > 0 && fits(queue[0].memoryMb)) queue.shift()!.admit();
}

function busy(why = `${running} scripts using ${memoryUsed} MB run in this tenant`): UnavailableError {
  return new UnavailableError('ERR_SCRIPT_BUSY', `${why}; retry shortly`, { retryAfterMs: 1000 });
}
