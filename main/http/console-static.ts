/**
 * Serves the web console (console/, built by Vite into dist/console) at `/`: index.html for `/` and every
 * client route (so a reload or a shared link works), and the hashed assets under /assets with a year's cache
 * (a new build has new names). Every console answer carries a strict Content-Security-Policy — scripts,
 * styles and connections from this origin only, no inline script or style, no framing — and no referrer.
 *
 * The files are read once at start-up into memory (the whole build is ~60 KiB). Not an API: the routes are
 * public (the console signs in through /api/v1/session like any client) and hidden from the OpenAPI document.
 * /api/v1, /docs and the agent WebSocket endpoints are untouched: client routes are a fixed list of first
 * path segments, and an unknown asset is a plain 404.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { NotFoundError } from '#common/errors.js';

/** The build's output, next to dist/main. */
export const CONSOLE_DIR = fileURLToPath(new URL('../../console/', import.meta.url));

/** First path segments the console's router owns (console/src/app.tsx). */
export const CONSOLE_ROUTES = ['overview', 'tenants', 'content', 'search', 'access', 'audit', 'signin'] as const;

export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "object-src 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.json': 'application/json; charset=utf-8',
};
const HASHED_ASSET_CACHE = 'public, max-age=31536000, immutable';

interface Asset {
  body: Buffer;
  type: string;
}

function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const assetDir = join(dir, 'assets');
  if (!existsSync(assetDir)) return assets;
  for (const f of readdirSync(assetDir)) {
    const type = TYPES[extname(f)];
    if (type) assets.set(f, { body: readFileSync(join(assetDir, f)), type });
  }
  return assets;
}

function consoleHeaders(reply: FastifyReply): FastifyReply {
  return reply
    .header('content-security-policy', CONSOLE_CSP)
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header('cross-origin-opener-policy', 'same-origin');
}

const notBuilt = Buffer.from(
  '<!doctype html><title>Palisade</title><p>The console is not built: run <code>npm run build</code>.</p>',
);

export function registerConsoleRoutes(app: FastifyInstance, dir = CONSOLE_DIR): void {
  const indexPath = join(dir, 'index.html');
  const index = existsSync(indexPath) ? readFileSync(indexPath) : notBuilt;
  const assets = loadAssets(dir);
  const opts = { config: { permission: 'public' as const }, schema: { hide: true } };

  const sendIndex = async (_req: unknown, reply: FastifyReply) =>
    consoleHeaders(reply).type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(index);
  app.get('/', opts, sendIndex);
  for (const r of CONSOLE_ROUTES) {
    app.get(`/${r}`, opts, sendIndex);
    app.get(`/${r}/*`, opts, sendIndex);
  }

  app.get('/assets/:file', opts, async (req, reply) => {
    const a = assets.get((req.params as { file: string }).file);
    if (!a) throw new NotFoundError('ERR_NOT_FOUND', 'no such console asset');
    return consoleHeaders(reply).type(a.type).header('cache-control', HASHED_ASSET_CACHE).send(a.body);
  });
}
