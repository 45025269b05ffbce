/**
 * The direct engine ⇄ host path's pure parts: the preamble (refused at the first wrong byte, bounded),
 * main's statement (bound to the tenant's public key and its expiry) and its renewal record,
 * the length-prefixed record stream (split anywhere, oversize refused), the hand-framed stream data of
 * gathered writes (decodes exactly as protobufjs's encoding), growing stream windows, and the endpoint
 * main offers for a host that listens on all interfaces.
 */
import { describe, expect, it } from 'vitest';
import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import nacl from 'tweetnacl';
import {
  encodeOpening,
  encodePreamble,
  parseOpening,
  parsePreamble,
  parseRenewal,
  RecordReader,
  framedRecord,
  renewalRecord,
  statementProblem,
  MAX_HELLO_BYTES,
  MAX_PREAMBLE_BYTES,
  type DirectPreamble,
} from '../../agent/tunnel/tunnel-direct.js';
import { wire } from '#common/codec.js';
import { RECORD_RENEWAL } from '../../agent/tunnel/tunnel-records.js';
import { engineDirectStatement, MAX_DIRECT_STATEMENT_MS } from '#common/tunnel-statements.js';
import { engineHandshake, tenantAccept } from '../../agent/tunnel/tunnel-crypto.js';
import { TunnelSession } from '../../agent/tunnel/tunnel-session.js';
import { DIRECT_MAX_STREAM_WINDOW, DEFAULT_STREAM_WINDOW } from '../../agent/tunnel/stream-mux.js';
import type { MuxStream } from '../../agent/tunnel/mux-stream.js';
import { directEndpoint } from '../../main/agents/session.js';

const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const P: DirectPreamble = {
  tenant: 'acme',
  engineId: 'eng_0123456789abcdef',
  engineName: 'e1',
  engineGroup: '',
  engineKey: Buffer.alloc(32, 1),
  expiresAtMs: 1_800_000_000_000,
  engineKeySig: Buffer.alloc(64, 2),
};
/** Main's TunnelDirect as the engine got it: the endpoint and lifetime travel along in the preamble, unread. */
const OFFER = { ...P, endpoint: '127.0.0.1:7443', ttlMs: 60_000 };

describe('direct preamble', () => {
  it("round-trips main's statement, is incomplete until whole, and keeps the bytes after it", () => {
    const bytes = Buffer.concat([encodePreamble('acme', OFFER), Buffer.from('rest')]);
    for (let n = 0; n < bytes.length - 4; n++) expect(parsePreamble(bytes.subarray(0, n))).toBeUndefined();
    const got = parsePreamble(bytes)!;
    expect(got.preamble).toEqual(P);
    expect(got.rest.toString()).toBe('rest');
  });

  it('refuses a stranger at the first wrong byte, an oversized length, and malformed fields', () => {
    expect(() => parsePreamble(Buffer.from('G'))).toThrow(expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }));
    expect(() => parsePreamble(Buffer.from('GET / HTTP/1.1\r\n'))).toThrow(
      expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }),
    );
    // The version before 1.3 (a JSON body) is refused at its version byte.
    expect(() => parsePreamble(Buffer.from('PLSD\x01', 'latin1'))).toThrow(
      expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }),
    );
    const big = Buffer.from('PLSD\x02\xff\xff', 'latin1');
    expect(() => parsePreamble(big)).toThrow(expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }));
    const bad = (body: Uint8Array) => {
      const h = Buffer.from('PLSD\x02\0\0', 'latin1');
      h.writeUInt16BE(body.length, 5);
      return Buffer.concat([h, body]);
    };
    const statement = (tenant: string, direct: Parameters<typeof encodePreamble>[1]) =>
      wire.TunnelDirectStatement.encode({ tenant, direct }).finish();
    expect(() => parsePreamble(bad(statement('acme', { ...P, expiresAtMs: 0 })))).toThrow(
      expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }),
    );
    expect(() => parsePreamble(bad(statement('x'.repeat(500), P)))).toThrow(
      expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }),
    );
    expect(() => parsePreamble(bad(statement('acme', { ...P, engineKeySig: Buffer.alloc(0) })))).toThrow(
      expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }),
    );
    expect(() => parsePreamble(bad(wire.TunnelDirectStatement.encode({ tenant: 'acme' }).finish()))).toThrow(
      expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }),
    );
    expect(() => parsePreamble(bad(Buffer.from('{"tenant":"acme"}')))).toThrow(
      expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }),
    );
    expect(() => encodePreamble('acme', { ...P, engineName: 'n'.repeat(MAX_PREAMBLE_BYTES) })).toThrow(
      expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }),
    );
  });

  it('an opening is the preamble and one framed hello, nothing after it, and a first record no larger than a hello', () => {
    const hello = Buffer.concat([Buffer.from([1]), randomBytes(150)]);
    const opening = encodeOpening('acme', OFFER, hello);
    for (let n = 0; n < opening.length; n++) expect(parseOpening(opening.subarray(0, n))).toBeUndefined();
    const got = parseOpening(opening)!;
    expect(got.preamble).toEqual(P);
    expect(got.hello.equals(framedRecord(hello))).toBe(true);
    expect(() => parseOpening(Buffer.concat([opening, Buffer.from([0])]))).toThrow(
      expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }),
    );
    const huge = Buffer.concat([
      encodePreamble('acme', OFFER),
      Buffer.from([0, 0, (MAX_HELLO_BYTES + 1) >> 8, (MAX_HELLO_BYTES + 1) & 0xff]),
    ]);
    expect(() => parseOpening(huge)).toThrow(expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }));
  });
});

describe("main's statement and its renewal record", () => {
  const main = generateKeyPairSync('ed25519');
  const tenantKey = Buffer.alloc(32, 9).toString('base64');
  const now = 1_800_000_000_000;
  const signed = (p: Omit<DirectPreamble, 'engineKeySig'>, forTenantKey = tenantKey): DirectPreamble => ({
    ...p,
    engineKeySig: sign(
      null,
      engineDirectStatement(
        p.engineId,
        p.engineName,
        p.engineGroup,
        p.tenant,
        forTenantKey,
        Buffer.from(p.engineKey).toString('base64'),
        p.expiresAtMs,
      ),
      main.privateKey,
    ),
  });

  it('holds for the tenant named by name and public key, until it expires, and no longer than hosts accept', () => {
    const st = signed({ ...P, expiresAtMs: now + 60_000 });
    expect(statementProblem(st, tenantKey, main.publicKey, now)).toBeUndefined();
    expect(statementProblem(st, tenantKey, main.publicKey, now + 60_001)).toBe('ERR_DIRECT_STATEMENT_EXPIRED');
    // A later tenant of the same name has another public key: a statement made for the earlier one does not hold.
    expect(statementProblem(st, Buffer.alloc(32, 8).toString('base64'), main.publicKey, now)).toBe(
      'ERR_DIRECT_STATEMENT',
    );
    expect(statementProblem({ ...st, engineName: 'mallory' }, tenantKey, main.publicKey, now)).toBe(
      'ERR_DIRECT_STATEMENT',
    );
    // The group is main's word too: an engine can neither claim one nor drop the one main signed.
    expect(statementProblem({ ...st, engineGroup: 'a' }, tenantKey, main.publicKey, now)).toBe('ERR_DIRECT_STATEMENT');
    const grouped = signed({ ...P, engineGroup: 'a', expiresAtMs: now + 60_000 });
    expect(statementProblem(grouped, tenantKey, main.publicKey, now)).toBeUndefined();
    expect(statementProblem({ ...grouped, engineGroup: '' }, tenantKey, main.publicKey, now)).toBe(
      'ERR_DIRECT_STATEMENT',
    );
    expect(statementProblem({ ...grouped, engineGroup: 'b' }, tenantKey, main.publicKey, now)).toBe(
      'ERR_DIRECT_STATEMENT',
    );
    expect(
      statementProblem(
        signed({ ...P, expiresAtMs: now + MAX_DIRECT_STATEMENT_MS + 1 }),
        tenantKey,
        main.publicKey,
        now,
      ),
    ).toBe('ERR_DIRECT_STATEMENT_EXPIRED');
    expect(statementProblem({ ...st, engineKeySig: st.engineKeySig.subarray(1) }, tenantKey, main.publicKey, now)).toBe(
      'ERR_DIRECT_STATEMENT',
    );
    expect(
      statementProblem({ ...st, engineKeySig: 42 } as unknown as DirectPreamble, tenantKey, main.publicKey, now),
    ).toBe('ERR_DIRECT_STATEMENT');
  });

  it('a renewal record round-trips the statement, and a malformed one is refused', () => {
    const st = signed({ ...P, expiresAtMs: now + 60_000 });
    const rec = renewalRecord('acme', { ...st, endpoint: '127.0.0.1:7443', ttlMs: 60_000 });
    expect(rec[0]).toBe(RECORD_RENEWAL);
    expect(parseRenewal(rec)).toEqual(st);
    expect(() => parseRenewal(Buffer.concat([Buffer.from([RECORD_RENEWAL]), Buffer.from('{"tenant":1}')]))).toThrow(
      expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }),
    );
    expect(() =>
      parseRenewal(Buffer.concat([Buffer.from([RECORD_RENEWAL]), Buffer.alloc(MAX_PREAMBLE_BYTES + 1, 0x20)])),
    ).toThrow(expect.objectContaining({ code: 'ERR_DIRECT_PREAMBLE' }));
  });
});

describe('record stream', () => {
  it('reassembles records split at any point, and refuses an oversized or empty one', () => {
    const records = [randomBytes(1), randomBytes(300), randomBytes(70_000), randomBytes(5), randomBytes(2)];
    const stream = Buffer.concat(records.map(framedRecord));
    for (const step of [1, 3, 4, 7, 64, 65_536, stream.length]) {
      const got: Buffer[] = [];
      const r = new RecordReader(100_000, (parts) => got.push(Buffer.concat(parts)));
      for (let at = 0; at < stream.length; at += step) r.push(stream.subarray(at, at + step));
      expect(got.map(digest)).toEqual(records.map(digest)); // digests: deep equality of 70 KB buffers is slow
    }
    expect(() => new RecordReader(1000, () => undefined).push(framedRecord(randomBytes(1001)))).toThrow(
      expect.objectContaining({ code: 'ERR_DIRECT_RECORD_SIZE' }),
    );
    expect(() => new RecordReader(1000, () => undefined).push(Buffer.alloc(4))).toThrow(
      expect.objectContaining({ code: 'ERR_DIRECT_RECORD_SIZE' }),
    );
  });
});

/**
 * A direct session pair: the engine end sends with gathered writes, the tenant end in one piece; both through
 * RecordReader.
 */
function directPair() {
  const e = nacl.box.keyPair(),
    t = nacl.box.keyPair();
  const hs = engineHandshake(e, t.publicKey);
  const acc = tenantAccept(t, hs.hello, () => true);
  const ekeys = hs.finish(acc.reply);
  const ends: { engine?: TunnelSession; tenant?: TunnelSession } = {};
  const toTenant = new RecordReader(2 << 20, (parts) => ends.tenant!.onSealedParts(parts));
  const toEngine = new RecordReader(2 << 20, (parts) => ends.engine!.onSealedParts(parts));
  /** As a socket delivers: in reads of at most 64 KiB, which split records anywhere. */
  const reads = (r: RecordReader, b: Buffer) => {
    for (let at = 0; at < b.length; at += 65_536) r.push(b.subarray(at, at + 65_536));
  };
  const accepted: MuxStream[] = [];
  ends.engine = new TunnelSession({
    keys: ekeys,
    initiator: false,
    lengthPrefixed: true,
    maxWindow: DIRECT_MAX_STREAM_WINDOW,
    sendRecord: (r) => {
      const b = Buffer.from(r);
      setImmediate(() => reads(toTenant, b));
    },
    sendRecordv: (parts) => {
      const b = Buffer.concat(parts);
      setImmediate(() => reads(toTenant, b));
    },
    onOpen: (s) => {
      accepted.push(s);
      return true;
    },
  });
  ends.tenant = new TunnelSession({
    keys: acc.keys,
    initiator: true,
    lengthPrefixed: true,
    maxWindow: DIRECT_MAX_STREAM_WINDOW,
    sendRecord: (r) => {
      const b = Buffer.from(r);
      setImmediate(() => reads(toEngine, b));
    },
  });
  return { engine: ends.engine, tenant: ends.tenant, accepted };
}

describe('direct session', () => {
  it('carries stream data both ways intact, hand-framed and gathered on one side, and grows the window of a reader that keeps up', async () => {
    const { tenant, accepted } = directPair();
    const s = tenant.mux.open('x');
    const payload = randomBytes(8 * 1024 * 1024);
    await new Promise((r) => setImmediate(r));
    const far = accepted[0];
    const got: Buffer[] = [];
    far.on('data', (c: Buffer) => got.push(c));
    s.end(payload);
    await new Promise((r) => far.once('end', r));
    expect(createHash('sha256').update(Buffer.concat(got)).digest('hex')).toBe(
      createHash('sha256').update(payload).digest('hex'),
    );
    expect((far as unknown as { window: number }).window).toBeGreaterThan(DEFAULT_STREAM_WINDOW);
    // And back, from the gathered-write side.
    const back: Buffer[] = [];
    s.on('data', (c: Buffer) => back.push(c));
    const reply = randomBytes(300_000);
    far.end(reply);
    await new Promise((r) => s.once('end', r));
    expect(Buffer.concat(back).equals(reply)).toBe(true);
  });

  it("a paused reader's window does not grow: the sender stops at the initial window", async () => {
    const { tenant, accepted } = directPair();
    const s = tenant.mux.open('x');
    await new Promise((r) => setImmediate(r));
    const far = accepted[0];
    far.pause();
    s.write(randomBytes(16 * 1024 * 1024));
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    expect(far.readableLength).toBeLessThanOrEqual(DEFAULT_STREAM_WINDOW);
    expect((far as unknown as { window: number }).window).toBe(DEFAULT_STREAM_WINDOW);
    s.destroy();
  });
});

describe('sealed records in parts', () => {
  it('open the same as in one piece, wherever they are split; a flipped bit anywhere fails the record', () => {
    const e = nacl.box.keyPair(),
      t = nacl.box.keyPair();
    const hs = engineHandshake(e, t.publicKey);
    const acc = tenantAccept(t, hs.hello, () => true);
    const ek = hs.finish(acc.reply);
    const plain = randomBytes(200_000);
    for (const cuts of [[], [1], [15, 16, 17], [100_000], [200_000, 200_010], [199_999]]) {
      const sealed = Buffer.concat(ek.send.sealv([plain.subarray(0, 7), plain.subarray(7)]));
      const parts: Buffer[] = [];
      let from = 0;
      for (const c of [...cuts, sealed.length]) {
        parts.push(sealed.subarray(from, c));
        from = c;
      }
      expect(Buffer.concat(acc.keys.receive.openv(parts.filter((p) => p.length))).equals(plain)).toBe(true);
    }
    const sealed = Buffer.concat(ek.send.sealv([plain]));
    sealed[150_000] ^= 1;
    expect(() => acc.keys.receive.openv([sealed.subarray(0, 70_000), sealed.subarray(70_000)])).toThrow(
      expect.objectContaining({ code: 'ERR_TUNNEL_RECORD' }),
    );
  });
});

describe("main's offer of a host's endpoint", () => {
  it('keeps a named address, substitutes the address main sees for an unspecified one, refuses junk', () => {
    expect(directEndpoint('host1.example:7443', '10.0.0.5:5555')).toBe('host1.example:7443');
    expect(directEndpoint('0.0.0.0:7443', '10.0.0.5:5555')).toBe('10.0.0.5:7443');
    expect(directEndpoint('0.0.0.0:7443', '::ffff:10.0.0.5:5555')).toBe('10.0.0.5:7443');
    expect(directEndpoint('[::]:7443', '2001:db8::1:5555')).toBe('[2001:db8::1]:7443');
    for (const bad of ['', 'off', 'host', 'host:0', 'host:70000', 'a b:1'])
      expect(directEndpoint(bad, '10.0.0.5:5555')).toBeUndefined();
  });
});
