/**
 * What main's API and each tenant's API read the same way before any route sees a request
 * (docs/rest.md#calling-it):
 * - a query parameter whose value is empty (`?q=&limit=`) is absent, so a template with blank slots works;
 * - an empty body with a JSON content type is no body, like a POST sent without one (`publish`, `share`).
 * Only the parsed query and body change: the URL and the body bytes stay as they came, so a signature
 * over them still verifies.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';

/** Deletes the parsed query's empty values; a repeated parameter keeps its non-empty values. */
export function dropEmptyQueryValues(query: unknown): void {
  if (!query || typeof query !== 'object') return;
  const q = query as Record<string, unknown>;
  for (const [k, v] of Object.entries(q)) {
    if (v === '') delete q[k];
    else if (Array.isArray(v) && v.includes('')) {
      const kept = v.filter((x) => x !== '');
      if (kept.length === 0) delete q[k];
      else q[k] = kept.length === 1 ? kept[0] : kept;
    }
  }
}

/**
 * Installs the empty-query rule as the first onRequest hook: it runs before the other hooks and the
 * querystring's schema validation, so they all see the same query.
 */
export function installEmptyQueryRule(app: FastifyInstance): void {
  app.addHook('onRequest', async (req: FastifyRequest) => dropEmptyQueryValues(req.query));
}

type JsonParser = (req: FastifyRequest, body: string, done: (err: Error | null, value?: unknown) => void) => void;

/**
 * Replaces fastify's JSON parser with the same one (secure-json-parse: `__proto__`/`constructor` refused)
 * that reads an empty body as no body. A route whose schema needs a body still answers 400 for it.
 */
export function acceptEmptyJsonBody(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error') as JsonParser;
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (body === '') return done(null, undefined);
    parseJson(req, body as string, done);
  });
}
