import { newEventId, stagingKey } from '../domain/ids.js';
import type { DeleteReason } from '../domain/kinds.js';
import { markDeletedAudited, type Deletion, type MediaRow } from '../db/repos/media.js';
import type { Pool, PoolClient } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { Queues } from '../queue/queues.js';
import { BlobDeleteError, InvalidBlobKeyError, type BlobStore } from '../storage/blob-store.js';
import { eventBody } from '../webhooks/emit.js';

export interface PurgeDeps {
  pool: Pool;
  store: BlobStore;
  queues: Queues;
  log: Logger;
}

/** What deleting a media needs of its row: where its objects are, and the fields its event carries. */
export type DeletableRow = Pick<
  MediaRow,
  'id' | 'app_id' | 'device_id' | 'kind' | 'media_path' | 'mime_type' | 'detected_mime' | 'size_bytes' | 'stored_bytes' | 'checksum'
  | 'error_code' | 'error_message' | 'storage_key' | 'variants'
>;

/** Every object a media may own: the stored object, its variants, its staging object. */
export function objectKeys(row: Pick<MediaRow, 'app_id' | 'id' | 'storage_key' | 'variants'>): string[] {
  return [row.storage_key, ...row.variants.map((v) => v.key), stagingKey(row.app_id, row.id)];
}

/**
 * Second phase of a deletion, for a row already marked `deleting`: bytes first, then the row is
 * marked deleted with one audit row. A crash in between leaves `deleting`, which the next sweep
 * finishes; deleting absent objects is success, so running twice is harmless.
 */
export async function finishDeletion(deps: PurgeDeps, row: DeletableRow, reason: DeleteReason, opts: { bytesAlreadyDeleted?: boolean } = {}): Promise<boolean> {
  if (!opts.bytesAlreadyDeleted) await deps.store.delete(objectKeys(row));
  const done = await finishDeletions(deps, deps.pool, [{ row, reason }]);
  return done.length === 1;
}

/**
 * Marks rows whose bytes are gone `deleted`, with exactly one audit row each and their
 * `media.deleted` webhook deliveries (the outbox: a crash after commit loses no event, the reconciler
 * enqueues pending deliveries), in one statement; then enqueues the deliveries. The update is
 * conditional on `deleting`, so a row two sweepers both finished is deleted, audited and announced
 * once. Returns the rows this call deleted.
 */
export async function finishDeletions(
  deps: Pick<PurgeDeps, 'queues' | 'log'>,
  db: Pool | PoolClient,
  items: ReadonlyArray<{ row: DeletableRow; reason: DeleteReason; announce?: boolean }>,
): Promise<Array<{ id: string; app_id: string; stored_bytes: number | null }>> {
  const { deleted, deliveries } = await markBatchDeleted(db, items);
  await enqueueDeliveries(deps, deliveries);
  return deleted;
}

/**
 * The commit of a batch (see `finishDeletions`), without the enqueue: a sweep enqueues a batch's
 * deliveries while its next batch runs. `announce: false` skips building the event of a row whose
 * app had no webhook when it was claimed; whether an event is written is decided at commit, by the
 * app's webhook then.
 */
export async function markBatchDeleted(
  db: Pool | PoolClient,
  items: ReadonlyArray<{ row: DeletableRow; reason: DeleteReason; announce?: boolean }>,
): Promise<{ deleted: Array<{ id: string; app_id: string; stored_bytes: number | null }>; deliveries: string[] }> {
  if (items.length === 0) return { deleted: [], deliveries: [] };
  const at = new Date();
  const byId = new Map<string, Deletion>();
  for (const { row, reason, announce } of items) {
    if (byId.has(row.id)) continue;
    let event: Deletion['event'] = null;
    if (announce !== false) {
      const id = newEventId();
      event = { id, body: eventBody(id, 'media.deleted', row, reason, at) };
    }
    byId.set(row.id, { id: row.id, reason, event });
  }
  const rows = await markDeletedAudited(db, [...byId.values()]);
  return {
    deleted: rows.map((r) => ({ id: r.id, app_id: r.app_id, stored_bytes: r.stored_bytes })),
    deliveries: rows.flatMap((r) => (r.delivery_id ? [r.delivery_id] : [])),
  };
}

/**
 * Enqueues committed deliveries (never before the commit: a job must never name a delivery a
 * rollback took back). Never throws: what is not enqueued stays pending for the reconciler.
 */
export async function enqueueDeliveries(deps: Pick<PurgeDeps, 'queues' | 'log'>, deliveries: readonly string[]): Promise<void> {
  if (deliveries.length === 0) return;
  // Through Queues.add, so configured webhook attempts/backoff apply; concurrent adds share the connection's pipeline.
  const results = await Promise.allSettled(deliveries.map((id) => deps.queues.add('webhook', { v: 1, deliveryId: id })));
  const lost = results.filter((r) => r.status === 'rejected').length;
  if (lost > 0) deps.log.warn({ count: lost }, 'media.deleted webhook enqueue failed; the reconciler will retry');
}

/**
 * Deletes every object of `rows` in as few storage calls as the driver allows (DeleteObjects takes
 * 1000 keys). Returns the ids whose objects are all gone; a row with any key left stays `deleting`
 * for the next sweep. A key the store refuses outright (a malformed row) fails only its own row.
 */
export async function deleteObjectsOf(store: BlobStore, rows: ReadonlyArray<Pick<MediaRow, 'app_id' | 'id' | 'storage_key' | 'variants'>>): Promise<{ done: Set<string>; failed: Map<string, unknown> }> {
  const done = new Set<string>();
  const failed = new Map<string, unknown>();
  const keysOf = new Map<string, string[]>();
  for (const row of rows) {
    try {
      keysOf.set(row.id, objectKeys(row));
    } catch (err) {
      failed.set(row.id, err);
    }
  }
  try {
    await store.delete([...keysOf.values()].flat());
    for (const id of keysOf.keys()) done.add(id);
    return { done, failed };
  } catch (err) {
    if (err instanceof BlobDeleteError) {
      const left = new Set(err.failedKeys);
      for (const [id, keys] of keysOf) {
        if (keys.some((k) => left.has(k))) failed.set(id, err);
        else done.add(id);
      }
      return { done, failed };
    }
    if (!(err instanceof InvalidBlobKeyError)) {
      for (const id of keysOf.keys()) failed.set(id, err);
      return { done, failed };
    }
  }
  // One bad key refused the whole call before anything was deleted: isolate it row by row.
  for (const [id, keys] of keysOf) {
    try {
      await store.delete(keys);
      done.add(id);
    } catch (err) {
      failed.set(id, err);
    }
  }
  return { done, failed };
}
