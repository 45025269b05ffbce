/**
 * The in-place AES-256-GCM of agent/tunnel/native (see aead.c for why), when it was built; undefined when it was
 * not (no C toolchain at install time) or PALISADE_NATIVE_AEAD=0. Callers then use Node's crypto: the
 * records are the same either way.
 */
import { createRequire } from 'node:module';
import { AEAD_ADDON } from '../program-files.js';

interface Addon {
  gcm(key: Buffer, nonce: Buffer, parts: Uint8Array[], encrypt: boolean, tag: Buffer): boolean;
}

function load(): Addon | undefined {
  if (process.env.PALISADE_NATIVE_AEAD === '0') return undefined;
  try {
    return createRequire(import.meta.url)(AEAD_ADDON) as Addon;
  } catch {
    return undefined; // not built: Node's crypto serves
  }
}

export const nativeGcm: Addon | undefined = load();

/** Which implementation seals tunnel records in this process, for logs and the benchmark. */
export function aeadBackend(): 'native' | 'node' {
  return nativeGcm ? 'native' : 'node';
}
