/** The wire: codec round trips and golden bytes, limits, malformed input, forward compatibility, protoc. */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AgentKind, bodyKind, decodeEnvelope, encodeEnvelope, wire, type EnvelopeInit } from '#common/codec.js';
import { REPO } from '../harness/processes.js';

const run = promisify(execFile);

const SAMPLES: EnvelopeInit[] = [
  { id: 1, hello: { protocolMajor: 1, protocolMinor: 0, agentVersion: '0.1.0', kind: AgentKind.AGENT_KIND_HOST, name: 'h1' } },
  { replyTo: 1, welcome: { protocolMajor: 1, agentId: 'hst_1', heartbeatIntervalMs: 10_000, deadPeerTimeoutMs: 30_000, maxFrameBytes: 1 << 20, signingPublicKey: 'k' } },
  { id: 2, enroll: { enrolKey: 'pek_x.y', csrPem: 'csr', kind: AgentKind.AGENT_KIND_ENGINE, name: 'e1', protocolMajor: 1 } },
  { replyTo: 2, enrollOk: { agentId: 'eng_1', certPem: 'cert' } },
  { id: 2 ** 50 + 5, tenant: 'acme', command: { name: 'ping', args: Buffer.from('{}'), deadlineMs: Date.now(), signature: Buffer.alloc(64, 7), user: 'u', roles: ['admin'] } },
  { replyTo: 3, result: { ok: false, errorCode: 'ERR_X', errorMessage: 'no' } },
  { id: 4, event: { type: 'tenant.status', data: Buffer.from('[]') } },
  { id: 5, heartbeat: { sentAtMs: Date.now(), sysinfo: { hostname: 'h', memTotal: 17_179_869_184, cpuLoadPct: 12.5 } } },
  { error: { code: 'ERR_WIRE_VERSION', message: 'm', retryable: true, retryAfterMs: 1500 } },
  { streamOpen: { streamId: 1, target: '10.0.0.1:389', initialWindow: 262_144 } },
  { streamData: { streamId: 1, data: Buffer.from('abc') } },
  { streamWindow: { streamId: 1, credit: 4096 } },
  { streamClose: { streamId: 1, code: 'ERR_STREAM_RESET', message: 'x', half: false } },
];

describe('codec', () => {
  it('round-trips every body kind', () => {
    for (const s of SAMPLES) {
      const back = decodeEnvelope(encodeEnvelope(s));
      const kind = Object.keys(s).find((k) => !['id', 'replyTo', 'tenant'].includes(k))!;
      expect(bodyKind(back)).toBe(kind);
      expect(wire.Envelope.toObject(back, { longs: Number, bytes: String })).toEqual(wire.Envelope.toObject(wire.Envelope.fromObject(s), { longs: Number, bytes: String }));
    }
  });

  it('encodes a fixed Envelope to the same bytes as version 1.0 did (wire compatibility)', () => {
    const golden = '080710031a0461636d6572110a0470696e6712027b7d1880d095ffbc31';
    const env: EnvelopeInit = { id: 7, replyTo: 3, tenant: 'acme', command: { name: 'ping', args: Buffer.from('{}'), deadlineMs: 1_700_000_000_000 } };
    expect(Buffer.from(encodeEnvelope(env)).toString('hex')).toBe(golden);
    const back = decodeEnvelope(Buffer.from(golden, 'hex'));
    expect(back.id).toBe(7);
    expect(back.command?.deadlineMs).toBe(1_700_000_000_000);
  });

  it('gives 64-bit ids back as plain numbers, not Long objects', () => {
    const back = decodeEnvelope(encodeEnvelope({ id: 2 ** 50 + 9, replyTo: 2 ** 40, heartbeat: {} }));
    expect(typeof back.id).toBe('number');
    expect(back.id).toBe(2 ** 50 + 9);
    expect(back.replyTo).toBe(2 ** 40);
  });

  it('enforces the frame limit on encode and decode', () => {
    const big: EnvelopeInit = { streamData: { streamId: 1, data: Buffer.alloc(2000) } };
    expect(() => encodeEnvelope(big, 1000)).toThrow(expect.objectContaining({ code: 'ERR_WIRE_FRAME_TOO_BIG', category: 'too-large' }));
    expect(() => decodeEnvelope(encodeEnvelope(big), 1000)).toThrow(expect.objectContaining({ code: 'ERR_WIRE_FRAME_TOO_BIG' }));
  });

  it('refuses garbage and bodiless frames with a typed protocol error', () => {
    expect(() => decodeEnvelope(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]))).toThrow(expect.objectContaining({ code: 'ERR_WIRE_MALFORMED', category: 'protocol' }));
    expect(() => decodeEnvelope(Buffer.from([0x08, 0x01]))).toThrow(expect.objectContaining({ code: 'ERR_WIRE_MALFORMED' }));
  });

  it('ignores unknown fields (a newer peer may add some)', () => {
    const known = Buffer.from(encodeEnvelope({ id: 9, heartbeat: { sentAtMs: 5 } }));
    // field 999, wire type 0 (varint), value 1: tag = (999 << 3) | 0 = 7992 → varint 0xb8 0x3e
    const withUnknown = Buffer.concat([known, Buffer.from([0xb8, 0x3e, 0x01])]);
    const back = decodeEnvelope(withUnknown);
    expect(back.id).toBe(9);
    expect(back.heartbeat?.sentAtMs).toBe(5);
  });
});

describe('schema', () => {
  it('compiles with protoc as well as protobufjs', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'protoc-')), 'palisade.pb');
    const r = await run('protoc', [`--proto_path=${join(REPO, 'proto')}`, `--descriptor_set_out=${out}`, 'palisade.proto']);
    expect(r.stderr).toBe('');
  });
});
