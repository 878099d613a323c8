import type { Pool } from '../db/pool.js';
import type { MediaRow } from '../db/repos/media.js';
import { sweepSeconds, sweeperBytesFreedTotal, sweeperDeletionsTotal } from '../metrics.js';
import type { DeleteReason } from '../webhooks/emit.js';
import { finishDeletion, objectKeys, type PurgeDeps } from './purge-media.js';

export interface SweepOptions {
  batchSize: number;
  maxRetentionSeconds: number;
  dryRun?: boolean;
  /** Limit to one device (an immediate purge after the device was destroyed). */
  appId?: string;
  deviceId?: string;
  /** Safety bound on batches per run, so one run cannot hold the worker forever. */
  maxBatches?: number;
}

export interface SweepResult {
  dryRun: boolean;
  deleted: number;
  bytesFreed: number;
  byReason: Record<string, number>;
  failed: number;
  items: Array<{ id: string; appId: string; reason: DeleteReason; bytes: number }>;
}

/** Rows in `deleting` untouched this long were left by a crashed sweep (or a failed DELETE). */
const STUCK_DELETING_SECONDS = 30;

const REASON_SQL = `CASE
    WHEN m.device_id IS NOT NULL AND EXISTS (SELECT 1 FROM devices d WHERE d.app_id = m.app_id AND d.id = m.device_id AND d.status = 'destroyed') THEN 'device_destroyed'
    WHEN m.expires_at <= now() THEN 'expired'
    ELSE 'retention' END`;

const DUE_SQL = `m.status NOT IN ('deleting', 'deleted') AND (
    m.expires_at <= now()
    OR m.created_at <= now() - make_interval(secs => $2)
    OR (m.status = 'failed' AND m.updated_at <= now() - interval '1 hour')
    OR (m.status IN ('queued', 'processing') AND m.updated_at <= now() - interval '1 hour')
    OR (m.device_id IS NOT NULL AND EXISTS (SELECT 1 FROM devices d WHERE d.app_id = m.app_id AND d.id = m.device_id AND d.status = 'destroyed'))
  ) AND ($3::text IS NULL OR m.app_id = $3) AND ($4::text IS NULL OR m.device_id = $4)`;

/**
 * One retention sweep, two-phase and crash-safe: claim a batch of due rows (database clock,
 * SKIP LOCKED so concurrent sweepers split the work), mark them `deleting` in that short
 * transaction, delete their bytes, then mark each deleted with one audit row. Rows a crash left in
 * `deleting` are claimed again by the next run.
 */
export async function sweep(deps: PurgeDeps, opts: SweepOptions): Promise<SweepResult> {
  const end = sweepSeconds.startTimer();
  const result: SweepResult = { dryRun: !!opts.dryRun, deleted: 0, bytesFreed: 0, byReason: {}, failed: 0, items: [] };
  try {
    if (opts.dryRun) {
      const { rows } = await deps.pool.query<MediaRow & { reason: DeleteReason }>(
        `SELECT m.*, ${REASON_SQL} AS reason FROM media m WHERE ${DUE_SQL} ORDER BY m.expires_at LIMIT $1`,
        [Math.min(opts.batchSize * (opts.maxBatches ?? 20), 10_000), opts.maxRetentionSeconds, opts.appId ?? null, opts.deviceId ?? null],
      );
      for (const r of rows) record(result, r, r.reason);
      return result;
    }
    const maxBatches = opts.maxBatches ?? 200;
    for (let i = 0; i < maxBatches; i++) {
      const batch = await claimBatch(deps.pool, opts);
      if (batch.length === 0) break;
      await deleteBatch(deps, batch, result);
      if (batch.length < opts.batchSize) break;
    }
    return result;
  } finally {
    end();
  }
}

async function claimBatch(pool: Pool, opts: SweepOptions): Promise<Array<MediaRow & { reason: DeleteReason }>> {
  // Stuck `deleting` rows first (their reason is kept), then newly due ones.
  const stuck = await pool.query<MediaRow & { reason: DeleteReason }>(
    `UPDATE media m SET updated_at = now() FROM (
        SELECT id FROM media WHERE status = 'deleting' AND updated_at <= now() - make_interval(secs => $2)
          AND ($3::text IS NULL OR app_id = $3) AND ($4::text IS NULL OR device_id = $4)
        ORDER BY updated_at LIMIT $1 FOR UPDATE SKIP LOCKED) s
     WHERE m.id = s.id RETURNING m.*, COALESCE(m.delete_reason, 'expired') AS reason`,
    [opts.batchSize, STUCK_DELETING_SECONDS, opts.appId ?? null, opts.deviceId ?? null],
  );
  if (stuck.rows.length > 0) return stuck.rows;
  const { rows } = await pool.query<MediaRow & { reason: DeleteReason }>(
    `WITH due AS (
       SELECT m.id, ${REASON_SQL} AS reason FROM media m WHERE ${DUE_SQL}
       ORDER BY m.expires_at LIMIT $1 FOR UPDATE OF m SKIP LOCKED)
     UPDATE media m SET status = 'deleting', delete_reason = due.reason, updated_at = now()
     FROM due WHERE m.id = due.id RETURNING m.*, due.reason AS reason`,
    [opts.batchSize, opts.maxRetentionSeconds, opts.appId ?? null, opts.deviceId ?? null],
  );
  return rows;
}

async function deleteBatch(deps: PurgeDeps, batch: Array<MediaRow & { reason: DeleteReason }>, result: SweepResult): Promise<void> {
  // Bytes of the whole batch in one storage call (DeleteObjects batches on S3), then rows.
  try {
    await deps.store.delete(batch.flatMap((r) => objectKeys(r)));
  } catch (err) {
    deps.log.error({ err, count: batch.length }, 'sweep could not delete a batch of objects; rows stay deleting for the next run');
    result.failed += batch.length;
    return;
  }
  for (const row of batch) {
    try {
      if (await finishDeletion(deps, row, row.reason, { bytesAlreadyDeleted: true })) {
        record(result, row, row.reason);
        sweeperDeletionsTotal.labels(row.reason).inc();
        sweeperBytesFreedTotal.inc(row.stored_bytes ?? 0);
      }
    } catch (err) {
      result.failed++;
      deps.log.error({ err, mediaId: row.id }, 'sweep could not finish a deletion; retried next run');
    }
  }
}

function record(result: SweepResult, row: MediaRow, reason: DeleteReason): void {
  const bytes = row.stored_bytes ?? 0;
  result.deleted++;
  result.bytesFreed += bytes;
  result.byReason[reason] = (result.byReason[reason] ?? 0) + 1;
  if (result.items.length < 1000) result.items.push({ id: row.id, appId: row.app_id, reason, bytes });
}

/** Expired, never-used upload slots: their rows go (they never had bytes). */
export async function sweepSlots(pool: Pool): Promise<number> {
  const { rowCount } = await pool.query(`DELETE FROM upload_slots WHERE used_at IS NULL AND expires_at <= now() - interval '1 hour'`);
  return rowCount ?? 0;
}

