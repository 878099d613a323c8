import type { Pool, PoolClient } from '../db/pool.js';
import { releaseSweepToken, tryTakeSweepToken } from '../db/repos/sweep-leases.js';

/**
 * A sweeper's hold on the rows it claims for one batch: a session advisory lock on a token from a
 * sequence, taken on a connection kept for the batch. Rows in `deleting` stamped with a token
 * nobody holds were left by a sweeper that died (SIGKILL, OOM, lost connection): Postgres drops the
 * lock when the session ends, so the next sweep reclaims them at once rather than after a guessed
 * timeout, and never takes rows a live sweeper is still working on.
 */
export interface SweepLease {
  readonly token: number;
  /** The connection that holds the lock; run the batch's statements on it. */
  readonly client: PoolClient;
  release(): Promise<void>;
}

export async function acquireLease(pool: Pool): Promise<SweepLease> {
  const client = await pool.connect();
  // A connection that dies while the batch deletes bytes emits 'error' on a checked-out client:
  // unheard, that would crash the process. The batch's next query fails instead, and the lease
  // (the lock) is gone with the session, which is what lets another sweep take the rows over.
  client.on('error', ignore);
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      const { token, locked } = await tryTakeSweepToken(client);
      // Only a sequence that wrapped around onto a live sweeper's token is refused; take the next.
      if (locked) return lease(client, token);
    }
    throw new Error('could not take a sweep lease: every token tried is held');
  } catch (err) {
    client.off('error', ignore);
    client.release(err as Error);
    throw err;
  }
}

const ignore = (): void => undefined;

function lease(client: PoolClient, token: number): SweepLease {
  let released = false;
  return {
    token,
    client,
    async release() {
      if (released) return;
      released = true;
      client.off('error', ignore);
      try {
        await releaseSweepToken(client, token);
        client.release();
      } catch (err) {
        // A broken connection has lost the lock already; destroy it rather than pool it.
        client.release(err as Error);
      }
    },
  };
}

