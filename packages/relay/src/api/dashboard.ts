// GET /: the web dashboard, and its assets. Everything is served from the relay (the page's
// script is bundled at build time with the shared fleet model and uPlot: scripts/build-dashboard.ts),
// so the page works with no internet access.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

const require = createRequire(import.meta.url);
const DASHBOARD = fileURLToPath(new URL('../../dashboard/', import.meta.url));
const BUNDLE = fileURLToPath(new URL('../dashboard/', import.meta.url));

const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: `${DASHBOARD}index.html`, type: 'text/html; charset=utf-8' },
  '/assets/app.js': { file: `${BUNDLE}app.js`, type: 'text/javascript; charset=utf-8' },
  '/assets/app.js.map': { file: `${BUNDLE}app.js.map`, type: 'application/json' },
  '/assets/app.css': { file: `${DASHBOARD}app.css`, type: 'text/css; charset=utf-8' },
  '/assets/uplot.min.css': { file: require.resolve('uplot/dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

export async function dashboardRoutes(app: FastifyInstance): Promise<void> {
  app.get('/favicon.ico', { config: { access: 'public' } }, async (_request, reply) => reply.status(204).send());
  for (const [path, { file, type }] of Object.entries(ASSETS)) {
    const body = readFileSync(file); // small, read once
    // Public: the page holds no data; it asks for a token and reads everything with it.
    app.get(path, { config: { access: 'public' } }, async (_request, reply) => {
      reply.header('content-type', type).header('cache-control', 'no-cache');
      // The page talks only to this relay, and no other site may frame it (it removes devices).
      if (path === '/') reply.header('content-security-policy', "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'").header('x-frame-options', 'DENY');
      return reply.send(body);
    });
  }
}
