import type { MediaEvent } from '../../domain/kinds.js';
import type { Queryable } from '../pool.js';

/** Writes one event into the delivery log (the outbox), `pending` until a delivery job sends it. */
export async function insertDelivery(db: Queryable, d: { id: string; appId: string; event: MediaEvent; mediaId: string; body: unknown }): Promise<void> {
  await db.query('INSERT INTO webhook_deliveries (id, app_id, event, media_id, body) VALUES ($1, $2, $3, $4, $5)', [
    d.id, d.appId, d.event, d.mediaId, JSON.stringify(d.body),
  ]);
}

/**
 * The `media.deleted` outbox rows of a batch of deletions, as one arm of the statement that marks the
 * batch deleted (`markDeletedAudited` in media.ts): one row per row `source` yields with an
 * `event_id` and a `body`, for apps that have a webhook when it commits. Returns `media_id, id`.
 */
export const insertMediaDeletedDeliveriesSql = (source: string): string =>
  `INSERT INTO webhook_deliveries (id, app_id, event, media_id, body)
   SELECT ${source}.event_id, ${source}.app_id, 'media.deleted', ${source}.id, ${source}.body FROM ${source}
   WHERE ${source}.event_id IS NOT NULL AND EXISTS (SELECT 1 FROM apps WHERE apps.id = ${source}.app_id AND apps.webhook_url IS NOT NULL)
   RETURNING media_id, id`;

export interface DeliveryToSend {
  status: string;
  body: unknown;
  media_id: string | null;
  /** The app's current webhook: a delivery goes where the app points now, signed with its secret. */
  webhook_url: string | null;
  webhook_secret: string;
}

export async function getDeliveryToSend(db: Queryable, id: string): Promise<DeliveryToSend | null> {
  const { rows } = await db.query<DeliveryToSend>(
    `SELECT d.status, d.body, d.media_id, a.webhook_url, a.webhook_secret FROM webhook_deliveries d JOIN apps a ON a.id = d.app_id WHERE d.id = $1`,
    [id],
  );
  return rows[0] ?? null;
}

export async function markDelivered(db: Queryable, id: string, statusCode: number | null): Promise<void> {
  await db.query(
    `UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1, last_status_code = $2, last_error = NULL, delivered_at = now() WHERE id = $1`,
    [id, statusCode],
  );
}

/** Counts a failed attempt; the final one also marks the delivery `failed` (no more retries). */
export async function recordFailedAttempt(db: Queryable, id: string, statusCode: number | null, error: string, finalAttempt: boolean): Promise<void> {
  await db.query(
    `UPDATE webhook_deliveries SET attempts = attempts + 1, last_status_code = $2, last_error = $3, status = CASE WHEN $4 THEN 'failed' ELSE status END WHERE id = $1`,
    [id, statusCode, error.slice(0, 500), finalAttempt],
  );
}

/** Deliveries still `pending` after this long: their job may be lost, and the reconciler looks. */
export async function findStalePending(db: Queryable, olderThanSeconds: number, limit = 500): Promise<Array<{ id: string }>> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM webhook_deliveries WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2`,
    [olderThanSeconds, limit],
  );
  return rows;
}
