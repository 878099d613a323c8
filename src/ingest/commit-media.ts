import type { Queryable } from '../db/pool.js';
import * as mediaRepo from '../db/repos/media.js';
import type { MediaRow, NewMedia } from '../db/repos/media.js';
import { sanitizeFilename } from '../domain/filename.js';
import { newMediaPath, storageKey } from '../domain/ids.js';
import type { MediaKind, MediaSource } from '../domain/kinds.js';
import { queuedSource } from '../domain/sources.js';
import type { Logger } from '../log.js';
import type { Queues } from '../queue/queues.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { MediaFields } from './media-fields.js';
import { ttlFor, type TtlConfig } from './ttl.js';

export interface CommitDeps {
  pool: Queryable;
  store: Pick<BlobStore, 'delete'>;
  queues: Pick<Queues, 'add'>;
  log: Logger;
  config: TtlConfig;
}

export interface StagedMedia {
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
}

/**
 * Writes the row, then enqueues with job id = media id. If the queue is unreachable the row and the
 * staging object are removed and the client gets 503: nothing half-written. If the process dies
 * between the two, the reconciler enqueues rows left `queued`.
 */
export async function commitMedia(deps: CommitDeps, m: StagedMedia): Promise<MediaRow> {
  let row: MediaRow;
  try {
    row = await mediaRepo.insertMedia(deps.pool, newMediaRow(deps.config, m));
  } catch (err) {
    if (m.stagingKey) await deps.store.delete([m.stagingKey]).catch(() => undefined);
    throw err;
  }
  const source = queuedSource({ sourceUrl: m.sourceUrl, stagingKey: m.stagingKey })!;
  try {
    await deps.queues.add('ingest', { v: 1, mediaId: m.mediaId, appId: m.appId, source, ...(m.fields.correlationId ? { correlationId: m.fields.correlationId } : {}) });
  } catch (err) {
    await mediaRepo.removeMedia(deps.pool, m.mediaId).catch((e: unknown) => deps.log.error({ err: e, mediaId: m.mediaId }, 'could not remove row after enqueue failure; the reconciler will enqueue it'));
    if (m.stagingKey) await deps.store.delete([m.stagingKey]).catch(() => undefined);
    throw err;
  }
  return row;
}

/**
 * The row of a new media, `queued`: where it will live (media path, storage key) and for how long.
 * Every way in builds it here, the worker too when a producer enqueued without a row.
 */
export function newMediaRow(config: TtlConfig, m: StagedMedia): NewMedia {
  return {
    id: m.mediaId,
    appId: m.appId,
    deviceId: m.fields.deviceId ?? null,
    folderId: m.fields.folderId ?? null,
    kind: m.kind as MediaKind,
    source: m.source,
    sourceUrl: m.sourceUrl ?? null,
    declaredMime: m.declaredMime,
    detectedMime: m.detectedMime ?? null,
    // Every way in passes here, so this is where a client's name is made safe.
    originalName: sanitizeFilename(m.originalName),
    name: m.fields.name ?? null,
    description: m.fields.description ?? null,
    inputBytes: m.inputBytes,
    mediaPath: newMediaPath(m.fields.deviceId ?? m.appId),
    storageKey: storageKey(m.appId, m.mediaId),
    stagingKey: m.stagingKey,
    ttlSeconds: ttlFor(config, m.fields.ttlSeconds),
    correlationId: m.fields.correlationId ?? null,
  };
}
