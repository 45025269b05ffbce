/**
 * How the tenant reads request bodies. Both parsers keep the exact bytes (`req.rawBody`): main's
 * signature covers those bytes, not a re-serialisation, and hashing bytes avoids re-encoding a string.
 *
 * `application/x-ndjson` (one JSON value per line) is accepted only by routes that opt in with
 * `config.ndjsonMaxLines`, and arrives at the route as `{items: [...]}`, so the route's JSON schema
 * validates it like a JSON batch. It exists for bulk ingest: each line becomes a small string, where a
 * 200 KB JSON batch becomes one string in V8's large-object space, fresh pages whose faults measured
 * ~1 ms per batch on these VMs, the largest cost of a batch before the store's write.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BadParameterError, TooLargeError } from '#common/errors.js';
import { NDJSON } from '#common/media-types.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    ndjsonMaxLines?: number;
  }
  interface FastifyRequest {
    rawBody?: Buffer;
  }
}

type JsonParser = (req: FastifyRequest, body: string, done: (err: Error | null, value?: unknown) => void) => void;

export function installBodyParsers(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  // No route takes text: Fastify's own text/plain parser kept no raw bytes, so a JSON body sent as text/plain failed
  // the body hash and was audited as a forged request. Now it gets 415, as any other media type does.
  app.removeContentTypeParser('text/plain');
  const parseJson = app.getDefaultJsonParser('error', 'error') as JsonParser; // secure-json-parse: refuses __proto__/constructor
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    const raw = body as Buffer;
    req.rawBody = raw;
    if (raw.length === 0) return done(null, undefined);
    parseJson(req, raw.toString('utf8'), done);
  });
  app.addContentTypeParser(NDJSON, { parseAs: 'buffer' }, (req, body, done) => {
    const raw = body as Buffer;
    req.rawBody = raw;
    const maxLines = req.routeOptions.config?.ndjsonMaxLines;
    if (!maxLines) {
      return done(
        Object.assign(new Error(`${NDJSON} is not accepted here; send application/json`), {
          statusCode: 415,
          code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE',
        }),
      );
    }
    try {
      done(null, { items: parseLines(req, raw, maxLines, parseJson) });
    } catch (e) {
      done(e as Error);
    }
  });
}

/**
 * Bytes that must be present for a line to name `__proto__` or `constructor` as a key: the words
 * themselves, or a \u escape spelling part of them. A body without any can skip secure-json-parse's
 * per-line scans (a fifth of the parse of a 1 000-line batch) and use JSON.parse as it is.
 */
const SUSPECT = ['proto', 'constructor', '\\u'].map((w) => Buffer.from(w));

/** Each non-blank line parsed on its own; the first bad line is named (1-based) and nothing is kept. */
function parseLines(req: FastifyRequest, raw: Buffer, maxLines: number, parseJson: JsonParser): unknown[] {
  const plain = !SUSPECT.some((w) => raw.includes(w));
  const items: unknown[] = [];
  for (let start = 0, line = 1; start < raw.length; line++) {
    let end = raw.indexOf(10, start);
    if (end < 0) end = raw.length;
    const text = raw.toString('utf8', start, end > start && raw[end - 1] === 13 ? end - 1 : end);
    start = end + 1;
    if (text.trim() === '') continue;
    if (items.length === maxLines)
      throw new TooLargeError('ERR_BODY_TOO_LARGE', `body.items: more than ${maxLines} lines; split the batch`, {
        field: 'items',
      });
    const bad = (err: Error) =>
      new BadParameterError('ERR_BAD_BODY', `body line ${line} is not valid JSON: ${err.message}`, {
        field: `items/${items.length}`,
      });
    if (plain) {
      try {
        items.push(JSON.parse(text));
      } catch (e) {
        throw bad(e as Error);
      }
      continue;
    }
    parseJson(req, text, (err, value) => {
      if (err) throw bad(err);
      items.push(value);
    });
  }
  return items;
}
