import { z } from 'zod';
import { AppError } from '../domain/errors.js';
import { sanitizeFilename } from '../domain/filename.js';
import { CLIENT_ID_PATTERN, newMediaPath, storageKey } from '../domain/ids.js';
import { MEDIA_KINDS, type MediaKind, type MediaSource } from '../domain/kinds.js';
import * as mediaRepo from '../db/repos/media.js';
import type { MediaRow } from '../db/repos/media.js';
import type { Runtime } from '../runtime.js';

/** The optional fields every way in accepts (multipart fields or JSON properties). */
export const mediaFieldsSchema = z.object({
  kind: z.enum(MEDIA_KINDS).optional(),
  name: z.string().max(255).optional(),
  description: z.string().max(4096).optional(),
  folderId: z.string().max(64).optional(),
  deviceId: z.string().regex(CLIENT_ID_PATTERN, 'letters, digits, _ and - (max 64)').optional(),
  ttlSeconds: z.coerce.number().int().positive().optional(),
  correlationId: z.string().max(256).optional(),
});
export type MediaFields = z.infer<typeof mediaFieldsSchema>;

/** Device and folder must exist in this app (another app's are 404 too, never 403). */
export async function checkOwnership(rt: Runtime, appId: string, f: MediaFields): Promise<void> {
  if (f.deviceId) {
    const { rows } = await rt.pool.query<{ status: string }>('SELECT status FROM devices WHERE app_id = $1 AND id = $2', [appId, f.deviceId]);
    if (rows[0]?.status !== 'active') throw new AppError('NOT_FOUND', `no device ${f.deviceId}`, { fields: { deviceId: 'not found' } });
  }
  if (f.folderId) {
    const { rowCount } = await rt.pool.query('SELECT 1 FROM folders WHERE app_id = $1 AND id = $2', [appId, f.folderId]);
    if (!rowCount) throw new AppError('NOT_FOUND', `no folder ${f.folderId}`, { fields: { folderId: 'not found' } });
  }
}

export function ttlFor(rt: Runtime, requested: number | undefined): number {
  return Math.min(requested ?? rt.config.DEFAULT_TTL_SECONDS, rt.config.MAX_RETENTION_SECONDS);
}

/**
 * Writes the row, then enqueues with job id = media id. If the queue is unreachable the row and the
 * staging object are removed and the client gets 503: nothing half-written. If the process dies
 * between the two, the reconciler enqueues rows left `queued`.
 */
export async function commitMedia(
  rt: Runtime,
  m: {
    appId: string;
    mediaId: string;
    kind: MediaKind | null;
    source: MediaSource;
    sourceUrl?: string | null;
    declaredMime: string | null;
    detectedMime?: string | null;
    originalName: string | null;
    inputBytes: number | null;
    stagingKey: string | null;
    fields: MediaFields;
  },
): Promise<MediaRow> {
  const owner = m.fields.deviceId ?? m.appId;
  let row: MediaRow;
  try {
    row = await mediaRepo.insertMedia(rt.pool, {
      id: m.mediaId,
      appId: m.appId,
      deviceId: m.fields.deviceId ?? null,
      folderId: m.fields.folderId ?? null,
      kind: m.kind as MediaKind,
      source: m.source,
      sourceUrl: m.sourceUrl ?? null,
      declaredMime: m.declaredMime,
      detectedMime: m.detectedMime ?? null,
      // Every API and CLI way in passes here, so this is where a client's name is made safe.
      originalName: sanitizeFilename(m.originalName),
      name: m.fields.name ?? null,
      description: m.fields.description ?? null,
      inputBytes: m.inputBytes,
      mediaPath: newMediaPath(owner),
      storageKey: storageKey(m.appId, m.mediaId),
      stagingKey: m.stagingKey,
      ttlSeconds: ttlFor(rt, m.fields.ttlSeconds),
      correlationId: m.fields.correlationId ?? null,
    });
  } catch (err) {
    if (m.stagingKey) await rt.store.delete([m.stagingKey]).catch(() => undefined);
    throw err;
  }
  const source = m.source === 'url' ? { type: 'url' as const, url: m.sourceUrl! } : { type: 'storage' as const, key: m.stagingKey! };
  try {
    await rt.queues.add('ingest', { v: 1, mediaId: m.mediaId, appId: m.appId, source, ...(m.fields.correlationId ? { correlationId: m.fields.correlationId } : {}) }, m.mediaId);
  } catch (err) {
    await mediaRepo.removeMedia(rt.pool, m.mediaId).catch((e) => rt.log.error({ err: e, mediaId: m.mediaId }, 'could not remove row after enqueue failure; the reconciler will enqueue it'));
    if (m.stagingKey) await rt.store.delete([m.stagingKey]).catch(() => undefined);
    throw err;
  }
  return row;
}
