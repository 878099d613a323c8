import type { Pool } from '../db/pool.js';
import { deleteTusUpload, listExpiredTusUploads } from '../db/repos/tus-uploads.js';
import { tusUploadPrefix } from '../domain/ids.js';
import type { Logger } from '../log.js';
import type { BlobStore } from '../storage/blob-store.js';
import { deletePrefix } from '../storage/delete-prefix.js';

const BATCH = 200;

/**
 * Resumable uploads past their expiry (UPLOAD_SLOT_TTL_SECONDS after creation): their sealed parts
 * are deleted, then their rows. Bytes go first, so a failure leaves the row that finds them next
 * time. A finished upload's row has no parts left and just goes. Returns how many uploads went.
 */
export async function sweepExpiredTusUploads(deps: { pool: Pool; store: BlobStore; log: Logger }, opts: { maxBatches?: number } = {}): Promise<{ uploads: number; bytes: number; failed: number }> {
  const out = { uploads: 0, bytes: 0, failed: 0 };
  for (let b = 0; b < (opts.maxBatches ?? 50); b++) {
    const due = await listExpiredTusUploads(deps.pool, BATCH);
    let progressed = false;
    for (const u of due) {
      try {
        const gone = await deletePrefix(deps.store, tusUploadPrefix(u.app_id, u.id));
        await deleteTusUpload(deps.pool, u.id);
        out.uploads++;
        out.bytes += gone.bytes;
        progressed = true;
      } catch (err) {
        out.failed++;
        deps.log.warn({ err, uploadId: u.id }, 'could not remove an expired tus upload; retried next sweep');
      }
    }
    if (due.length < BATCH || !progressed) break;
  }
  return out;
}
