import { newEventId, stagingKey } from '../domain/ids.js';
import type { MediaRow } from '../db/repos/media.js';
import { withTransaction, type Pool, type PoolClient } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { Queues } from '../queue/queues.js';
import { BlobDeleteError, InvalidBlobKeyError, type BlobStore } from '../storage/blob-store.js';
import { eventBody, type DeleteReason } from '../webhooks/emit.js';

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
  const { rows: done, deliveries } = await inTransaction(db, async (c) => {
    const deliveries: string[] = [];
    const { rows } = await c.query<MediaRow>(
      `UPDATE media SET status = 'deleted', deleted_at = now(), updated_at = now(), staging_key = NULL
       WHERE id = ANY($1::text[]) AND status = 'deleting' RETURNING *`,
      [[...reasonOf.keys()]],
    );
    if (rows.length === 0) return { rows, deliveries };
    await c.query(
      `INSERT INTO audit_events (app_id, media_id, event, reason, bytes)
       SELECT a, m, 'media.deleted', r, b FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS t(a, m, r, b)`,
      [rows.map((r) => r.app_id), rows.map((r) => r.id), rows.map((r) => reasonOf.get(r.id)!), rows.map((r) => r.stored_bytes ?? 0)],
    );
    const hooks = await c.query<{ id: string }>('SELECT id FROM apps WHERE id = ANY($1::text[]) AND webhook_url IS NOT NULL', [[...new Set(rows.map((r) => r.app_id))]]);
    if (hooks.rows.length > 0) {
      const withHook = new Set(hooks.rows.map((h) => h.id));
      const announced = rows.filter((r) => withHook.has(r.app_id));
      const ids = announced.map(() => newEventId());
      const at = new Date();
      await c.query(
        `INSERT INTO webhook_deliveries (id, app_id, event, media_id, body)
         SELECT i, a, 'media.deleted', m, b FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[]) AS t(i, a, m, b)`,
        [ids, announced.map((r) => r.app_id), announced.map((r) => r.id), announced.map((r, k) => JSON.stringify(eventBody(ids[k]!, 'media.deleted', r, reasonOf.get(r.id), at)))],
      );
      deliveries.push(...ids);
    }
    return { rows, deliveries };
  });
  // Enqueued only once committed: a job must never name a delivery a rollback took back.
  if (deliveries.length > 0) {
    // Through Queues.add, so configured webhook attempts/backoff apply; concurrent adds share the connection's pipeline.
    const results = await Promise.allSettled(deliveries.map((id) => deps.queues.add('webhook', { v: 1, deliveryId: id }, id)));
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

async function inTransaction<T>(db: Pool | PoolClient, fn: (c: Pick<PoolClient, 'query'>) => Promise<T>): Promise<T> {
  if (!('release' in db)) return withTransaction(db, fn);
  await db.query('BEGIN');
  try {
    const out = await fn(db);
    await db.query('COMMIT');
    return out;
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
