import { newEventId, stagingKey } from '../domain/ids.js';
import type { DeleteReason } from '../domain/kinds.js';
import { appsWithWebhook } from '../db/repos/apps.js';
import { auditDeletions } from '../db/repos/audit.js';
import { markDeleted, type MediaRow } from '../db/repos/media.js';
import { insertMediaDeletedDeliveries } from '../db/repos/webhook-deliveries.js';
import { withTransaction, type Pool, type PoolClient } from '../db/pool.js';
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

/** Every object a media may own: the stored object, its variants, its staging object. */
export function objectKeys(row: Pick<MediaRow, 'app_id' | 'id' | 'storage_key' | 'variants'>): string[] {
  return [row.storage_key, ...row.variants.map((v) => v.key), stagingKey(row.app_id, row.id)];
}

/**
 * Second phase of a deletion, for a row already marked `deleting`: bytes first, then the row is
 * marked deleted with one audit row. A crash in between leaves `deleting`, which the next sweep
 * finishes; deleting absent objects is success, so running twice is harmless.
 */
export async function finishDeletion(deps: PurgeDeps, row: MediaRow, reason: DeleteReason, opts: { bytesAlreadyDeleted?: boolean } = {}): Promise<boolean> {
  if (!opts.bytesAlreadyDeleted) await deps.store.delete(objectKeys(row));
  const done = await finishDeletions(deps, deps.pool, [{ row, reason }]);
  return done.length === 1;
}

/**
 * Marks rows whose bytes are gone `deleted`, in one transaction with exactly one audit row each and
 * their `media.deleted` webhook deliveries (the outbox: a crash after commit loses no event, the
 * reconciler enqueues pending deliveries). The update is conditional on `deleting`, so a row two
 * sweepers both finished is deleted, audited and announced once. Returns the rows this call deleted.
 */
export async function finishDeletions(
  deps: Pick<PurgeDeps, 'queues' | 'log'>,
  db: Pool | PoolClient,
  items: ReadonlyArray<{ row: MediaRow; reason: DeleteReason }>,
): Promise<MediaRow[]> {
  if (items.length === 0) return [];
  const reasonOf = new Map(items.map((i) => [i.row.id, i.reason]));
  const { rows: done, deliveries } = await withTransaction(db, async (c) => {
    const deliveries: string[] = [];
    const rows = await markDeleted(c, [...reasonOf.keys()]);
    if (rows.length === 0) return { rows, deliveries };
    await auditDeletions(c, rows.map((r) => ({ appId: r.app_id, mediaId: r.id, reason: reasonOf.get(r.id)!, bytes: r.stored_bytes ?? 0 })));
    const withHook = await appsWithWebhook(c, [...new Set(rows.map((r) => r.app_id))]);
    if (withHook.size > 0) {
      const announced = rows.filter((r) => withHook.has(r.app_id));
      const at = new Date();
      const events = announced.map((r) => {
        const id = newEventId();
        return { id, appId: r.app_id, mediaId: r.id, body: eventBody(id, 'media.deleted', r, reasonOf.get(r.id), at) };
      });
      await insertMediaDeletedDeliveries(c, events);
      deliveries.push(...events.map((e) => e.id));
    }
    return { rows, deliveries };
  });
  // Enqueued only once committed: a job must never name a delivery a rollback took back.
  if (deliveries.length > 0) {
    // Through Queues.add, so configured webhook attempts/backoff apply; concurrent adds share the connection's pipeline.
    const results = await Promise.allSettled(deliveries.map((id) => deps.queues.add('webhook', { v: 1, deliveryId: id })));
    const lost = results.filter((r) => r.status === 'rejected').length;
    if (lost > 0) deps.log.warn({ count: lost }, 'media.deleted webhook enqueue failed; the reconciler will retry');
  }
  return done;
}

/**
 * Deletes every object of `rows` in as few storage calls as the driver allows (DeleteObjects takes
 * 1000 keys). Returns the ids whose objects are all gone; a row with any key left stays `deleting`
 * for the next sweep. A key the store refuses outright (a malformed row) fails only its own row.
 */
export async function deleteObjectsOf(store: BlobStore, rows: readonly MediaRow[]): Promise<{ done: Set<string>; failed: Map<string, unknown> }> {
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
