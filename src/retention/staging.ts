import type { Pool } from '../db/pool.js';
import { findStagingOwners } from '../db/repos/media.js';
import type { Logger } from '../log.js';
import type { BlobStore } from '../storage/blob-store.js';
import { sweeperStagingDeletedTotal } from './metrics.js';

/** `staging/<appId>/<mediaId>.bin`, as `stagingKey` builds it. */
export const STAGING_KEY = /^staging\/([A-Za-z0-9_-]+)\/([A-Za-z0-9_-]+)\.bin$/;
/** Row states after which nothing needs the staging object any more. */
const SETTLED = new Set(['ready', 'failed', 'deleted']);
const CHUNK = 500;

export interface StagingSweepResult {
  deleted: number;
  bytes: number;
  failed: number;
  /** Up to 1000 of the keys deleted (or, in a dry run, that would be). */
  keys: string[];
}

/**
 * Staging objects older than `olderThanSeconds` whose media row does not exist (the upload died
 * between staging and insert, or the insert was rolled back) or has settled (the worker's own
 * clean-up failed). Rows still queued/processing keep theirs however long they wait: the worker
 * needs it, and it is what makes the row accepted work (see NAMES_NO_SOURCE in db/repos/media.ts); when such a
 * row is deleted (expiry, client, device) its staging goes with it. Keys that are not ours to parse
 * are left for `mediaflow orphans` to report.
 */
export async function sweepStaging(
  deps: { pool: Pool; store: BlobStore; log: Logger },
  opts: { olderThanSeconds?: number; dryRun?: boolean; now?: number } = {},
): Promise<StagingSweepResult> {
  const cutoff = (opts.now ?? Date.now()) - (opts.olderThanSeconds ?? 3600) * 1000;
  const result: StagingSweepResult = { deleted: 0, bytes: 0, failed: 0, keys: [] };
  let chunk: Array<{ key: string; size: number; appId: string; mediaId: string }> = [];

  const flush = async (): Promise<void> => {
    const batch = chunk;
    chunk = [];
    if (batch.length === 0) return;
    const rows = await findStagingOwners(deps.pool, batch.map((o) => o.mediaId));
    const byId = new Map(rows.map((r) => [r.id, r]));
    const doomed = batch.filter((o) => {
      const row = byId.get(o.mediaId);
      return !row || row.app_id !== o.appId || SETTLED.has(row.status);
    });
    if (doomed.length === 0) return;
    if (!opts.dryRun) {
      try {
        await deps.store.delete(doomed.map((o) => o.key));
      } catch (err) {
        result.failed += doomed.length;
        deps.log.warn({ err, count: doomed.length }, 'could not delete orphaned staging objects; retried next sweep');
        return;
      }
      sweeperStagingDeletedTotal.inc(doomed.length);
    }
    for (const o of doomed) {
      result.deleted++;
      result.bytes += o.size;
      if (result.keys.length < 1000) result.keys.push(o.key);
    }
  };

  for await (const obj of deps.store.list('staging/')) {
    if (obj.lastModified.getTime() > cutoff) continue;
    const m = STAGING_KEY.exec(obj.key);
    if (!m) continue;
    chunk.push({ key: obj.key, size: obj.size, appId: m[1]!, mediaId: m[2]! });
    if (chunk.length >= CHUNK) await flush();
  }
  await flush();
  return result;
}
