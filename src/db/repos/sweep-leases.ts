import type { Queryable } from '../pool.js';

/**
 * Sweep leases have no table: a token from the sequence `media_sweep_claim_seq` (migration
 * *_sweep-claims), held as a session advisory lock, and stamped on the `media` rows it claims.
 * The advisory-lock namespace ('mfsw'): the two-key form keeps these locks apart from every
 * single-bigint advisory lock (node-pg-migrate's among them).
 */
export const SWEEP_LOCK_NAMESPACE = 1835430775;

/**
 * Draws the next token and tries to lock it for this session. `locked` is false only when the
 * sequence wrapped around onto a token a live sweeper still holds. Run it on the connection that
 * will hold the lease: the lock belongs to that session.
 */
export async function tryTakeSweepToken(session: Queryable): Promise<{ token: number; locked: boolean }> {
  const { rows } = await session.query<{ token: number; locked: boolean }>(
    `SELECT t.token, pg_try_advisory_lock($1, t.token) AS locked FROM (SELECT nextval('media_sweep_claim_seq')::int AS token) t`,
    [SWEEP_LOCK_NAMESPACE],
  );
  return rows[0]!;
}

/** Gives the token's lock back; on the session that took it. */
export async function releaseSweepToken(session: Queryable, token: number): Promise<void> {
  await session.query('SELECT pg_advisory_unlock($1, $2)', [SWEEP_LOCK_NAMESPACE, token]);
}

/**
 * SQL for the claim tokens whose holder is alive (advisory locks granted in this database).
 * Reading pg_locks is a snapshot of the lock table: cheap, and no lock is taken.
 */
export const LIVE_TOKENS_SQL = `SELECT l.objid::int FROM pg_locks l
  WHERE l.locktype = 'advisory' AND l.classid = ${SWEEP_LOCK_NAMESPACE}::oid AND l.objsubid = 2 AND l.granted
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
