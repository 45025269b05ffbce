/** The engine ⇄ tenant handshake and record protection: who can open a session, and what tampering does. */
import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { randomBytes } from 'node:crypto';
import { engineHandshake, tenantAccept, HELLO_MAX_SKEW_MS, SealingKey } from '../../agent/tunnel/tunnel-crypto.js';
import { aeadBackend, nativeGcm } from '../../agent/tunnel/native-aead.js';

const tenant = nacl.box.keyPair();
const engine = nacl.box.keyPair();
const enrolled = (k: Uint8Array) => Buffer.from(k).equals(Buffer.from(engine.publicKey));

describe('tunnel handshake', () => {
  it('an enrolled engine and the real tenant agree on keys; records flow both ways', () => {
    const hs = engineHandshake(engine, tenant.publicKey);
    const { reply, keys: t } = tenantAccept(tenant, hs.hello, enrolled);
    const e = hs.finish(reply);
    const msg = Buffer.from('LDAP bind for CN=svc,OU=corp');
    const sealed = e.send.seal(msg);
    expect(sealed.includes(msg)).toBe(false); // what main and the host see is not the plaintext
    expect(t.receive.open(sealed).equals(msg)).toBe(true);
    expect(e.receive.open(t.send.seal(Buffer.from('ok'))).toString()).toBe('ok');
  });

  it('an engine holding the wrong tenant public key cannot complete a session', () => {
    const impostorTenant = nacl.box.keyPair();
    const hs = engineHandshake(engine, impostorTenant.publicKey);
    // The real tenant cannot open a hello meant for another key…
    expect(() => tenantAccept(tenant, hs.hello, enrolled)).toThrow(
      expect.objectContaining({ code: 'ERR_TUNNEL_ENGINE_AUTH' }),
    );
    // …and a peer answering with the real tenant's reply to someone else's hello is refused by the engine.
    const honest = engineHandshake(engine, tenant.publicKey);
    const { reply } = tenantAccept(tenant, honest.hello, enrolled);
    expect(() => hs.finish(reply)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_TENANT_AUTH' }));
  });

  it("a peer without the tenant's secret key (e.g. a host or main in the middle) cannot answer", () => {
    const hs = engineHandshake(engine, tenant.publicKey);
    const mitm = nacl.box.keyPair();
    // It cannot read the hello…
    expect(() =>
      tenantAccept({ publicKey: tenant.publicKey, secretKey: mitm.secretKey }, hs.hello, () => true),
    ).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_ENGINE_AUTH' }));
    // …and a reply it builds with its own key (it can see engineEph on the wire) does not open at the engine.
    const eph = nacl.box.keyPair();
    const nonce = nacl.randomBytes(nacl.box.nonceLength);
    const box = nacl.box(
      Buffer.concat([eph.publicKey, hs.hello.engineEph]),
      nonce,
      hs.hello.engineStatic,
      mitm.secretKey,
    );
    expect(() => hs.finish({ tenantEph: eph.publicKey, nonce, box })).toThrow(
      expect.objectContaining({ code: 'ERR_TUNNEL_TENANT_AUTH' }),
    );
  });

  it('an engine key not enrolled for the tenant is refused, even with valid crypto', () => {
    const stranger = nacl.box.keyPair();
    const hs = engineHandshake(stranger, tenant.publicKey);
    expect(() => tenantAccept(tenant, hs.hello, enrolled)).toThrow(
      expect.objectContaining({ code: 'ERR_TUNNEL_ENGINE_UNKNOWN' }),
    );
  });

  it("a process with the engine's certificate but not its box key cannot pose as the engine", () => {
    const attacker = nacl.box.keyPair();
    const hs = engineHandshake({ publicKey: engine.publicKey, secretKey: attacker.secretKey }, tenant.publicKey);
    expect(() => tenantAccept(tenant, hs.hello, enrolled)).toThrow(
      expect.objectContaining({ code: 'ERR_TUNNEL_ENGINE_AUTH' }),
    );
  });

  it('a stale hello is refused', () => {
    const hs = engineHandshake(engine, tenant.publicKey, Date.now() - HELLO_MAX_SKEW_MS - 5000);
    expect(() => tenantAccept(tenant, hs.hello, enrolled)).toThrow(
      expect.objectContaining({ code: 'ERR_TUNNEL_HELLO_STALE' }),
    );
  });

  it('tampered, replayed or reordered records fail to open', () => {
    const hs = engineHandshake(engine, tenant.publicKey);
    const { reply, keys: t } = tenantAccept(tenant, hs.hello, enrolled);
    const e = hs.finish(reply);
    const a = e.send.seal(Buffer.from('first')),
      b = e.send.seal(Buffer.from('second'));
    const tampered = Buffer.from(a);
    tampered[0] ^= 1;
    expect(() => t.receive.open(tampered)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_RECORD' }));
    const t2 = tenantAccept(tenant, engineHandshake(engine, tenant.publicKey).hello, enrolled).keys;
    expect(() => t2.receive.open(b)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_RECORD' })); // another session's keys
    const fresh = engineHandshake(engine, tenant.publicKey);
    const acc = tenantAccept(tenant, fresh.hello, enrolled);
    const ek = fresh.finish(acc.reply);
    const r1 = ek.send.seal(Buffer.from('1')),
      r2 = ek.send.seal(Buffer.from('2'));
    expect(() => acc.keys.receive.open(r2)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_RECORD' })); // out of order
    void r1;
  });
});

it('the native AEAD is built here (npm run build compiles agent/tunnel/native), so the tunnel uses it', () => {
  // Falls back silently otherwise, costing ~10% CPU per byte: a broken build must show up somewhere.
  expect(process.env.PALISADE_NATIVE_AEAD === '0' ? 'node' : aeadBackend()).toBe('native');
});

describe.runIf(nativeGcm !== undefined)('record AEAD backends: the native in-place AES-GCM and Node crypto', () => {
  const key = randomBytes(32);
  /** A sealer and an opener for one direction, each on the backend named. */
  const pairOf = (sealer: 'native' | 'node', opener: 'native' | 'node') => ({
    seal: new SealingKey(key, sealer === 'native' ? nativeGcm! : null),
    open: new SealingKey(key, opener === 'native' ? nativeGcm! : null),
  });
  /** A 512 KiB record as 64 KiB socket reads: how the direct path carries one. */
  const parts = () => Array.from({ length: 8 }, () => randomBytes(64 * 1024));
  const join = (p: Uint8Array[]) => Buffer.concat(p);

  for (const [sealer, opener] of [
    ['native', 'node'],
    ['node', 'native'],
    ['native', 'native'],
  ] as const) {
    it(`records sealed by ${sealer} open with ${opener}, in order, over many records`, () => {
      const k = pairOf(sealer, opener);
      for (let i = 0; i < 5; i++) {
        const plain = parts();
        const want = join(plain);
        const sealed = k.seal.sealv(
          plain.map((p) => Buffer.from(p)),
          true,
        ); // copies: the in-place seal may scramble them
        expect(join(sealed).subarray(0, want.length).equals(want)).toBe(false);
        expect(join(k.open.openv(sealed.map((p) => Buffer.from(p)))).equals(want)).toBe(true);
      }
    });
  }

  it('both backends produce the same bytes for the same key and counter', () => {
    const plain = parts();
    const viaNode = join(new SealingKey(key, null).sealv(plain));
    const viaNative = join(
      new SealingKey(key, nativeGcm!).sealv(
        plain.map((p) => Buffer.from(p)),
        true,
      ),
    );
    expect(viaNative.equals(viaNode)).toBe(true);
  });

  it("seals in place only when told the parts are disposable; otherwise the caller's buffers are untouched", () => {
    const k = new SealingKey(key, nativeGcm!);
    const mine = randomBytes(4096),
      copy = Buffer.from(mine);
    k.sealv([mine]);
    expect(mine.equals(copy)).toBe(true);
    const theirs = randomBytes(4096);
    const out = k.sealv([theirs], true);
    expect(out[0]).toBe(theirs); // the same buffer, now ciphertext: no allocation
    expect(theirs.equals(copy)).toBe(false);
  });

  it('the native opener refuses a flipped bit in the body or the tag, and a record out of order', () => {
    for (const flip of ['body', 'tag'] as const) {
      const k = pairOf('native', 'native');
      const sealed = k.seal.sealv(parts(), true).map((p) => Buffer.from(p));
      const at = flip === 'body' ? sealed[3] : sealed[sealed.length - 1];
      at[5] ^= 1;
      expect(() => k.open.openv(sealed)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_RECORD' }));
    }
    const k = pairOf('native', 'native');
    k.seal.sealv(parts(), true);
    const second = k.seal.sealv(parts(), true).map((p) => Buffer.from(p));
    expect(() => k.open.openv(second)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_RECORD' }));
  });

  it('the addon checks its arguments before touching a byte', () => {
    const part = randomBytes(100),
      before = Buffer.from(part);
    expect(() => nativeGcm!.gcm(randomBytes(16), randomBytes(12), [part], true, Buffer.alloc(16))).toThrow(
      expect.objectContaining({ code: 'ERR_NATIVE_AEAD_ARGS' }),
    );
    expect(() =>
      nativeGcm!.gcm(key, randomBytes(12), [part, 'x' as unknown as Buffer], true, Buffer.alloc(16)),
    ).toThrow(expect.objectContaining({ code: 'ERR_NATIVE_AEAD_ARGS' }));
    expect(() => nativeGcm!.gcm(key, randomBytes(12), [part], true, Buffer.alloc(15))).toThrow(
      expect.objectContaining({ code: 'ERR_NATIVE_AEAD_ARGS' }),
    );
    expect(part.equals(before)).toBe(true);
  });
});
