// GET /v1/artifacts/{sha256}: the file, for an API token or a device the artifact is deployed to.
// Supports a single `Range`, and `ETag` (the sha256) with `If-None-Match`.

import type { FastifyInstance } from 'fastify';
import { OutpostError } from '@outpost/shared';
import type { ApiDeps } from './server.js';
import { corruptArtifact } from '../artifacts/hot-artifacts.js';

export function parseRange(header: string | undefined, size: number): { start: number; end: number } | undefined | 'invalid' {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return 'invalid';
  let start: number;
  let end: number;
  if (match[1] === '') {
    start = Math.max(0, size - Number(match[2])); // suffix: the last N bytes
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  return start > end || start >= size ? 'invalid' : { start, end };
}

export async function artifactRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { ctx, artifacts } = deps;
  // A rollout to thousands of devices must not serve thousands of downloads at once: past the
  // bound, a device waits its turn (first come, first served) instead of being sent away to poll
  // again: no retry storm, and nobody is unlucky for many rounds. Past the wait it is told to come
  // back (503 + Retry-After; agents add jitter).
  const { hot } = deps.artifactChecks;
  app.get<{ Params: { sha256: string } }>(
    '/v1/artifacts/:sha256',
    { config: { access: 'viewer+device' }, schema: { params: { type: 'object', required: ['sha256'], properties: { sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' } } } } },
    async (request, reply) => {
      const { sha256 } = request.params;
      const caller = request.caller!;
      const notFound = new OutpostError('OUTPOST_ERR_ARTIFACT_NOT_FOUND', `no artifact ${sha256} for this caller`);
      // A device sees only what is deployed to it; it cannot even learn whether other files exist.
      if (caller.kind === 'device' && !await ctx.store.artifactRefs.deviceMayFetch(caller.deviceId, sha256)) throw notFound;
      const size = await artifacts.size(sha256);
      if (size === undefined) throw artifacts.quarantined(sha256) ? corruptArtifact(sha256) : notFound;

      const etag = `"${sha256}"`;
      reply.header('etag', etag).header('accept-ranges', 'bytes').header('content-type', 'application/octet-stream');
      reply.header('cache-control', 'private, max-age=31536000, immutable');
      if (request.headers['if-none-match'] === etag) return reply.status(304).send();

      const range = parseRange(request.headers.range, size);
      if (range === 'invalid') {
        reply.header('content-range', `bytes */${size}`);
        throw new OutpostError('OUTPOST_ERR_RANGE_NOT_SATISFIABLE', `range "${request.headers.range}" is outside the file (${size} bytes)`);
      }
      const gone = new AbortController();
      const onClose = () => gone.abort();
      reply.raw.once('close', onClose);
      const slot = await deps.downloads.take(deps.downloadWaitMs, gone.signal);
      reply.raw.off('close', onClose);
      if (!slot) {
        reply.header('retry-after', '1');
        throw new OutpostError('OUTPOST_ERR_BUSY', `${deps.downloads.active} downloads under way and ${deps.downloads.waiting} waiting; retry in a second`);
      }
      reply.raw.once('close', () => deps.downloads.release());
      const bytes = await hot.get(sha256, size);
      if (range) {
        reply.status(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`).header('content-length', range.end - range.start + 1);
        return reply.send(bytes ? bytes.subarray(range.start, range.end + 1) : artifacts.read(sha256, range));
      }
      reply.header('content-length', size);
      return reply.send(bytes ?? artifacts.read(sha256));
    },
  );
}
