/**
 * Secrets main keeps in its registry but must not reveal from a copy of it (TOTP secrets): sealed with
 * AES-256-GCM under a key kept outside the registry, `pki/secrets-key` in the data directory (32 random bytes,
 * 0600, made at first start, like the TLS ticket keys and the signing key). A registry copy or a LevelDB file
 * alone then holds only `v1:` + base64url(nonce | ciphertext | tag). The record's id is the associated data, so
 * a sealed value moved to another record does not open. `main backup` includes the key file, as it includes the
 * CA, signing and ticket keys: a restore brings TOTP back. Losing the key file (without a backup) locks out
 * users with TOTP until an admin turns it off for them (`palisade users totp NAME --disable`).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '#common/atomic-file.js';

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const PREFIX = 'v1:';

export class SecretBox {
  private constructor(private readonly key: Buffer) {}

  /** The key at `path`, made (0600) if there is none yet. A file of another size is refused, never replaced. */
  static async load(path: string): Promise<SecretBox> {
    const existing = await readFile(path).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return undefined;
      throw e;
    });
    if (existing) {
      if (existing.length !== KEY_BYTES) throw new Error(`${path}: expected a ${KEY_BYTES}-byte key`);
      return new SecretBox(existing);
    }
    const key = randomBytes(KEY_BYTES);
    await writeFileAtomic(path, key, 0o600);
    return new SecretBox(key);
  }

  /** A box with a given key (tests). */
  static of(key: Buffer): SecretBox {
    return new SecretBox(key);
  }

  seal(plain: string, context: string): string {
    const nonce = randomBytes(NONCE_BYTES);
    const c = createCipheriv('aes-256-gcm', this.key, nonce);
    c.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return PREFIX + Buffer.concat([nonce, body, c.getAuthTag()]).toString('base64url');
  }

  /**
   * The plain value, or undefined if it does not open (another key, another record, damaged). A value without
   * the prefix was stored before sealing existed and is returned as it is (sealed again when next written).
   */
  open(stored: string, context: string): string | undefined {
    if (!stored.startsWith(PREFIX)) return stored;
    const raw = Buffer.from(stored.slice(PREFIX.length), 'base64url');
    if (raw.length < NONCE_BYTES + TAG_BYTES) return undefined;
    try {
      const d = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, NONCE_BYTES));
      d.setAAD(Buffer.from(context, 'utf8'));
      d.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      return Buffer.concat([d.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), d.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }
}
