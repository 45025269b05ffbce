/**
 * What a main backup holds, inside its encryption (archive-format.ts), and what main sends on its backup socket:
 * a stream of entries, each
 *
 *   type u8 ‖ key length u32 ‖ key ‖ value length u32 ‖ value            (integers big-endian)
 *
 *   FILE (1)    key = a file's path in the data directory (UTF-8, `/`-separated), value = its bytes
 *   RECORD (2)  key, value = one registry entry as LevelDB stores it (sublevel prefix `!name!` included)
 *   END (3)     key empty, value = JSON `EndSummary`; the stream's last entry, and the proof that it is whole
 *
 * Raw registry entries, not records decoded collection by collection: a backup then holds every collection the
 * registry has now or gains later without this module knowing them. Pure: no I/O. Not the encryption.
 */
import { BadParameterError } from '#common/errors.js';

export const ENTRY_FILE = 1;
export const ENTRY_RECORD = 2;
export const ENTRY_END = 3;
export type EntryType = typeof ENTRY_FILE | typeof ENTRY_RECORD | typeof ENTRY_END;

export interface Entry {
  type: EntryType;
  key: Buffer;
  value: Buffer;
}

/** The END entry: when and from what the snapshot was taken, and how many entries precede it. */
export interface EndSummary {
  createdAt: string;
  /** A running main answered on its socket, or the CLI read a stopped main's data directory itself. */
  source: 'running' | 'stopped';
  files: number;
  records: number;
}

const HEAD_BYTES = 5;
/** No key or value in a backup comes near this (content bodies are bounded far below); a longer one is damage. */
const MAX_PART_BYTES = 256 * 1024 * 1024;

export function encodeEntry(type: EntryType, key: Buffer, value: Buffer): Buffer {
  const out = Buffer.alloc(HEAD_BYTES + key.length + 4 + value.length);
  out.writeUInt8(type, 0);
  out.writeUInt32BE(key.length, 1);
  key.copy(out, HEAD_BYTES);
  out.writeUInt32BE(value.length, HEAD_BYTES + key.length);
  value.copy(out, HEAD_BYTES + key.length + 4);
  return out;
}

export function encodeEnd(summary: EndSummary): Buffer {
  return encodeEntry(ENTRY_END, Buffer.alloc(0), Buffer.from(JSON.stringify(summary)));
}

const damaged = (why: string) =>
  new BadParameterError('ERR_BACKUP_DAMAGED', `the backup's contents are damaged: ${why}`);

/** The registry collection of a raw key: the sublevel name in its `!name!` prefix. */
export function collectionOf(key: Buffer): string {
  if (key[0] !== 0x21) return '(root)';
  const end = key.indexOf(0x21, 1);
  return end < 0 ? '(root)' : key.subarray(1, end).toString('utf8');
}

/**
 * Cuts a byte stream, fed in pieces of any size, back into entries; checks that END comes last, once, and
 * that its counts match what came before it.
 */
export class EntryDecoder {
  private parts: Buffer[] = [];
  private buffered = 0;
  /** Bytes the entry being read needs, as far as known: no joining of pieces before they can complete it. */
  private want = HEAD_BYTES;
  private files = 0;
  private records = 0;
  end?: EndSummary;

  push(bytes: Buffer): Entry[] {
    if (bytes.length === 0) return [];
    if (this.end) throw damaged('data after the end entry');
    this.parts.push(bytes);
    this.buffered += bytes.length;
    const out: Entry[] = [];
    for (let e = this.next(); e; e = this.next()) out.push(e);
    return out;
  }

  /** Call at the end of the stream: throws unless it ended with a whole END entry. */
  finish(): EndSummary {
    if (!this.end || this.buffered > 0) throw damaged('it ends before its end entry');
    return this.end;
  }

  private next(): Entry | undefined {
    if (this.end || this.buffered < this.want) return undefined;
    const all = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts);
    this.parts = [all];
    const type = all.readUInt8(0);
    if (type !== ENTRY_FILE && type !== ENTRY_RECORD && type !== ENTRY_END) throw damaged(`entry type ${type}`);
    const keyLen = all.readUInt32BE(1);
    if (keyLen > MAX_PART_BYTES) throw damaged(`a key of ${keyLen} bytes`);
    this.want = HEAD_BYTES + keyLen + 4;
    if (all.length < this.want) return undefined;
    const valueLen = all.readUInt32BE(HEAD_BYTES + keyLen);
    if (valueLen > MAX_PART_BYTES) throw damaged(`a value of ${valueLen} bytes`);
    const size = HEAD_BYTES + keyLen + 4 + valueLen;
    this.want = size;
    if (all.length < size) return undefined;
    const entry: Entry = {
      type,
      key: Buffer.from(all.subarray(HEAD_BYTES, HEAD_BYTES + keyLen)),
      value: Buffer.from(all.subarray(HEAD_BYTES + keyLen + 4, size)),
    };
    this.parts = size < all.length ? [all.subarray(size)] : [];
    this.buffered -= size;
    this.want = HEAD_BYTES;
    this.count(entry);
    return entry;
  }

  private count(e: Entry): void {
    if (e.type === ENTRY_FILE) this.files++;
    else if (e.type === ENTRY_RECORD) this.records++;
    else {
      let s: EndSummary;
      try {
        s = JSON.parse(e.value.toString('utf8')) as EndSummary;
      } catch {
        throw damaged('an end entry that is not JSON');
      }
      if (s.files !== this.files || s.records !== this.records)
        throw damaged(
          `the end entry counts ${s.files} files and ${s.records} records; ${this.files} and ${this.records} came`,
        );
      this.end = s;
    }
  }
}
