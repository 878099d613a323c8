import type { FastifyInstance } from 'fastify';
import * as mediaRepo from '../../db/repos/media.js';
import { AppError } from '../../domain/errors.js';
import { verifyFileToken } from '../../domain/file-token.js';
import { MEDIA_PATH_PATTERN } from '../../domain/ids.js';
import type { Runtime } from '../../runtime.js';
import { authOf } from '../plugins/auth.js';
import { serveContent } from '../serve-content.js';
import { routeSchema } from '../plugins/openapi.js';
import { contentDocs } from './media.js';

export function registerDownloadRoutes(app: FastifyInstance, rt: Runtime): void {
  /**
   * Download by the `media_path` a webhook carried. The path is only ever a database lookup key:
   * anything but the exact path of this app's media (traversal, encodings, absolute, NUL) is 404.
   */
  app.get('/media', {
    config: { scope: 'media:read' },
    schema: routeSchema({
      summary: 'Download by the media_path a webhook carried', tags: ['media'],
      description: 'Anything but the exact path of this app’s media (traversal, encodings, absolute paths, NUL) is 404.',
      querystring: { type: 'object', required: ['path'], properties: { path: { type: 'string', example: 'media/<owner>/<uuid>-<HEX>.bin' } } },
      ...contentDocs,
    }),
  }, async (req, reply) => {
    const auth = authOf(req);
    const raw = (req.query as Record<string, unknown>).path;
    if (typeof raw !== 'string' || !MEDIA_PATH_PATTERN.test(raw)) throw new AppError('NOT_FOUND', 'no media at that path');
    const row = await mediaRepo.getMediaByPath(rt.pool, auth.appId, raw);
    if (!row) throw new AppError('NOT_FOUND', 'no media at that path');
    if (row.expires_at.getTime() <= Date.now()) throw new AppError('EXPIRED', 'media is past its expiry');
    return serveContent(rt, req, reply, row);
  });

  /** Temporary public URL: no auth header; signed, expiring, and dead once the media is deleted. */
  app.get('/v1/files/:token', {
    config: { public: true },
    schema: routeSchema({
      summary: 'The temporary public URL of ready media (no auth header; expires; dies with the media)', tags: ['media'], auth: 'public',
      params: { type: 'object', required: ['token'], properties: { token: { type: 'string' } } },
      ...contentDocs,
    }),
  }, async (req, reply) => {
    const { token } = req.params as { token: string };
    const check = verifyFileToken(rt.fileUrlSecret, token);
    if (!check.ok) {
      if (check.reason === 'expired') {
        const row = check.mediaId ? await mediaRepo.getMediaById(rt.pool, check.mediaId) : null;
        if (row && row.status !== 'deleting' && row.status !== 'deleted') throw new AppError('EXPIRED', 'this link has expired');
      }
      throw new AppError('NOT_FOUND', 'no such file');
    }
    const row = await mediaRepo.getMediaById(rt.pool, check.mediaId);
    if (!row || row.status === 'deleting' || row.status === 'deleted') throw new AppError('NOT_FOUND', 'no such file');
    return serveContent(rt, req, reply, row);
  });
}
