/**
 * DESIGN §1: the schema must compile with `protoc` as well as protobufjs. CI installs protoc from apt
 * (`protobuf-compiler`); a missing protoc fails this file rather than skipping it. Besides compiling, the
 * two implementations must agree on the bytes: protoc encodes from text format and our codec decodes,
 * and the reverse.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeEnvelope, encodeEnvelope } from '#common/codec.js';
import { REPO } from '../harness/processes.js';

const PROTO_DIR = join(REPO, 'proto');

interface Run { code: number | null; stdout: Buffer; stderr: string }

/** Runs protoc (never through a shell) with optional stdin; rejects only if it cannot be started. */
function protoc(args: string[], input?: Uint8Array | string): Promise<Run> {
  return new Promise((res, rej) => {
    const child = spawn('protoc', [`--proto_path=${PROTO_DIR}`, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.once('error', (e) => rej(new Error(`cannot run protoc (CI installs it with apt-get install protobuf-compiler): ${e.message}`)));
    child.once('close', (code) => res({ code, stdout: Buffer.concat(out), stderr }));
    child.stdin.end(input ?? '');
  });
}

describe('proto/palisade.proto with protoc', () => {
  it('compiles to a descriptor set with exit 0 and no warnings', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'protoc-'));
    try {
      const out = join(dir, 'palisade.pb');
      const r = await protoc([`--descriptor_set_out=${out}`, 'palisade.proto']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const descriptor = await readFile(out);
      expect(descriptor.includes(Buffer.from('palisade.wire.v1'))).toBe(true);
      expect(descriptor.includes(Buffer.from('Envelope'))).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('protoc-encoded bytes decode with our codec', async () => {
    const text = 'id: 1099511627776 reply_to: 3 tenant: "acme" command { name: "ping" args: "{}" deadline_ms: 1800000000000 roles: "admin" }';
    const r = await protoc(['--encode=palisade.wire.v1.Envelope', 'palisade.proto'], text);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const env = decodeEnvelope(r.stdout);
    expect(env.id).toBe(2 ** 40);
    expect(env.replyTo).toBe(3);
    expect(env.tenant).toBe('acme');
    expect(env.command).toMatchObject({ name: 'ping', deadlineMs: 1_800_000_000_000, roles: ['admin'] });
    expect(Buffer.from(env.command!.args!).toString()).toBe('{}');
  });

  it('our bytes decode with protoc', async () => {
    const bytes = encodeEnvelope({ id: 7, tenant: 'acme', error: { code: 'ERR_SHUTTING_DOWN', message: 'later', retryable: true, retryAfterMs: 1500 } });
    const r = await protoc(['--decode=palisade.wire.v1.Envelope', 'palisade.proto'], bytes);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const text = r.stdout.toString();
    for (const line of ['id: 7', 'tenant: "acme"', 'code: "ERR_SHUTTING_DOWN"', 'message: "later"', 'retryable: true', 'retry_after_ms: 1500']) {
      expect(text).toContain(line);
    }
  });
});
