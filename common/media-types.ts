/**
 * Request body media types that cross main's relay: what main forwards by name and the host puts in a
 * header, checked the same way on both sides.
 */

/** One JSON value per line: bulk ingest batches (a tenant's `POST /incidents`). */
export const NDJSON = 'application/x-ndjson';

const PLAIN_MEDIA_TYPE = /^[a-z0-9][a-z0-9.+-]{0,63}\/[a-z0-9][a-z0-9.+-]{0,63}$/;

/** A bare `type/subtype` (no parameters, nothing that could break a header line). */
export function isPlainMediaType(t: unknown): t is string {
  return typeof t === 'string' && PLAIN_MEDIA_TYPE.test(t);
}
