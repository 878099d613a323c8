import { stagingKey } from '../domain/ids.js';
import * as mediaRepo from '../db/repos/media.js';
import type { MediaRow } from '../db/repos/media.js';
import { audit } from '../db/repos/audit.js';
import { withTransaction, type Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { Queues } from '../queue/queues.js';
import type { BlobStore } from '../storage/blob-store.js';
import { emitMediaEvent, type DeleteReason } from '../webhooks/emit.js';

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
  // The row and its audit row change together: exactly one audit row per deleted media.
  const done = await withTransaction(deps.pool, async (c) => {
    const r = await mediaRepo.markDeleted(c, row.id);
    if (r) await audit(c, { appId: row.app_id, mediaId: row.id, event: 'media.deleted', reason, bytes: row.stored_bytes ?? 0 });
    return r;
  });
  if (!done) return false;
  await emitMediaEvent(deps, done, 'media.deleted', reason).catch((err) => deps.log.error({ err, mediaId: row.id }, 'could not emit media.deleted'));
  return true;
}
