import type { Pool } from '../db/pool.js';
import { claimAbandonedDeleting, claimDue, countBacklog, previewDue, type ClaimedRow, type SweepScope } from '../db/repos/media.js';
import { deleteExpiredUnusedSlots } from '../db/repos/upload-slots.js';
import type { DeleteReason } from '../domain/kinds.js';
import { sweepSeconds, sweeperBytesFreedTotal, sweeperDeletionsTotal } from '../metrics.js';
import { acquireLease } from './lease.js';
import { sweepBacklog, sweepBatchSeconds } from './metrics.js';
import { deleteObjectsOf, enqueueDeliveries, markBatchDeleted, type PurgeDeps } from './purge-media.js';
import { sweepStaging } from './staging.js';

export interface SweepOptions {
  batchSize: number;
  maxRetentionSeconds: number;
  dryRun?: boolean;
  /** Limit to one app or device (an immediate purge after the device was destroyed). */
  appId?: string;
  deviceId?: string;
  /** Safety bound on batches per run, so one run cannot hold the worker forever. */
  maxBatches?: number;
  /** Also delete orphaned staging objects (default: on for unscoped sweeps). */
  staging?: boolean;
  /** Batches of due rows worked on at once, each with its own lease (default 2). */
  concurrency?: number;
  /** A batch's lease, renewed while it runs; a killed sweeper's rows are taken over once it lapses (SWEEP_LEASE_SECONDS). */
  leaseSeconds?: number;
}

export interface SweepResult {
  dryRun: boolean;
  /** Media deleted (or, in a dry run, due: the exact count, not capped by `items`). */
  deleted: number;
  bytesFreed: number;
  byReason: Record<string, number>;
  /** Media whose deletion failed this run; they stay `deleting` and the next run retries them. */
  failed: number;
  /** Up to 1000 of the media deleted (or due). */
  items: Array<{ id: string; appId: string; reason: DeleteReason; bytes: number }>;
  staging: { deleted: number; bytes: number; failed: number };
  /** Due media not yet deleted after this run. */
  backlog: number;
  batches: number;
  /** The longest a batch held its lease (claim → bytes deleted → rows committed). */
  longestBatchMs: number;
  /** The longest single transaction a batch ran (its finishing commit). */
  longestTransactionMs: number;
}

const ITEMS_KEPT = 1000;
/** Batches worked on at once by one sweep (see `SweepOptions.concurrency`). */
export const DEFAULT_SWEEP_LANES = 2;

/**
 * One retention sweep, two-phase and crash-safe. Each batch takes a lease (a row with an expiry,
 * renewed while the batch runs; no session state), claims due rows with SKIP LOCKED by the database clock and marks them
 * `deleting` in short statements, deletes their bytes, then marks them `deleted` with one audit row
 * each in one transaction. Rows another sweeper is working on are skipped; rows a dead sweeper left
 * `deleting` are taken over first. No transaction or lock outlives its batch.
 */
export async function sweep(deps: PurgeDeps, opts: SweepOptions): Promise<SweepResult> {
  const end = sweepSeconds.startTimer();
  const scope: SweepScope = { appId: opts.appId, deviceId: opts.deviceId };
  const unscoped = opts.appId === undefined && opts.deviceId === undefined;
  const result: SweepResult = {
    dryRun: !!opts.dryRun,
    deleted: 0,
    bytesFreed: 0,
    byReason: {},
    failed: 0,
    items: [],
    staging: { deleted: 0, bytes: 0, failed: 0 },
    backlog: 0,
    batches: 0,
    longestBatchMs: 0,
    longestTransactionMs: 0,
  };
  try {
    if (opts.dryRun) {
      const preview = await previewDue(deps.pool, opts.maxRetentionSeconds, scope, ITEMS_KEPT);
      Object.assign(result, { deleted: preview.total, bytesFreed: preview.bytes, byReason: preview.byReason, items: preview.items, backlog: preview.total });
      if (unscoped) sweepBacklog.set(preview.total);
      if (opts.staging ?? unscoped) {
        const s = await sweepStaging(deps, { dryRun: true });
        result.staging = { deleted: s.deleted, bytes: s.bytes, failed: 0 };
      }
      return result;
    }

    let budget = opts.maxBatches ?? 200;
    // A batch's webhook jobs are enqueued while the lane's next batch runs; one such enqueue at a
    // time per lane, and all of them settled before the sweep returns.
    const enqueuer = () => {
      let pending: Promise<void> = Promise.resolve();
      return {
        async add(deliveries: readonly string[]): Promise<void> {
          await pending;
          pending = enqueueDeliveries(deps, deliveries);
        },
        settled: () => pending,
      };
    };
    // Rows a dead sweeper left first. A batch with any failure ends this phase: its rows are
    // released at once and would otherwise be taken again, in a loop, by this very run.
    const first = enqueuer();
    try {
      while (budget > 0) {
        const batch = await runBatch(deps, result, opts.leaseSeconds, (db, token) => claimAbandonedDeleting(db, token, opts.batchSize, scope));
        budget--;
        await first.add(batch.deliveries);
        if (batch.claimed < opts.batchSize || batch.failed > 0) break;
      }
    } finally {
      await first.settled();
    }
    // Lanes overlap one batch's database work with another's storage calls; SKIP LOCKED keeps
    // their batches disjoint, exactly as between sweeper processes.
    let done = false;
    const lane = async (): Promise<void> => {
      const events = enqueuer();
      try {
        while (!done && budget > 0) {
          budget--;
          const batch = await runBatch(deps, result, opts.leaseSeconds, (db, token) => claimDue(db, token, opts.batchSize, opts.maxRetentionSeconds, scope));
          await events.add(batch.deliveries);
          // A short batch: nothing more is due. Nothing of a full batch deleted: the store is down;
          // stop claiming, what was claimed answers 404 already and the next run finishes it.
          if (batch.claimed < opts.batchSize || batch.failed === batch.claimed) done = true;
        }
      } finally {
        await events.settled();
      }
    };
    const lanes = await Promise.allSettled(Array.from({ length: Math.max(1, opts.concurrency ?? DEFAULT_SWEEP_LANES) }, () => lane().catch((err: unknown) => {
      done = true;
      throw err;
    })));
    const failure = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected');
    if (failure) throw failure.reason;

    if (opts.staging ?? unscoped) {
      const s = await sweepStaging(deps);
      result.staging = { deleted: s.deleted, bytes: s.bytes, failed: s.failed };
    }
    result.backlog = await countBacklog(deps.pool, opts.maxRetentionSeconds);
    sweepBacklog.set(result.backlog);
    return result;
  } finally {
    end();
  }
}

/**
 * One batch under its own lease: claim, delete the bytes, then one statement marks the rows deleted
 * with their audit and outbox rows. Returns the committed deliveries for the caller to enqueue
 * once the lease is given back.
 */
async function runBatch(
  deps: PurgeDeps,
  result: SweepResult,
  leaseSeconds: number | undefined,
  claim: (db: Pick<Pool, 'query'>, token: number) => Promise<ClaimedRow[]>,
): Promise<{ claimed: number; failed: number; deliveries: string[] }> {
  const lease = await acquireLease(deps.pool, leaseSeconds);
  const started = performance.now();
  try {
    const rows = await claim(lease.db, lease.token);
    if (rows.length === 0) return { claimed: 0, failed: 0, deliveries: [] };
    const { done, failed } = await deleteObjectsOf(deps.store, rows);
    for (const [id, err] of failed) deps.log.error({ err, mediaId: id }, 'sweep could not delete the objects of a media; it stays deleting for the next run');

    const finishing = rows.filter((r) => done.has(r.id));
    // Harmless (the commit below is conditional, one sweeper wins each row), but a sign the database was unreachable for a lease period.
    if (!lease.held()) deps.log.warn({ token: lease.token, count: rows.length }, 'a sweep batch outlived its lease; another sweep may be finishing the same rows');
    let finished: ClaimedRow[] = [];
    let finishFailed = 0;
    let deliveries: string[] = [];
    const tx = performance.now();
    try {
      const committed = await markBatchDeleted(lease.db, finishing.map((row) => ({ row, reason: row.reason, announce: row.hooked })));
      const deleted = new Set(committed.deleted.map((r) => r.id));
      deliveries = committed.deliveries;
      // Rows another sweeper finished meanwhile are neither failures nor ours to count.
      finished = finishing.filter((r) => deleted.has(r.id));
    } catch (err) {
      finishFailed = finishing.length;
      deps.log.error({ err, count: finishing.length }, 'sweep could not mark a batch deleted; its rows stay deleting for the next run');
    }
    result.longestTransactionMs = Math.max(result.longestTransactionMs, performance.now() - tx);

    for (const row of finished) {
      record(result, row, row.reason);
      sweeperDeletionsTotal.labels(row.reason).inc();
      sweeperBytesFreedTotal.inc(row.stored_bytes ?? 0);
    }
    result.failed += failed.size + finishFailed;
    result.batches++;
    return { claimed: rows.length, failed: failed.size + finishFailed, deliveries };
  } finally {
    await lease.release();
    const ms = performance.now() - started;
    result.longestBatchMs = Math.max(result.longestBatchMs, ms);
    sweepBatchSeconds.observe(ms / 1000);
  }
}

function record(result: SweepResult, row: ClaimedRow, reason: DeleteReason): void {
  const bytes = row.stored_bytes ?? 0;
  result.deleted++;
  result.bytesFreed += bytes;
  result.byReason[reason] = (result.byReason[reason] ?? 0) + 1;
  if (result.items.length < ITEMS_KEPT) result.items.push({ id: row.id, appId: row.app_id, reason, bytes });
}

/** Expired, never-used upload slots: their rows go (they never had bytes). */
export async function sweepSlots(pool: Pool): Promise<number> {
  return deleteExpiredUnusedSlots(pool);
}
