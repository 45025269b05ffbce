/**
 * The form of a main URL an agent dials (`mainUrls` in agent.json, `agent install --main-url`): `https://`
 * with a host, e.g. https://main.example.net:8443. The agent puts its own path on it (/enrol/v1,
 * /agent/v1), so only the scheme, host and port count; a path is tolerated, as main's `publicUrl` (what
 * bundles carry) has always allowed one. Syntax only: which URL to dial when is agent/main-url-rotation.ts's.
 */
import type { StringFormat } from './config-check.js';

export const MAIN_URL_EXPECTED = 'an https URL of main, https://HOST[:PORT]';

export function isMainUrl(text: string): boolean {
  if (!text.startsWith('https://')) return false;
  try {
    return new URL(text).hostname !== '';
  } catch {
    return false;
  }
}

/** For config schemas: `format: 'main-url'`. */
export const MAIN_URL_FORMAT: StringFormat = { test: isMainUrl, expected: MAIN_URL_EXPECTED };
