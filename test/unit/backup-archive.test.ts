/**
 * The encrypted container of main backups (main/backup/archive-format.ts) and the entries inside it
 * (archive-entries.ts) against the formats their headers write down: header bytes by offset, a chunk opened by
 * hand with Node's scrypt and AES-256-GCM as the second implementation, round trips, a wrong passphrase, and
 * every kind of tampering (a flipped byte, swapped or dropped chunks, a cut at a chunk boundary, data after the
 * end). A cheap scrypt setting keeps it fast; the format carries its parameters. Pure: no I/O.
 */
import { createDecipheriv, createHash, scryptSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ArchiveKey,
  HEADER_BYTES,
  MAGIC,
  newHeader,
  parseHeader,
  type ArchiveHeader,
} from '../../main/backup/archive-format.js';
import {
  EntryDecoder,
  collectionOf,
  encodeEnd,
  encodeEntry,
  ENTRY_FILE,
  ENTRY_RECORD,
} from '../../main/backup/archive-entries.js';
import { EntryTally } from '../../main/backup/entry-tally.js';

const SALT = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
const CHEAP = { log2N: 10, r: 1, p: 1 };
const PASS = 'correct horse battery staple';
const header = (): ArchiveHeader => newHeader(SALT, CHEAP, 1024);

const codeOf = async (fn: () => unknown) => {
  try {
    await fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return 'opened';
};

/** Seals `plain` as the writer does: a header, then chunks of the chunk size, the last one final. */
async function seal(plain: Buffer, pass = PASS): Promise<{ head: Buffer; chunks: Buffer[] }> {
  const key = await ArchiveKey.derive(pass, header());
  const size = key.header.chunkBytes;
  const chunks: Buffer[] = [];
  let rest = plain;
  while (rest.length >= size) {
    chunks.push(key.seal(rest.subarray(0, size), false));
    rest = rest.subarray(size);
  }
  chunks.push(key.seal(rest, true));
  return { head: key.headerBytes(), chunks };
}

/** Opens sealed chunks as the reader does: the last one given is final. */
async function open(head: Buffer, chunks: Buffer[], pass = PASS): Promise<Buffer> {
  const key = await ArchiveKey.derive(pass, parseHeader(head));
  if (!key.headerMatches(head)) throw Object.assign(new Error('wrong'), { code: 'ERR_BACKUP_PASSPHRASE_WRONG' });
  const out = chunks.map((c, i) => {
    const len = c.readUInt32BE(0);
    return key.open(c.subarray(4, 4 + len), c.subarray(4 + len), i === chunks.length - 1);
  });
  return Buffer.concat(out);
}

const plaintext = Buffer.from(Array.from({ length: 2500 }, (_, i) => i % 251));

describe('the backup container', () => {
  it('writes its 64-byte header field by field at the offsets its format states', async () => {
    const head = (await ArchiveKey.derive(PASS, header())).headerBytes();
    expect(head.length).toBe(HEADER_BYTES);
    expect(head.subarray(0, 8)).toEqual(Buffer.from('PLSBAK\r\n', 'latin1'));
    expect(MAGIC.toString('latin1')).toBe('PLSBAK\r\n');
    expect(head.subarray(8, 20).toString('hex')).toBe('0001' + '01' + '0a' + '0001' + '0001' + '00000400');
    expect(head.subarray(20, 36)).toEqual(SALT);
    expect(head.subarray(36, 48)).toEqual(Buffer.alloc(12));
    expect(parseHeader(head)).toEqual(header());
  });

  it('seals chunks that Node opens by hand with the stated key, nonce and AAD', async () => {
    const { head, chunks } = await seal(plaintext);
    expect(chunks.map((c) => c.readUInt32BE(0))).toEqual([1024, 1024, 452]);
    const key = scryptSync(PASS, SALT, 32, { N: 1024, r: 1, p: 1 });
    const digest = createHash('sha256').update(head).digest();
    const opened = chunks.map((c, i) => {
      const nonce = Buffer.alloc(12);
      nonce.writeBigUInt64BE(BigInt(i + 1), 4);
      const d = createDecipheriv('aes-256-gcm', key, nonce);
      d.setAAD(Buffer.concat([digest, Buffer.from([i === 2 ? 1 : 0])]));
      const len = c.readUInt32BE(0);
      d.setAuthTag(c.subarray(4 + len));
      return Buffer.concat([d.update(c.subarray(4, 4 + len)), d.final()]);
    });
    expect(Buffer.concat(opened)).toEqual(plaintext);
  });

  it('round-trips, an empty plaintext included', async () => {
    const a = await seal(plaintext);
    expect(await open(a.head, a.chunks)).toEqual(plaintext);
    const b = await seal(Buffer.alloc(0));
    expect(b.chunks).toHaveLength(1);
    expect(await open(b.head, b.chunks)).toEqual(Buffer.alloc(0));
  });

  it('refuses a wrong passphrase at the header, before any chunk', async () => {
    const { head, chunks } = await seal(plaintext);
    expect(await codeOf(() => open(head, chunks, 'correct horse battery stapler'))).toBe('ERR_BACKUP_PASSPHRASE_WRONG');
  });

  it('refuses a flipped byte anywhere: header fields, salt, length, ciphertext or tag', async () => {
    const { head, chunks } = await seal(plaintext);
    for (const at of [12, 21, 40, 60]) {
      const h = Buffer.from(head);
      h[at] ^= 1;
      expect(await codeOf(() => open(h, chunks)), `header byte ${at}`).toMatch(
        /^ERR_BACKUP_(PASSPHRASE_WRONG|FORMAT)$/,
      );
    }
    for (const at of [4, 500, 1027, 1040]) {
      const c = chunks.map((x) => Buffer.from(x));
      c[1][at] ^= 1;
      expect(await codeOf(() => open(head, c)), `chunk byte ${at}`).toBe('ERR_BACKUP_DAMAGED');
    }
  });

  it('refuses chunks swapped, dropped or cut at a chunk boundary, and data after the last chunk', async () => {
    const { head, chunks } = await seal(plaintext);
    expect(await codeOf(() => open(head, [chunks[1], chunks[0], chunks[2]]))).toBe('ERR_BACKUP_DAMAGED');
    expect(await codeOf(() => open(head, [chunks[0], chunks[2]]))).toBe('ERR_BACKUP_DAMAGED');
    expect(await codeOf(() => open(head, chunks.slice(0, 2)))).toBe('ERR_BACKUP_DAMAGED');
    const key = await ArchiveKey.derive(PASS, parseHeader(head));
    const last = chunks[2];
    key.open(chunks[0].subarray(4, 1028), chunks[0].subarray(1028), false);
    key.open(chunks[1].subarray(4, 1028), chunks[1].subarray(1028), false);
    key.open(last.subarray(4, 456), last.subarray(456), true);
    expect(await codeOf(() => key.open(last.subarray(4, 456), last.subarray(456), true))).toBe('ERR_BACKUP_DAMAGED');
  });

  it('refuses another magic, a later format version and KDF parameters beyond its bounds before deriving', async () => {
    const head = (await ArchiveKey.derive(PASS, header())).headerBytes();
    const alter = (at: number, bytes: number[]) => {
      const h = Buffer.from(head);
      Buffer.from(bytes).copy(h, at);
      return h;
    };
    expect(await codeOf(() => parseHeader(alter(0, [0x50, 0x4b])))).toBe('ERR_BACKUP_FORMAT');
    expect(await codeOf(() => parseHeader(alter(8, [0, 2])))).toBe('ERR_BACKUP_FORMAT');
    expect(await codeOf(() => parseHeader(alter(11, [30])))).toBe('ERR_BACKUP_FORMAT');
    expect(await codeOf(() => parseHeader(alter(12, [0xff, 0xff])))).toBe('ERR_BACKUP_FORMAT');
    expect(await codeOf(() => parseHeader(alter(16, [0x7f, 0, 0, 0])))).toBe('ERR_BACKUP_FORMAT');
    expect(await codeOf(() => parseHeader(head.subarray(0, 40)))).toBe('ERR_BACKUP_FORMAT');
  });
});

describe('the entries inside a backup', () => {
  const file = encodeEntry(ENTRY_FILE, Buffer.from('pki/ca.pem'), Buffer.from('PEM'));
  const rec = (k: string, v: string) => encodeEntry(ENTRY_RECORD, Buffer.from(k), Buffer.from(v));
  const stream = Buffer.concat([
    file,
    rec('!agents!a1', '{"id":"a1"}'),
    rec('!users!u1', '{}'),
    rec('!users!u2', '{}'),
    encodeEnd({ createdAt: '2026-01-01T00:00:00.000Z', source: 'running', files: 1, records: 3 }),
  ]);

  it('frames an entry as type, key length, key, value length, value', () => {
    expect(file.toString('hex')).toBe(
      '01' + '0000000a' + Buffer.from('pki/ca.pem').toString('hex') + '00000003' + '50454d',
    );
  });

  it('decodes the stream fed in pieces of any size, and counts files and records per collection', () => {
    for (const piece of [1, 7, 64, stream.length]) {
      const d = new EntryDecoder();
      const tally = new EntryTally();
      for (let i = 0; i < stream.length; i += piece)
        for (const e of d.push(stream.subarray(i, i + piece))) tally.add(e);
      expect(d.finish().source).toBe('running');
      expect(tally.result()).toEqual({ files: ['pki/ca.pem'], records: { agents: 1, users: 2 }, dataBytes: 56 });
    }
    expect(collectionOf(Buffer.from('!content-versions!x!0001'))).toBe('content-versions');
  });

  it('refuses a stream without its end, with counts that do not match, or with data after the end', () => {
    const cut = new EntryDecoder();
    cut.push(stream.subarray(0, stream.length - 3));
    expect(() => cut.finish()).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_DAMAGED' }));
    const short = Buffer.concat([file, encodeEnd({ createdAt: '', source: 'stopped', files: 1, records: 1 })]);
    expect(() => new EntryDecoder().push(short)).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_DAMAGED' }));
    const after = new EntryDecoder();
    after.push(stream);
    expect(() => after.push(file)).toThrow(expect.objectContaining({ code: 'ERR_BACKUP_DAMAGED' }));
    expect(() => new EntryDecoder().push(Buffer.from([9, 0, 0, 0, 0]))).toThrow(
      expect.objectContaining({ code: 'ERR_BACKUP_DAMAGED' }),
    );
  });
});
