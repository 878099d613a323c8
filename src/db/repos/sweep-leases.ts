import type { Queryable } from '../pool.js';

/**
 * Sweep leases (migration *_sweep-lease-rows): one row per batch being worked on, live while
 * `expires_at` is ahead of the database clock, with a token from the sequence `media_sweep_claim_seq`
 * that is stamped on the `media` rows the batch claims. Every statement stands alone (no session
 * state), so this works through PgBouncer in transaction mode; times are the database's, so the
 * sweepers' clocks do not matter.
 */

/**
 * Draws the next token and records a lease on it for `seconds`; null only when the sequence
 * wrapped onto a token whose row is still there (taken again at once with the next token).
 */
export async function insertSweepLease(db: Queryable, holder: string, seconds: number): Promise<number | null> {
  const { rows } = await db.query<{ token: number }>(
    `INSERT INTO sweep_leases (token, holder, expires_at)
     VALUES (nextval('media_sweep_claim_seq')::int, $1, now() + make_interval(secs => $2))
     ON CONFLICT (token) DO NOTHING RETURNING token`,
    [holder, seconds],
  );
  return rows[0]?.token ?? null;
}

/** Moves a live lease's expiry to `seconds` from now; false when it had lapsed (others may have taken its rows over). */
export async function renewSweepLease(db: Queryable, token: number, holder: string, seconds: number): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE sweep_leases SET expires_at = now() + make_interval(secs => $3) WHERE token = $1 AND holder = $2 AND expires_at > now()',
    [token, holder, seconds],
  );
  return (rowCount ?? 0) > 0;
}

/** Ends this lease, and clears the rows of leases that lapsed (their holders died). */
export async function deleteSweepLease(db: Queryable, token: number, holder: string): Promise<void> {
  await db.query('DELETE FROM sweep_leases WHERE (token = $1 AND holder = $2) OR expires_at <= now()', [token, holder]);
}

/** Whether a lease on `token` is live now (tests, and operators reading a stuck batch). */
export async function isSweepLeaseLive(db: Queryable, token: number): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM sweep_leases WHERE token = $1 AND expires_at > now()', [token]);
  return (rowCount ?? 0) > 0;
}

/** SQL for the claim tokens whose holder is alive: a lease row not yet lapsed. */
export const LIVE_TOKENS_SQL = 'SELECT l.token FROM sweep_leases l WHERE l.expires_at > now()';
