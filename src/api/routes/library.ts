import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import * as mediaRepo from '../../db/repos/media.js';
import { AppError } from '../../domain/errors.js';
import { sanitizeFilename } from '../../domain/filename.js';
import type { Runtime } from '../../runtime.js';
import { BlobNotFoundError } from '../../storage/blob-store.js';
import { openObject } from '../../storage/sealed-store.js';
import { authOf } from '../plugins/auth.js';
import { binary, mediaObjectSchema, ok, routeSchema } from '../plugins/openapi.js';
import { presentMedia } from '../present-media.js';
import { parseOr400 } from '../validation.js';
import { visibleMedia } from './media.js';

const idParams = z.object({ id: z.string().min(1).max(128) });
const patchBody = z
  .object({ folderId: z.string().min(1).max(64).nullable().optional(), name: z.string().max(255).nullable().optional() })
  .strict()
  .refine((b) => b.folderId !== undefined || b.name !== undefined, { message: 'send folderId and/or name' });

/** The media library's own needs beyond the core routes: moving media between folders, and video posters. */
export function registerLibraryRoutes(app: FastifyInstance, rt: Runtime): void {
  app.patch('/v1/media/:id', {
    config: { scope: 'media:write' },
    schema: routeSchema({
      summary: 'Move media to a folder (`folderId`, null for none) and/or rename it (`name`)', tags: ['media', 'folders'], params: idParams, body: patchBody,
      responses: { 200: ok(mediaObjectSchema, 'the media object') }, errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'EXPIRED'],
    }),
  }, async (req) => {
    const auth = authOf(req);
    const { id } = parseOr400(idParams, req.params);
    const body = parseOr400(patchBody, req.body ?? {});
    await visibleMedia(rt, auth.appId, id);
    const name = body.name === undefined || body.name === null ? body.name : sanitizeFilename(body.name) || null;
    const row = await mediaRepo.updateMediaFields(rt.pool, auth.appId, id, { folderId: body.folderId, name });
    if (!row) throw new AppError('NOT_FOUND', body.folderId ? `no folder ${body.folderId}` : `no media ${id}`);
    return { success: true, data: presentMedia(rt, req, row) };
  });

  app.get('/v1/media/:id/poster', {
    config: { scope: 'media:read' },
    schema: routeSchema({
      summary: 'The poster frame the worker made for a ready video (JPEG)', tags: ['media'], params: idParams,
      responses: { 200: binary('the poster frame', 'image/jpeg') }, errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'EXPIRED', 'STORAGE_UNAVAILABLE'],
    }),
  }, async (req, reply) => {
    const auth = authOf(req);
    const { id } = parseOr400(idParams, req.params);
    const row = await visibleMedia(rt, auth.appId, id);
    const poster = row.status === 'ready' ? row.variants.find((v) => v.name === 'poster') : undefined;
    if (!poster) throw new AppError('NOT_FOUND', `media ${id} has no poster`);
    let body;
    try {
      body = await openObject(rt.store, poster.key, rt.keyring, { purpose: 'variant', appId: row.app_id, mediaId: row.id });
    } catch (err) {
      if (err instanceof BlobNotFoundError) throw new AppError('NOT_FOUND', `media ${id} has no poster`);
      throw err;
    }
    return reply
      .header('content-type', poster.mimeType)
      .header('content-length', String(poster.bytes))
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'private, max-age=3600')
      .send(body);
  });
}
