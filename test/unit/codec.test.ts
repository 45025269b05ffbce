/**
 * The frame codec (common/codec.ts): every body kind round-trips, a fixed Envelope keeps its golden bytes,
 * the frame limit holds both ways, bad input is a typed protocol error, uint64 fields are plain numbers,
 * and unknown fields from a newer peer are skipped. Pure: no I/O.
 */
import { describe, expect, it } from 'vitest';
import {
  AgentKind,
  bodyKind,
  decodeEnvelope,
  encodeEnvelope,
  TunnelFlow,
  wire,
  type Envelope,
  type EnvelopeInit,
} from '#common/codec.js';
import { ProtocolError, TooLargeError } from '#common/errors.js';

type ProtoBody = NonNullable<Envelope['body']>;

/** One sample per oneof member. Typed by the generated `body` union, so a new body kind fails to compile here. */
const SAMPLES: Record<ProtoBody, EnvelopeInit> = {
  hello: {
    id: 1,
    hello: {
      protocolMajor: 1,
      protocolMinor: 5,
      agentVersion: 'B',
      kind: AgentKind.AGENT_KIND_HOST,
      name: 'h1',
      // 1.5: how the agent's last upgrade ended, as its launcher recorded it.
      lastUpgrade: { attempt: '0123456789abcdef', version: 'C', ok: false, reason: 'exited', atMs: 1_800_000_000_000 },
    },
  },
  welcome: {
    replyTo: 1,
    welcome: {
      protocolMajor: 1,
      protocolMinor: 2,
      agentId: 'hst_1',
      heartbeatIntervalMs: 10_000,
      deadPeerTimeoutMs: 30_000,
      maxFrameBytes: 1 << 20,
      signingPublicKey: 'a2V5',
      revokedEngines: {
        engines: [
          { engineId: 'eng_1', tenant: 'acme', revokedAtMs: 1_800_000_000_000 },
          { engineId: 'eng_2', tenant: 'globex', revokedAtMs: 1_800_000_000_001 },
        ],
      },
    },
  },
  enroll: {
    id: 2,
    enroll: {
      enrolKey: 'pek_x.y',
      csrPem: '-----BEGIN CSR-----',
      kind: AgentKind.AGENT_KIND_ENGINE,
      name: 'e1',
      protocolMajor: 1,
      protocolMinor: 0,
      boxPublicKey: Buffer.alloc(32, 1),
    },
  },
  enrollOk: { replyTo: 2, enrollOk: { agentId: 'eng_1', certPem: 'cert', caPem: 'ca' } },
  command: {
    id: 2 ** 50 + 5,
    tenant: 'acme',
    command: {
      name: 'ping',
      args: Buffer.from('{"a":1}'),
      deadlineMs: 1_800_000_000_000,
      signature: Buffer.alloc(64, 7),
      user: 'usr_1',
      roles: ['admin', 'analyst'],
    },
  },
  result: { replyTo: 3, result: { ok: false, value: Buffer.from('null'), errorCode: 'ERR_X', errorMessage: 'no' } },
  event: { id: 4, event: { type: 'tenant.status', data: Buffer.from('[]') } },
  heartbeat: {
    id: 5,
    heartbeat: {
      sentAtMs: 1_700_000_000_123,
      sysinfo: {
        hostname: 'h',
        os: 'linux',
        cpuCores: 2,
        cpuLoadPct: 12.5,
        memTotal: 17_179_869_184,
        diskFree: 2 ** 45,
        uptimeS: 12.25,
      },
    },
  },
  error: { error: { code: 'ERR_SHUTTING_DOWN', message: 'm', retryable: true, retryAfterMs: 1500 } },
  streamOpen: { streamOpen: { streamId: 1, target: '10.0.0.1:389', initialWindow: 262_144 } },
  streamData: { streamData: { streamId: 1, data: Buffer.from('abc') } },
  streamWindow: { streamWindow: { streamId: 1, credit: 4096 } },
  streamClose: { streamClose: { streamId: 1, code: 'ERR_STREAM_RESET', message: 'x', half: true } },
  tunnel: {
    tenant: 'acme',
    tunnel: {
      engineId: 'eng_1',
      record: Buffer.from([1, 2, 3]),
      engineKey: Buffer.alloc(32, 2),
      engineKeySig: Buffer.alloc(64, 3),
      engineName: 'e1',
      directOk: true,
      directRenew: true,
      direct: {
        endpoint: '127.0.0.1:7443',
        engineId: 'eng_1',
        engineName: 'e1',
        engineKey: Buffer.alloc(32, 2),
        expiresAtMs: 1_800_000_060_000,
        engineKeySig: Buffer.alloc(64, 4),
        ttlMs: 60_000,
      },
    },
  },
  engineRevocations: {
    engineRevocations: { engines: [{ engineId: 'eng_1', tenant: 'acme', revokedAtMs: 1_800_000_000_000 }] },
  },
};

/** Plain, comparable form: 64-bit as numbers, bytes as base64, defaults included. */
const plain = (m: Envelope) => wire.Envelope.toObject(m, { longs: Number, bytes: String, defaults: true });

/** A varint as protobuf writes it (7 bits a byte, low first, high bit = more). */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

describe('codec', () => {
  it('round-trips every body kind with every field intact', () => {
    for (const [kind, sample] of Object.entries(SAMPLES) as [ProtoBody, EnvelopeInit][]) {
      const back = decodeEnvelope(encodeEnvelope(sample));
      expect(bodyKind(back), kind).toBe(kind);
      expect(plain(back), kind).toEqual(plain(wire.Envelope.fromObject(sample)));
    }
  });

  it('encodes a fixed Envelope to golden bytes, and decodes those bytes back (wire compatibility)', () => {
    // Derived by hand from proto/palisade.proto, not from the encoder:
    //   08 8080808080 20     id (1, varint) = 2^40
    //   10 03                reply_to (2, varint) = 3
    //   1a 04 "acme"         tenant (3, len)
    //   7a 06                result (15, len 6): 08 01 ok = true; 12 02 "{}" value
    const golden = '0880808080802010031a0461636d657a06080112027b7d';
    const env: EnvelopeInit = {
      id: 2 ** 40,
      replyTo: 3,
      tenant: 'acme',
      result: { ok: true, value: Buffer.from('{}') },
    };
    expect(Buffer.from(encodeEnvelope(env)).toString('hex')).toBe(golden);
    const back = decodeEnvelope(Buffer.from(golden, 'hex'));
    expect(bodyKind(back)).toBe('result');
    expect(back.id).toBe(2 ** 40);
    expect(back.replyTo).toBe(3);
    expect(back.tenant).toBe('acme');
    expect(back.result?.ok).toBe(true);
    expect(Buffer.from(back.result!.value!).toString()).toBe('{}');
  });

  it("encodes a host's Tunnel.flow (1.2) to golden bytes: an enum in field 8, no record", () => {
    //   1a 04 "acme"         tenant (3, len)
    //   ba 01 05             tunnel (23, len 5): 0a 01 "e" engine_id; 40 01 flow = TUNNEL_FLOW_PAUSE
    const golden = '1a0461636d65ba01050a01654001';
    expect(
      Buffer.from(
        encodeEnvelope({ tenant: 'acme', tunnel: { engineId: 'e', flow: TunnelFlow.TUNNEL_FLOW_PAUSE } }),
      ).toString('hex'),
    ).toBe(golden);
    const back = decodeEnvelope(Buffer.from(golden, 'hex'));
    expect(back.tunnel?.flow).toBe(TunnelFlow.TUNNEL_FLOW_PAUSE);
    expect(back.tunnel?.record?.length ?? 0).toBe(0);
  });

  it('enforces the frame limit on encode and on decode, exactly at the boundary', () => {
    const env: EnvelopeInit = { streamData: { streamId: 1, data: Buffer.alloc(2000, 9) } };
    const bytes = encodeEnvelope(env);
    expect(() => encodeEnvelope(env, bytes.length)).not.toThrow();
    expect(() => decodeEnvelope(bytes, bytes.length)).not.toThrow();
    for (const attempt of [
      () => encodeEnvelope(env, bytes.length - 1),
      () => decodeEnvelope(bytes, bytes.length - 1),
    ]) {
      expect(attempt).toThrow(TooLargeError);
      expect(attempt).toThrow(expect.objectContaining({ code: 'ERR_WIRE_FRAME_TOO_BIG', category: 'too-large' }));
    }
    // The default limit is 1 MiB.
    const huge: EnvelopeInit = { streamData: { streamId: 1, data: Buffer.alloc(1024 * 1024) } };
    expect(() => encodeEnvelope(huge)).toThrow(expect.objectContaining({ code: 'ERR_WIRE_FRAME_TOO_BIG' }));
  });

  it('refuses garbage, truncated and bodiless frames with ProtocolError ERR_WIRE_MALFORMED', () => {
    const valid = Buffer.from(encodeEnvelope(SAMPLES.command));
    const bad: [string, Uint8Array][] = [
      ['overlong varint', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
      ['wire type 7', Buffer.from([0x0f, 0x01])],
      ['truncated', valid.subarray(0, valid.length - 3)],
      ['length beyond the end', Buffer.from([0x72, 0x7f, 0x0a])],
      ['no body', Buffer.from([0x08, 0x01])],
      ['empty', Buffer.alloc(0)],
      ['text', Buffer.from('GET / HTTP/1.1\r\n\r\n')],
    ];
    for (const [what, bytes] of bad) {
      let thrown: unknown;
      try {
        decodeEnvelope(bytes);
      } catch (e) {
        thrown = e;
      }
      expect(thrown, what).toBeInstanceOf(ProtocolError);
      expect(thrown, what).toMatchObject({ code: 'ERR_WIRE_MALFORMED', category: 'protocol' });
    }
  });

  it('gives uint64 fields back as plain JS numbers, not Long objects', () => {
    const back = decodeEnvelope(
      encodeEnvelope({
        id: Number.MAX_SAFE_INTEGER,
        replyTo: 2 ** 40 + 1,
        heartbeat: { sentAtMs: 1_700_000_000_123, sysinfo: { memTotal: 2 ** 36 + 3 } },
      }),
    );
    for (const v of [back.id, back.replyTo, back.heartbeat!.sentAtMs, back.heartbeat!.sysinfo!.memTotal])
      expect(typeof v).toBe('number');
    expect(back.id).toBe(Number.MAX_SAFE_INTEGER);
    expect(back.replyTo).toBe(2 ** 40 + 1);
    expect(back.heartbeat!.sentAtMs).toBe(1_700_000_000_123);
    expect(back.heartbeat!.sysinfo!.memTotal).toBe(2 ** 36 + 3);
    const cmd = decodeEnvelope(encodeEnvelope(SAMPLES.command));
    expect(cmd.id).toBe(2 ** 50 + 5);
    expect(cmd.command!.deadlineMs).toBe(1_800_000_000_000);
  });

  it('decodes an Envelope carrying fields it does not know (a newer peer may add some)', () => {
    const known = Buffer.from(encodeEnvelope({ id: 9, tenant: 'acme', heartbeat: { sentAtMs: 5 } }));
    // field 999, wire type 0 (varint), value 300: tag = 999 << 3 | 0 = 7992.
    const unknownVarint = [...varint(7992), ...varint(300)];
    expect(unknownVarint.slice(0, 2)).toEqual([0xb8, 0x3e]);
    for (const bytes of [
      Buffer.concat([known, Buffer.from(unknownVarint)]),
      Buffer.concat([Buffer.from(unknownVarint), known]),
    ]) {
      const back = decodeEnvelope(bytes);
      expect(back.id).toBe(9);
      expect(back.tenant).toBe('acme');
      expect(bodyKind(back)).toBe('heartbeat');
      expect(back.heartbeat?.sentAtMs).toBe(5);
    }
  });

  it('decodes a body message carrying a field it does not know', () => {
    // A newer Hello with field 99 (string "cap"): tag 99 << 3 | 2 = 794.
    const hello = Buffer.concat([
      Buffer.from(wire.Hello.encode({ protocolMajor: 1, protocolMinor: 7, name: 'h1' }).finish()),
      Buffer.from([...varint(794), 3]),
      Buffer.from('cap'),
    ]);
    // Envelope.hello = 10
    const env = Buffer.concat([Buffer.from([...varint((10 << 3) | 2), ...varint(hello.length)]), hello]);
    const back = decodeEnvelope(env);
    expect(bodyKind(back)).toBe('hello');
    expect(back.hello).toMatchObject({ protocolMajor: 1, protocolMinor: 7, name: 'h1' });
  });
});
