/**
 * The installer bundle format (common/bundle.ts) against what its module documents: a .tar.gz holding
 * `bundle.json` (the manifest) and `ca.pem`. Archives are written and read here by hand, as POSIX ustar
 * blocks (512-byte headers, octal fields, contents padded to 512, two zero blocks at the end), not with
 * the `tar` package the module uses, so a change in what main writes or the installer reads shows.
 * Real files in a temp dir (readBundle takes a path).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE_FORMAT, readBundle, writeBundle, type BundleManifest } from '#common/bundle.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-bundle-test-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** One ustar header block for a regular file. */
function ustarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0); // name[100], NUL-padded
  h.write('0000600\0', 100); // mode
  h.write('0000000\0', 108); // uid
  h.write('0000000\0', 116); // gid
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124); // size, octal
  h.write('00000000000\0', 136); // mtime
  h.write('        ', 148); // chksum counts as spaces while summing
  h.write('0', 156); // typeflag: regular file
  h.write('ustar\0', 257);
  h.write('00', 263);
  const sum = h.reduce((s, b) => s + b, 0);
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

const pad = (n: number) => Buffer.alloc((512 - (n % 512)) % 512);

function tarGz(files: [string, string][]): Buffer {
  const blocks = files.flatMap(([name, text]) => {
    const body = Buffer.from(text);
    return [ustarHeader(name, body.length), body, pad(body.length)];
  });
  return gzipSync(Buffer.concat([...blocks, Buffer.alloc(1024)]));
}

/** The regular files of an uncompressed ustar archive, in order; other entry types are listed by their flag. */
function entries(tarBytes: Buffer): { name: string; type: string; body: string }[] {
  const out: { name: string; type: string; body: string }[] = [];
  for (let at = 0; at + 512 <= tarBytes.length;) {
    const h = tarBytes.subarray(at, at + 512);
    if (h.every((b) => b === 0)) break;
    const field = (from: number, len: number) =>
      h
        .subarray(from, from + len)
        .toString('latin1')
        .replace(/\0.*$/s, '');
    const size = parseInt(field(124, 12).trim(), 8);
    out.push({
      name: field(0, 100),
      type: field(156, 1),
      body: tarBytes.subarray(at + 512, at + 512 + size).toString(),
    });
    at += 512 + size + pad(size).length;
  }
  return out;
}

const CA_PEM = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const MANIFEST: BundleManifest = {
  format: 1,
  kind: 'engine',
  name: 'e1',
  mainUrl: 'https://127.0.0.1:8443',
  enrolKey: `pek_${'A'.repeat(12)}.${'B'.repeat(43)}`,
  expiresAt: '2026-01-02T00:00:00.000Z',
  tenant: 'acme',
  tenantPublicKey: Buffer.alloc(32, 1).toString('base64'),
};

async function bundleFile(name: string, bytes: Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

describe('installer bundle', () => {
  it('is written as a gzipped tar of bundle.json (the manifest as indented JSON) and then ca.pem, nothing else', async () => {
    expect(BUNDLE_FORMAT).toBe(1);
    const bytes = await writeBundle({ manifest: MANIFEST, caPem: CA_PEM });
    expect(bytes.subarray(0, 2).toString('hex')).toBe('1f8b'); // gzip
    expect(entries(gunzipSync(bytes))).toEqual([
      { name: 'bundle.json', type: '0', body: JSON.stringify(MANIFEST, null, 2) },
      { name: 'ca.pem', type: '0', body: CA_PEM },
    ]);
  });

  it('written by hand to that format, is read as its manifest and CA', async () => {
    const path = await bundleFile(
      'by-hand.tar.gz',
      tarGz([
        ['bundle.json', JSON.stringify(MANIFEST)],
        ['ca.pem', CA_PEM],
      ]),
    );
    expect(await readBundle(path)).toEqual({ manifest: MANIFEST, caPem: CA_PEM });
  });

  it('read after other files, in two gzip members (as installer create writes it), or from its extracted directory', async () => {
    // The release part: a tar without its two end blocks, gzipped on its own (scripts/build-agent-release.mjs).
    const head = gunzipSync(tarGz([['install.sh', '#!/bin/sh\n']]));
    const bundle = { manifest: MANIFEST, caPem: CA_PEM };
    const joined = Buffer.concat([gzipSync(head.subarray(0, head.length - 1024)), await writeBundle(bundle)]);
    expect(await readBundle(await bundleFile('joined.tar.gz', joined))).toEqual(bundle);
    const extracted = join(dir, 'extracted');
    await mkdir(extracted);
    await writeFile(join(extracted, 'bundle.json'), JSON.stringify(MANIFEST));
    await writeFile(join(extracted, 'ca.pem'), CA_PEM);
    expect(await readBundle(extracted)).toEqual(bundle);
  });

  it('is refused (ERR_BUNDLE_INVALID) when of another format, missing a part, or not a .tar.gz', async () => {
    const cases: [string, Buffer][] = [
      [
        'format-2',
        tarGz([
          ['bundle.json', JSON.stringify({ ...MANIFEST, format: 2 })],
          ['ca.pem', CA_PEM],
        ]),
      ],
      [
        'no-kind',
        tarGz([
          ['bundle.json', JSON.stringify({ ...MANIFEST, kind: 'tenant' })],
          ['ca.pem', CA_PEM],
        ]),
      ],
      ['no-ca', tarGz([['bundle.json', JSON.stringify(MANIFEST)]])],
      ['no-manifest', tarGz([['ca.pem', CA_PEM]])],
      [
        'not-json',
        tarGz([
          ['bundle.json', 'format: 1'],
          ['ca.pem', CA_PEM],
        ]),
      ],
      ['not-gzip', Buffer.from('not a bundle')],
    ];
    for (const [name, bytes] of cases) {
      await expect(readBundle(await bundleFile(`${name}.tar.gz`, bytes)), name).rejects.toMatchObject({
        code: 'ERR_BUNDLE_INVALID',
        field: 'bundle',
      });
    }
  });
});
