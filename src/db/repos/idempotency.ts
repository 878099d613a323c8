import type { Queryable } from '../pool.js';

export interface IdempotencyRow {
  request_hash: string;
  status_code: number | null;
  response: unknown;
}

/** Claims a key for this request; returns the existing row when the key was used before. */
export async function claimIdempotencyKey(db: Queryable, appId: string, key: string, requestHash: string): Promise<IdempotencyRow | null> {
  const { rows } = await db.query<IdempotencyRow>(
    `INSERT INTO idempotency_keys (app_id, key, request_hash) VALUES ($1, $2, $3)
     ON CONFLICT (app_id, key) DO NOTHING RETURNING request_hash, status_code, response`,
    [appId, key, requestHash],
  );
  if (rows[0]) return null;
  const existing = await db.query<IdempotencyRow>('SELECT request_hash, status_code, response FROM idempotency_keys WHERE app_id = $1 AND key = $2', [appId, key]);
  return existing.rows[0] ?? null;
}

/**
 * Stores the answer a retry with this key replays. The key was claimed before the request was read,
 * so the request's hash (which tells a retry from a different request reusing the key) is written now.
 */
export async function completeIdempotencyKey(db: Queryable, appId: string, key: string, requestHash: string, statusCode: number, response: unknown): Promise<void> {
  await db.query('UPDATE idempotency_keys SET request_hash = $3, status_code = $4, response = $5 WHERE app_id = $1 AND key = $2', [
    appId, key, requestHash, statusCode, JSON.stringify(response),
  ]);
}

/** A request that failed before answering frees its key, so the client's retry is processed. */
export async function releaseIdempotencyKey(db: Queryable, appId: string, key: string): Promise<void> {
  await db.query('DELETE FROM idempotency_keys WHERE app_id = $1 AND key = $2 AND status_code IS NULL', [appId, key]);
}
