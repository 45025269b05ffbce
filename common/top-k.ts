/**
 * The first `k` of a stream in a given order, holding at most `k` items at any time: a binary heap whose
 * root is the worst item kept, so a scan over a whole store costs O(n log k) time and O(k) memory.
 * Not a sorted collection: only `sorted()` gives an order.
 */
export class TopK<T> {
  /** Heap ordered so that heap[0] is the item that would be dropped first. */
  private readonly heap: T[] = [];

  /** `order(a, b) < 0` when a comes before b in the answer. */
  constructor(
    private readonly k: number,
    private readonly order: (a: T, b: T) => number,
  ) {
    if (!Number.isInteger(k) || k < 0) throw new RangeError(`k must be a whole number >= 0, got ${k}`);
  }

  get size(): number {
    return this.heap.length;
  }

  /** Offers an item; it is kept only if it is among the first k seen so far. */
  offer(item: T): void {
    if (this.k === 0) return;
    const h = this.heap;
    if (h.length < this.k) {
      h.push(item);
      this.up(h.length - 1);
    } else if (this.order(item, h[0]) < 0) {
      h[0] = item;
      this.down(0);
    }
  }

  /** The items kept, in order. */
  sorted(): T[] {
    return [...this.heap].sort(this.order);
  }

  /** a is worse than b: it leaves first, so it sits nearer the root. */
  private worse(i: number, j: number): boolean {
    return this.order(this.heap[i], this.heap[j]) > 0;
  }

  private swap(i: number, j: number): void {
    [this.heap[i], this.heap[j]] = [this.heap[j], this.heap[i]];
  }

  private up(i: number): void {
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.worse(i, p)) return;
      this.swap(i, p);
      i = p;
    }
  }

  private down(i: number): void {
    const n = this.heap.length;
    for (;;) {
      const l = 2 * i + 1,
        r = l + 1;
      let w = i;
      if (l < n && this.worse(l, w)) w = l;
      if (r < n && this.worse(r, w)) w = r;
      if (w === i) return;
      this.swap(i, w);
      i = w;
    }
  }
}
