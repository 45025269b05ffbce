/**
 * What a backup or a restore reports it carried: the state files by name, the registry's entries counted per
 * collection (agents, users, api-keys, audit …), the plaintext bytes, and when a progress line is due. No I/O.
 * Not the entries' format.
 */
import { collectionOf, ENTRY_FILE, ENTRY_RECORD, type Entry } from './archive-entries.js';

export interface Tally {
  files: string[];
  /** Registry entries per collection (sublevel), in name order. */
  records: Record<string, number>;
  /** Bytes of files and registry entries, before encryption. */
  dataBytes: number;
}

/** A progress line at most this often: a long backup or restore shows it moves, a short one prints two lines. */
const PROGRESS_EVERY_MS = 2_000;

export class EntryTally {
  private readonly files: string[] = [];
  private shownAt = Date.now();
  private readonly records = new Map<string, number>();
  private total = 0;
  private bytes = 0;

  add(e: Entry): void {
    if (e.type === ENTRY_FILE) this.files.push(e.key.toString('utf8'));
    else if (e.type === ENTRY_RECORD) {
      const c = collectionOf(e.key);
      this.records.set(c, (this.records.get(c) ?? 0) + 1);
      this.total++;
    } else return;
    this.bytes += e.key.length + e.value.length;
  }

  /** True at most every PROGRESS_EVERY_MS: time for a progress line. */
  progressDue(now = Date.now()): boolean {
    if (now - this.shownAt < PROGRESS_EVERY_MS) return false;
    this.shownAt = now;
    return true;
  }

  line(): string {
    return `${this.files.length} files, ${this.total} registry entries, ${this.bytes} bytes of data`;
  }

  result(): Tally {
    const records = Object.fromEntries([...this.records].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    return { files: [...this.files], records, dataBytes: this.bytes };
  }
}
