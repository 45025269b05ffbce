/**
 * The order of changes to each playbook run (playbook-runner.ts): one change at a time per run, runs independent.
 * A run with a chain is being changed or driven; one without is at rest, and its record in the store is its state
 * until someone acts on it. Not what the changes are.
 */
export class RunChains {
  private readonly chains = new Map<string, Promise<unknown>>();
  /** Runs waiting on a sub-playbook's run, and that run (until it ends): `atRest` follows it. */
  private readonly waitingOn = new Map<string, string>();

  /** Run `id` now waits on run `child` (a sub-playbook's), or (no child) no longer does. */
  follow(id: string, child?: string): void {
    if (child === undefined) this.waitingOn.delete(id);
    else this.waitingOn.set(id, child);
  }

  /** Runs `fn` after every earlier change to run `id` has finished. */
  serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(id) ?? Promise.resolve();
    const p = prev.then(fn, fn);
    const tail = p.catch(() => undefined);
    this.chains.set(id, tail);
    void tail.then(() => this.chains.get(id) === tail && this.chains.delete(id));
    return p;
  }

  /**
   * Resolves once run `id` is at rest (no change queued or under way), or after `ms`, whichever is first. A run
   * waiting on its sub-playbook's run is followed into that run until the run above goes on or ends; one down there
   * at rest without having ended (waiting on an analyst, interrupted) ends the wait.
   */
  async atRest(id: string, ms: number): Promise<void> {
    const until = performance.now() + ms;
    for (;;) {
      await this.ownRest(id, until - performance.now());
      const child = this.waitingOn.get(id);
      if (child === undefined || performance.now() >= until) return;
      await this.atRest(child, until - performance.now());
      if (this.waitingOn.get(id) === child) return;
    }
  }

  private async ownRest(id: string, ms: number): Promise<void> {
    const until = performance.now() + ms;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((r) => (timer = setTimeout(r, ms)));
    try {
      for (let c = this.chains.get(id); c && performance.now() < until; c = this.chains.get(id))
        await Promise.race([c, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves once every run is at rest. */
  async idle(): Promise<void> {
    while (this.chains.size > 0) await Promise.all(this.chains.values());
  }

  /** Resolves once every change under way now has finished. */
  current(): Promise<unknown> {
    return Promise.all(this.chains.values());
  }
}
