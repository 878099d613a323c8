import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { AppError } from '../../domain/errors.js';
import { CLIENT_ID_PATTERN, newDeviceId, newFolderId } from '../../domain/ids.js';
import { withTransaction } from '../../db/pool.js';
import * as devicesRepo from '../../db/repos/devices.js';
import * as foldersRepo from '../../db/repos/folders.js';
import { markDeviceMediaDeleting } from '../../db/repos/media.js';
import type { Runtime } from '../../runtime.js';
import { authOf } from '../plugins/auth.js';
import { parseOr400 } from '../validation.js';
import { noContent, ok, routeSchema } from '../plugins/openapi.js';

const device = (r: devicesRepo.DeviceRow) => ({ id: r.id, name: r.name, status: r.status, createdAt: r.created_at.toISOString(), destroyedAt: r.destroyed_at?.toISOString() ?? null });

export const deviceBody = z.object({
  id: z.string().regex(CLIENT_ID_PATTERN, 'letters, digits, _ and - (max 64)').optional(),
  name: z.string().max(255).optional(),
});
export const folderBody = z.object({ name: z.string().min(1).max(255) });
const idParams = z.object({ id: z.string().min(1).max(64) });
const pageQuery = z.object({ page: z.coerce.number().int().min(0).default(0), limit: z.coerce.number().int().min(1).max(1000).default(100) });

/** Response shapes for the OpenAPI document. */
const deviceDoc = {
  type: 'object',
  properties: {
    id: { type: 'string' }, name: { type: 'string', nullable: true }, status: { type: 'string', enum: ['active', 'destroyed'] },
    createdAt: { type: 'string', format: 'date-time' }, destroyedAt: { type: 'string', format: 'date-time', nullable: true }, mediaCount: { type: 'integer' },
  },
};
const folderDoc = { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' }, mediaCount: { type: 'integer' }, createdAt: { type: 'string', format: 'date-time' } } };

export function registerDeviceRoutes(app: FastifyInstance, rt: Runtime): void {
  app.post('/v1/devices', {
    config: { scope: 'devices:write' },
    schema: routeSchema({ summary: 'Create a device', tags: ['devices'], body: deviceBody, responses: { 201: ok(deviceDoc, 'the device') }, errors: ['VALIDATION_FAILED', 'CONFLICT'] }),
  }, async (req, reply) => {
    const auth = authOf(req);
    const body = parseOr400(deviceBody, req.body ?? {});
    const id = body.id ?? newDeviceId();
    const created = await devicesRepo.insertDevice(rt.pool, auth.appId, id, body.name ?? null);
    if (!created) throw new AppError('CONFLICT', `device ${id} already exists (or was destroyed; ids are not reused)`);
    return reply.code(201).send({ success: true, data: device(created) });
  });

  app.get('/v1/devices/:id', {
    config: { scope: 'media:read' },
    schema: routeSchema({ summary: 'Get a device and its media count', tags: ['devices'], params: idParams, responses: { 200: ok(deviceDoc, 'the device') }, errors: ['VALIDATION_FAILED', 'NOT_FOUND'] }),
  }, async (req) => {
    const auth = authOf(req);
    const { id } = parseOr400(idParams, req.params);
    const found = await devicesRepo.getActiveDeviceWithMediaCount(rt.pool, auth.appId, id);
    if (!found) throw new AppError('NOT_FOUND', `no device ${id}`);
    return { success: true, data: { ...device(found), mediaCount: found.media_count } };
  });

  /**
   * Destroys the device: it and all its media answer 404 from this moment (rows marked
   * `deleting` in the same transaction), and an immediate purge job deletes the bytes and rows.
   * If the purge job cannot be enqueued, the next scheduled sweep finishes the work.
   */
  app.delete('/v1/devices/:id', {
    config: { scope: 'devices:write' },
    schema: routeSchema({
      summary: 'Destroy a device and purge all its media', tags: ['devices'], params: idParams,
      responses: { 204: noContent('destroyed; its media answer 404 from now on and are purged from storage') }, errors: ['VALIDATION_FAILED', 'NOT_FOUND'],
    }),
  }, async (req, reply) => {
    const auth = authOf(req);
    const { id } = parseOr400(idParams, req.params);
    const purged = await withTransaction(rt.pool, async (c) => {
      if (!(await devicesRepo.destroyDevice(c, auth.appId, id))) return null;
      return markDeviceMediaDeleting(c, auth.appId, id);
    });
    if (purged === null) throw new AppError('NOT_FOUND', `no device ${id}`);
    await rt.queues.add('retention-sweep', { v: 1, appId: auth.appId, deviceId: id }).catch((err) => {
      req.log.warn({ err: String(err), deviceId: id }, 'could not enqueue the device purge; the scheduled sweep will do it');
    });
    req.log.info({ deviceId: id, media: purged }, 'device destroyed; purge enqueued');
    return reply.code(204).send();
  });

  app.post('/v1/folders', {
    config: { scope: 'media:write' },
    schema: routeSchema({ summary: 'Create a folder', tags: ['folders'], body: folderBody, responses: { 201: ok(folderDoc, 'the folder') }, errors: ['VALIDATION_FAILED'] }),
  }, async (req, reply) => {
    const auth = authOf(req);
    const body = parseOr400(folderBody, req.body ?? {});
    const f = await foldersRepo.insertFolder(rt.pool, auth.appId, newFolderId(), body.name);
    return reply.code(201).send({ success: true, data: { id: f.id, name: f.name, createdAt: f.created_at.toISOString() } });
  });

  app.get('/v1/folders', {
    config: { scope: 'media:read' },
    schema: routeSchema({ summary: 'List folders', tags: ['folders'], querystring: pageQuery, responses: { 200: ok(folderDoc, 'a page of folders', { list: true }) }, errors: ['VALIDATION_FAILED'] }),
  }, async (req) => {
    const auth = authOf(req);
    const q = parseOr400(pageQuery, req.query);
    const rows = await foldersRepo.listFoldersWithMediaCount(rt.pool, auth.appId, q.limit, q.page * q.limit);
    // A page past the end has no row to carry the total.
    const total = rows[0]?.total ?? (await foldersRepo.countFolders(rt.pool, auth.appId));
    return {
      success: true,
      data: rows.map((f) => ({ id: f.id, name: f.name, mediaCount: f.media_count, createdAt: f.created_at.toISOString() })),
      page: { page: q.page, limit: q.limit, total },
    };
  });
}
