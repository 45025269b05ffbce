/**
 * The cipher of obfuscated event values (docs/events.md#obfuscation). Each rule has a fresh X25519 key pair: the
 * tenant keeps only the public half and encrypts with it; the 256-bit private half is the rule's key, printed once
 * by `obfuscation create` and stored nowhere, so the tenant (and whoever copies its disk) cannot reveal values.
 * A value is sealed as ECIES: an ephemeral X25519 key agreed with the rule's public key, HKDF-SHA256 to an AES-256
 * key, AES-256-GCM with a random 96-bit nonce. The ephemeral pair is reused for up to EPHEMERAL_USES values (the
 * agreement is the costly part) and each value still has its own nonce. Not deterministic: equal values give
 * different tokens, so a search cannot find a clear value among tokens (a deliberate choice: equal tokens would
 * let anyone count and correlate a user's events without the key).
 *
 * Token: `obf1.RULE.B64URL(ephemeralPublic[32] | nonce[12] | ciphertext | tag[16])`, RULE the rule's 8-hex tag;
 * its alphabet survives key=value, CEF and LEEF parsing as one bare value.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';

export const TOKEN_RE = /obf1\.([0-9a-f]{8})\.([A-Za-z0-9_-]{80,})/g;
const EPHEMERAL_USES = 10_000;
const INFO = Buffer.from('palisade-obfuscation-v1');

const aesKey = (shared: Uint8Array, ephPublic: Uint8Array) =>
  Buffer.from(hkdfSync('sha256', shared, ephPublic, INFO, 32));

/** A new rule key pair: `key` is shown once, `publicKey` kept. Both base64. */
export function newRuleKey(): { key: string; publicKey: string } {
  const kp = nacl.box.keyPair();
  return { key: Buffer.from(kp.secretKey).toString('base64'), publicKey: Buffer.from(kp.publicKey).toString('base64') };
}

/** The public key of a presented key (base64 of 32 bytes), or undefined when it is not one. */
export function publicKeyOf(key: string): string | undefined {
  const raw = Buffer.from(key.trim(), 'base64');
  if (raw.length !== 32) return undefined;
  return Buffer.from(nacl.box.keyPair.fromSecretKey(new Uint8Array(raw)).publicKey).toString('base64');
}

/** Seals values for one rule. */
export class Sealer {
  private eph = nacl.box.keyPair();
  private key: Buffer;
  private uses = 0;
  private readonly pub: Uint8Array;

  constructor(
    readonly tag: string,
    publicKey: string,
  ) {
    this.pub = new Uint8Array(Buffer.from(publicKey, 'base64'));
    this.key = aesKey(nacl.scalarMult(this.eph.secretKey, this.pub), this.eph.publicKey);
  }

  seal(value: string): string {
    if (++this.uses > EPHEMERAL_USES) {
      this.eph = nacl.box.keyPair();
      this.key = aesKey(nacl.scalarMult(this.eph.secretKey, this.pub), this.eph.publicKey);
      this.uses = 1;
    }
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, nonce);
    const ct = Buffer.concat([c.update(value, 'utf8'), c.final()]);
    const blob = Buffer.concat([this.eph.publicKey, nonce, ct, c.getAuthTag()]);
    return `obf1.${this.tag}.${blob.toString('base64url')}`;
  }
}

/** Opens tokens of one rule with its key; derived AES keys are cached per ephemeral public key. */
export class Opener {
  private readonly secret: Uint8Array;
  private readonly keys = new Map<string, Buffer>();

  constructor(
    readonly tag: string,
    key: string,
  ) {
    this.secret = new Uint8Array(Buffer.from(key.trim(), 'base64'));
  }

  /** The clear value of a token's blob, or undefined when it does not open (another key, or altered). */
  open(blob64: string): string | undefined {
    const blob = Buffer.from(blob64, 'base64url');
    if (blob.length < 32 + 12 + 16) return undefined;
    const ephPub = blob.subarray(0, 32);
    const id = ephPub.toString('hex');
    let k = this.keys.get(id);
    if (!k) {
      k = aesKey(nacl.scalarMult(this.secret, new Uint8Array(ephPub)), ephPub);
      if (this.keys.size > 1000) this.keys.clear();
      this.keys.set(id, k);
    }
    try {
      const d = createDecipheriv('aes-256-gcm', k, blob.subarray(32, 44));
      d.setAuthTag(blob.subarray(blob.length - 16));
      return Buffer.concat([d.update(blob.subarray(44, blob.length - 16)), d.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }

  /** `text` with every token of this rule that opens replaced by its clear value. */
  reveal(text: string): string {
    return text.replace(TOKEN_RE, (all, tag: string, blob: string) =>
      tag === this.tag ? (this.open(blob) ?? all) : all,
    );
  }
}
