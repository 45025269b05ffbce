/**
 * Golden bytes for every tunnel wire written by hand or framed around protobuf (the engine ⇄ tenant
 * session, proto/palisade.proto's header): the direct path's preamble head and record framing, the record
 * type byte with the handshake and renewal bodies, the sealed record's layout (AES-256-GCM, counter
 * nonces), the direct path's hand-framed StreamData head inside it, and the relayed Tunnel frame main
 * writes by hand. Expected bytes are derived by hand from the .proto (or, for the cipher, taken from the
 * GCM specification's test vectors), not from the encoders. Pure: no I/O.
 */
import { describe, expect, it } from 'vitest';
import { createDecipheriv } from 'node:crypto';
import { encodeEnvelope, encodeTunnelFrame } from '#common/codec.js';
import {
  encodePreamble,
  framedRecord,
  parsePreamble,
  parseRenewal,
  RecordReader,
  renewalRecord,
} from '../../agent/tunnel/tunnel-direct.js';
import {
  engineHelloRecord,
  parseEngineHello,
  parseTenantHello,
  tenantHelloRecord,
} from '../../agent/tunnel/tunnel-records.js';
import { SealingKey, type SessionKeys } from '../../agent/tunnel/tunnel-crypto.js';
import { nativeGcm } from '../../agent/tunnel/native-aead.js';
import { TunnelSession } from '../../agent/tunnel/tunnel-session.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => Buffer.from(h.replace(/\s+/g, ''), 'hex');

/** Main's TunnelDirect, with small values so the bytes below can be checked by eye. */
const DIRECT = {
  endpoint: 'h:1',
  engineId: 'e1',
  engineName: 'n',
  engineKey: bytes('aabb'),
  expiresAtMs: 300,
  engineKeySig: bytes('cc'),
  ttlMs: 5,
};
//   TunnelDirect:            0a 03 "h:1"  endpoint (1, len)
//                            12 02 "e1"   engine_id (2, len)
//                            1a 01 "n"    engine_name (3, len)
//                            22 02 aabb   engine_key (4, len)
//                            28 ac02      expires_at_ms (5, varint) = 300 = 0x2c | 0x80, 300 >> 7 = 2
//                            32 01 cc     engine_key_sig (6, len)
//                            38 05        ttl_ms (7, varint)                                   = 24 bytes
//   TunnelDirectStatement:   0a 04 "acme" tenant (1, len); 12 18 <TunnelDirect> direct (2, len)  = 32 bytes
const STATEMENT = '0a0461636d65 1218 0a03683a31 12026531 1a016e 2202aabb 28ac02 3201cc 3805';

describe('direct path: preamble', () => {
  it('is "PLSD", version 2, a u16 BE length, then TunnelDirectStatement with main\'s TunnelDirect as it came', () => {
    const golden = `504c5344 02 0020 ${STATEMENT}`;
    expect(hex(encodePreamble('acme', DIRECT))).toBe(hex(bytes(golden)));
    const back = parsePreamble(Buffer.concat([bytes(golden), bytes('00000001')]))!;
    expect(back.preamble).toEqual({
      tenant: 'acme',
      engineId: 'e1',
      engineName: 'n',
      engineGroup: '',
      engineKey: bytes('aabb'),
      expiresAtMs: 300,
      engineKeySig: bytes('cc'),
    });
    expect(hex(back.rest)).toBe('00000001');
  });

  it("carries the engine's group (1.7) as engine_group, after the fields an ungrouped engine's statement has", () => {
    //   TunnelDirect: the 24 bytes above, then 42 01 "g" engine_group (8, len) = 27 bytes (0x1b); statement 35 (0x23)
    const golden = `504c5344 02 0023 0a0461636d65 121b 0a03683a31 12026531 1a016e 2202aabb 28ac02 3201cc 3805 420167`;
    expect(hex(encodePreamble('acme', { ...DIRECT, engineGroup: 'g' }))).toBe(hex(bytes(golden)));
    expect(parsePreamble(bytes(golden))!.preamble.engineGroup).toBe('g');
  });
});

describe('direct path: records', () => {
  it('each record is a u32 BE length, then the record; a stream of them splits back into the same records', () => {
    expect(hex(framedRecord(bytes('010203')))).toBe('00000003010203');
    const got: string[] = [];
    const reader = new RecordReader(1024, (parts) => got.push(hex(Buffer.concat(parts))));
    for (const b of bytes('00000003 010203 00000001 02')) reader.push(Buffer.of(b));
    expect(got).toEqual(['010203', '02']);
  });

  it('a renewal record is type 3, then the same TunnelDirectStatement as the preamble', () => {
    const golden = `03 ${STATEMENT}`;
    expect(hex(renewalRecord('acme', DIRECT))).toBe(hex(bytes(golden)));
    expect(parseRenewal(bytes(golden)).expiresAtMs).toBe(300);
  });
});

describe('handshake records', () => {
  it('are type 1, then TunnelEngineHello or TunnelTenantHello', () => {
    // engine_static (1) 01; engine_eph (2) 02; nonce (3) 03; box (4) 04 05 — each a len field.
    const engine = '01 0a0101 120102 1a0103 22020405';
    expect(
      hex(
        engineHelloRecord({
          engineStatic: bytes('01'),
          engineEph: bytes('02'),
          nonce: bytes('03'),
          box: bytes('0405'),
        }),
      ),
    ).toBe(hex(bytes(engine)));
    expect(hex(parseEngineHello(bytes(engine)).box)).toBe('0405');
    // tenant_eph (1) 07; nonce (2) 08; box (3) 09.
    const tenant = '01 0a0107 120108 1a0109';
    expect(hex(tenantHelloRecord({ tenantEph: bytes('07'), nonce: bytes('08'), box: bytes('09') }))).toBe(
      hex(bytes(tenant)),
    );
    expect(hex(parseTenantHello(bytes(tenant)).tenantEph)).toBe('07');
    // A tenant before 1.11 names no protocol_minor: read as 0. From 1.11, protocol_minor (4) as a varint.
    expect(parseTenantHello(bytes(tenant)).protocolMinor).toBe(0);
    const withMinor = tenantHelloRecord({
      tenantEph: bytes('07'),
      nonce: bytes('08'),
      box: bytes('09'),
      protocolMinor: 11,
    });
    expect(hex(withMinor)).toBe(hex(bytes(`${tenant} 200b`)));
    expect(parseTenantHello(withMinor).protocolMinor).toBe(11);
    expect(() => parseEngineHello(bytes('02 0a0101'))).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_HELLO' }));
    expect(() => parseEngineHello(bytes('01 0aff'))).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_HELLO' }));
  });
});

/**
 * The GCM specification's test case 14 (McGrew & Viega): AES-256, key and IV zero, one zero block. A
 * session's first record has nonce 0 (the counter), so it is exactly this.
 */
const ZERO_KEY = Buffer.alloc(32);
const TC14 = {
  plain: Buffer.alloc(16),
  cipher: 'cea7403d4d606b6e074ec5d3baf39d18',
  tag: 'd0d1c8a799996bf0265b98b5d48ab919',
};

describe('sealed records', () => {
  it('are type 2, the AES-256-GCM ciphertext, then its 16-byte tag; the first nonce is zero', () => {
    expect(hex(new SealingKey(ZERO_KEY, null).seal(TC14.plain, Uint8Array.of(2)))).toBe(`02${TC14.cipher}${TC14.tag}`);
    expect(
      hex(Buffer.concat(new SealingKey(ZERO_KEY, null).sealv([TC14.plain.subarray(0, 5), TC14.plain.subarray(5)]))),
    ).toBe(TC14.cipher + TC14.tag);
    if (nativeGcm)
      expect(hex(Buffer.concat(new SealingKey(ZERO_KEY, nativeGcm).sealv([Buffer.alloc(16)], true)))).toBe(
        TC14.cipher + TC14.tag,
      );
  });

  it("the nonce is 4 zero bytes and the direction's record count as u64 BE", () => {
    const k = new SealingKey(ZERO_KEY, null);
    k.seal(Buffer.alloc(1));
    const second = k.seal(Buffer.from('x'));
    const d = createDecipheriv('aes-256-gcm', ZERO_KEY, bytes('00000000 0000000000000001'), { authTagLength: 16 });
    d.setAuthTag(second.subarray(1));
    expect(Buffer.concat([d.update(second.subarray(0, 1)), d.final()]).toString()).toBe('x');
  });
});

/** A session that seals with the zero key and hands its records over as they would go out. */
function capture(direct: boolean) {
  const records: Buffer[] = [];
  const keys: SessionKeys = { send: new SealingKey(ZERO_KEY, null), receive: new SealingKey(ZERO_KEY, null) };
  const session = new TunnelSession({
    keys,
    initiator: true,
    sendRecord: (r) => records.push(Buffer.from(r)),
    ...(direct
      ? { lengthPrefixed: true, sendRecordv: (parts: Uint8Array[]) => records.push(Buffer.concat(parts)) }
      : {}),
  });
  /** The plaintext of the n-th record (a counter nonce: records open in order from the first). */
  const plain = (n: number, headBytes: number) => {
    const r = records[n];
    const nonce = Buffer.alloc(12);
    nonce.writeUInt32BE(n, 8);
    const d = createDecipheriv('aes-256-gcm', ZERO_KEY, nonce, { authTagLength: 16 });
    d.setAuthTag(r.subarray(r.length - 16));
    return Buffer.concat([d.update(r.subarray(headBytes, r.length - 16)), d.final()]);
  };
  return { session, records, plain };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('stream frames inside sealed records', () => {
  it('relayed: type 2, then the sealed Envelope{stream_open} and Envelope{stream_data}', async () => {
    const { session, records, plain } = capture(false);
    session.mux.open('t').write('abc');
    await tick();
    expect(records.map((r) => r[0])).toEqual([2, 2]);
    // stream_open (19, len 9): stream_id 1; target "t"; initial_window 393216 = 80 80 18.
    expect(hex(plain(0, 1))).toBe('9a0109 0801 120174 18808018'.replace(/ /g, ''));
    // stream_data (20, len 7): stream_id 1; data "abc".
    expect(hex(plain(1, 1))).toBe('a20107 0801 1203616263'.replace(/ /g, ''));
  });

  it('direct: the u32 BE record length and type 2 in front; the StreamData head written by hand is the same bytes', async () => {
    const { session, records, plain } = capture(true);
    const s = session.mux.open('t');
    s.write('abc');
    await tick();
    // 1 type byte + 10 bytes of Envelope + 16 of tag = 27.
    expect(hex(records[1].subarray(0, 5))).toBe('0000001b02');
    expect(hex(plain(1, 5))).toBe('a201070801' + '1203616263');
    // A large write goes out as a gathered write: the same head, its length a two-byte varint.
    const big = Buffer.alloc(3000, 0x61);
    s.write(big);
    await tick();
    const len = 1 + (2 + 2 + 2 + 1 + 2 + 3000) + 16; // type, a2 01, envelope length, 08 01, 12, data length, data, tag
    expect(records[2].readUInt32BE(0)).toBe(len);
    expect(records[2][4]).toBe(2);
    // stream_data (20) of 2 + 1 + 2 + 3000 = 3005 = bd 17 bytes: 08 01, 12 b8 17 (3000), the data.
    expect(hex(plain(2, 5).subarray(0, 9))).toBe('a201bd170801' + '12b817');
    expect(plain(2, 5).subarray(9).equals(big)).toBe(true);
    s.destroy();
  });
});

describe("main's relayed Tunnel frame", () => {
  it('is written by hand as the bytes protobufjs writes for Envelope{tenant, tunnel{engine_id, record}}', () => {
    // tenant (3, len) "acme"; tunnel (23, len 8) = ba 01 08: engine_id (1) "e"; record (2) 01 02 03.
    const golden = '1a0461636d65 ba0108 0a0165 1203010203';
    expect(hex(encodeTunnelFrame('acme', 'e', bytes('010203')))).toBe(hex(bytes(golden)));
    expect(hex(encodeEnvelope({ tenant: 'acme', tunnel: { engineId: 'e', record: bytes('010203') } }))).toBe(
      hex(bytes(golden)),
    );
  });
});
