/**
 * The schema must compile with an independent protobuf compiler as well as protobufjs. The
 * independent one is buf (`@bufbuild/buf`, a dev dependency that ships its binary inside the npm
 * package, so `npm ci` is all a machine needs: no system protoc). Besides compiling, the two
 * implementations must agree on the bytes: buf encodes from text format and our codec decodes, and the
 * reverse.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { decodeEnvelope, encodeEnvelope } from '#common/codec.js';
import { REPO } from '../harness/processes.js';

const BUF = join(REPO, 'node_modules', '.bin', 'buf');
const SCHEMA = join('proto', 'palisade.proto');
const ENVELOPE = 'palisade.wire.v1.Envelope';

interface Run {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs buf (never through a shell) in the repository with optional stdin; rejects only if it cannot be started. */
function buf(args: string[], input?: Uint8Array | string): Promise<Run> {
  return new Promise((res, rej) => {
    const child = spawn(BUF, args, { cwd: REPO, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    child.once('error', (e) =>
      rej(new Error(`cannot run ${BUF} (npm ci installs it from @bufbuild/buf): ${e.message}`)),
    );
    child.once('close', (code) => res({ code, stdout: Buffer.concat(out), stderr }));
    child.stdin.end(input ?? '');
  });
}

describe('proto/palisade.proto with buf', () => {
  it('compiles to a descriptor set with exit 0 and no warnings', async () => {
    const r = await buf(['build', SCHEMA, '-o', '-#format=binpb']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.includes(Buffer.from('palisade.wire.v1'))).toBe(true);
    expect(r.stdout.includes(Buffer.from('Envelope'))).toBe(true);
  });

  it('buf-encoded bytes decode with our codec', async () => {
    const text =
      'id: 1099511627776 reply_to: 3 tenant: "acme" command { name: "ping" args: "{}" deadline_ms: 1800000000000 roles: "admin" }';
    const r = await buf(
      ['convert', SCHEMA, '--type', ENVELOPE, '--from', '-#format=txtpb', '--to', '-#format=binpb'],
      text,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const env = decodeEnvelope(r.stdout);
    expect(env.id).toBe(2 ** 40);
    expect(env.replyTo).toBe(3);
    expect(env.tenant).toBe('acme');
    expect(env.command).toMatchObject({ name: 'ping', deadlineMs: 1_800_000_000_000, roles: ['admin'] });
    expect(Buffer.from(env.command!.args!).toString()).toBe('{}');
  });

  it('our bytes decode with buf', async () => {
    const bytes = encodeEnvelope({
      id: 7,
      tenant: 'acme',
      error: { code: 'ERR_SHUTTING_DOWN', message: 'later', retryable: true, retryAfterMs: 1500 },
    });
    // JSON rather than text format out: Go's text printer varies its whitespace on purpose.
    const r = await buf(
      ['convert', SCHEMA, '--type', ENVELOPE, '--from', '-#format=binpb', '--to', '-#format=json'],
      bytes,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.toString())).toEqual({
      id: '7',
      tenant: 'acme',
      error: { code: 'ERR_SHUTTING_DOWN', message: 'later', retryable: true, retryAfterMs: 1500 },
    });
  });
});
