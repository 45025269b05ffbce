/** The engine ⇄ tenant handshake and record protection: who can open a session, and what tampering does. */
import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { engineHandshake, tenantAccept, HELLO_MAX_SKEW_MS } from '#common/tunnel-crypto.js';

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
    expect(() => tenantAccept(tenant, hs.hello, enrolled)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_ENGINE_AUTH' }));
    // …and a peer answering with the real tenant's reply to someone else's hello is refused by the engine.
    const honest = engineHandshake(engine, tenant.publicKey);
    const { reply } = tenantAccept(tenant, honest.hello, enrolled);
    expect(() => hs.finish(reply)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_TENANT_AUTH' }));
  });

  it("a peer without the tenant's secret key (e.g. a host or main in the middle) cannot answer", () => {
    const hs = engineHandshake(engine, tenant.publicKey);
    const mitm = nacl.box.keyPair();
    // It cannot read the hello…
    expect(() => tenantAccept({ publicKey: tenant.publicKey, secretKey: mitm.secretKey }, hs.hello, () => true)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_ENGINE_AUTH' }));
    // …and a reply it builds with its own key (it can see engineEph on the wire) does not open at the engine.
    const eph = nacl.box.keyPair();
    const nonce = nacl.randomBytes(nacl.box.nonceLength);
    const box = nacl.box(Buffer.concat([eph.publicKey, hs.hello.engineEph]), nonce, hs.hello.engineStatic, mitm.secretKey);
    expect(() => hs.finish({ tenantEph: eph.publicKey, nonce, box })).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_TENANT_AUTH' }));
  });

  it('an engine key not enrolled for the tenant is refused, even with valid crypto', () => {
    const stranger = nacl.box.keyPair();
    const hs = engineHandshake(stranger, tenant.publicKey);
    expect(() => tenantAccept(tenant, hs.hello, enrolled)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_ENGINE_UNKNOWN' }));
  });

  it("a process with the engine's certificate but not its box key cannot pose as the engine", () => {
    const attacker = nacl.box.keyPair();
    const hs = engineHandshake({ publicKey: engine.publicKey, secretKey: attacker.secretKey }, tenant.publicKey);
    expect(() => tenantAccept(tenant, hs.hello, enrolled)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_ENGINE_AUTH' }));
  });

  it('a stale hello is refused', () => {
    const hs = engineHandshake(engine, tenant.publicKey, Date.now() - HELLO_MAX_SKEW_MS - 5000);
    expect(() => tenantAccept(tenant, hs.hello, enrolled)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_HELLO_STALE' }));
  });

  it('tampered, replayed or reordered records fail to open', () => {
    const hs = engineHandshake(engine, tenant.publicKey);
    const { reply, keys: t } = tenantAccept(tenant, hs.hello, enrolled);
    const e = hs.finish(reply);
    const a = e.send.seal(Buffer.from('first')), b = e.send.seal(Buffer.from('second'));
    const tampered = Buffer.from(a); tampered[0] ^= 1;
    expect(() => t.receive.open(tampered)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_RECORD' }));
    const t2 = tenantAccept(tenant, engineHandshake(engine, tenant.publicKey).hello, enrolled).keys;
    expect(() => t2.receive.open(b)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_RECORD' })); // another session's keys
    const fresh = engineHandshake(engine, tenant.publicKey);
    const acc = tenantAccept(tenant, fresh.hello, enrolled);
    const ek = fresh.finish(acc.reply);
    const r1 = ek.send.seal(Buffer.from('1')), r2 = ek.send.seal(Buffer.from('2'));
    expect(() => acc.keys.receive.open(r2)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_RECORD' })); // out of order
    void r1;
  });
});
