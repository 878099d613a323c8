import { newEventId } from '../domain/ids.js';
import type { MediaRow } from '../db/repos/media.js';
import type { Pool, Queryable } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { Queues } from '../queue/queues.js';

export type MediaEvent = 'media.ready' | 'media.failed' | 'media.deleted';
export type DeleteReason = 'deleted' | 'expired' | 'device_destroyed' | 'retention';

/** The webhook body of API.md. */
export function eventBody(id: string, event: MediaEvent, row: MediaRow, reason?: DeleteReason, at = new Date()) {
  return {
    event,
    id,
    createdAt: at.toISOString(),
    payload: {
      media_id: row.id,
      media_path: row.media_path,
      kind: row.kind,
      mime_type: row.mime_type ?? row.detected_mime,
      size_bytes: row.size_bytes,
      checksum: row.checksum,
      device_id: row.device_id,
      ...(event === 'media.failed' ? { error: { code: row.error_code, message: row.error_message } } : {}),
      ...(event === 'media.deleted' ? { reason: reason ?? 'deleted' } : {}),
    },
  };
}

/**
 * Writes the event into the delivery log (the outbox) on `db`, which may be the transaction that
 * moves the media's state, so the state change and its webhook commit together. Returns the
 * delivery id, or null when the app has no webhook.
 */
export async function recordMediaEvent(db: Queryable, row: MediaRow, event: MediaEvent, reason?: DeleteReason): Promise<string | null> {
  const { rows } = await db.query<{ webhook_url: string | null }>('SELECT webhook_url FROM apps WHERE id = $1', [row.app_id]);
  if (!rows[0]?.webhook_url) return null;
  const id = newEventId();
  await db.query('INSERT INTO webhook_deliveries (id, app_id, event, media_id, body) VALUES ($1, $2, $3, $4, $5)', [
    id, row.app_id, event, row.id, JSON.stringify(eventBody(id, event, row, reason)),
  ]);
  return id;
}

/** Enqueues recorded deliveries (job id = delivery id); if Redis is down the reconciler does it later. */
export async function dispatchDelivery(deps: { queues: Queues; log: Logger }, id: string | null): Promise<void> {
  if (!id) return;
  try {
    await deps.queues.add('webhook', { v: 1, deliveryId: id }, id);
  } catch (err) {
    deps.log.warn({ err: String(err), deliveryId: id }, 'webhook enqueue failed; the reconciler will retry');
  }
}

/**
 * Records the event in the delivery log (the outbox), then enqueues its delivery with the
 * delivery id as job id. If Redis is down the row stays `pending` and the reconciler enqueues it.
 */
export async function emitMediaEvent(
  deps: { pool: Pool; queues: Queues; log: Logger },
  row: MediaRow,
  event: MediaEvent,
  reason?: DeleteReason,
): Promise<void> {
  const { rows } = await deps.pool.query<{ webhook_url: string | null }>('SELECT webhook_url FROM apps WHERE id = $1', [row.app_id]);
  if (!rows[0]?.webhook_url) return;
  const id = newEventId();
  const body = eventBody(id, event, row, reason);
  await deps.pool.query('INSERT INTO webhook_deliveries (id, app_id, event, media_id, body) VALUES ($1, $2, $3, $4, $5)', [id, row.app_id, event, row.id, JSON.stringify(body)]);
  try {
    await deps.queues.add('webhook', { v: 1, deliveryId: id }, id);
  } catch (err) {
    deps.log.warn({ err: String(err), deliveryId: id }, 'webhook enqueue failed; the reconciler will retry');
  }
}
