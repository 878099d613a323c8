import { randomUUID } from 'node:crypto';
import type { Pool } from '../db/pool.js';
import { deleteSweepLease, insertSweepLease, renewSweepLease } from '../db/repos/sweep-leases.js';

/** A batch's lease when the caller names none: SWEEP_LEASE_SECONDS's default. */
export const DEFAULT_SWEEP_LEASE_SECONDS = 30;

/**
 * A sweeper's hold on the rows it claims for one batch: a row in `sweep_leases` with an expiry by
 * the database clock, renewed every third of its length while the batch runs. Rows in `deleting`
 * stamped with a token whose lease is not live were left by a sweeper that died (SIGKILL, OOM, lost
 * connection): once its lease lapses (within `seconds` of the death) the next sweep takes them
 * over; rows a live sweeper is still working on are never taken. Nothing is held on a connection:
 * every statement stands alone, so sweepers run through PgBouncer in transaction mode.
 *
 * A sweeper that cannot renew (the database unreachable longer than the lease) may find its rows
 * taken over; both then delete the same objects (absent objects are success) and the conditional
 * `deleting → deleted` update lets exactly one of them commit the row, its audit row and its event.
 */
export interface SweepLease {
  readonly token: number;
  /** Where the batch's statements run: the pool, since the lease needs no session. */
  readonly db: Pool;
  /** False once a renewal found the lease lapsed. */
  held(): boolean;
  release(): Promise<void>;
}

export async function acquireLease(pool: Pool, seconds = DEFAULT_SWEEP_LEASE_SECONDS): Promise<SweepLease> {
  const holder = randomUUID();
  for (let attempt = 0; attempt < 5; attempt++) {
    const token = await insertSweepLease(pool, holder, seconds);
    // Only a sequence that wrapped onto a token whose row is still there is refused; take the next.
    if (token !== null) return lease(pool, token, holder, seconds);
  }
  throw new Error('could not take a sweep lease: every token tried is held');
}

function lease(pool: Pool, token: number, holder: string, seconds: number): SweepLease {
  let live = true;
  let released = false;
  let renewing: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    renewing = renewSweepLease(pool, token, holder, seconds).then(
      (ok) => {
        if (!ok) live = false;
      },
      // The database did not answer: the next tick tries again, and the lease lapses if none gets through.
      () => undefined,
    );
  }, (seconds * 1000) / 3);
  timer.unref();
  return {
    token,
    db: pool,
    held: () => live && !released,
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      await renewing;
      // Failing to delete it is harmless: the row lapses on its own.
      await deleteSweepLease(pool, token, holder).catch(() => undefined);
    },
  };
}
