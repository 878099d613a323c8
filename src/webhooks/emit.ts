import { newEventId } from '../domain/ids.js';
import type { DeleteReason, MediaEvent } from '../domain/kinds.js';
import { getWebhookUrl } from '../db/repos/apps.js';
import type { MediaRow } from '../db/repos/media.js';
import { insertDelivery } from '../db/repos/webhook-deliveries.js';
import type { Pool, Queryable } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { Queues } from '../queue/queues.js';

/** The webhook body of API.md. */
export function eventBody(
  id: string,
  event: MediaEvent,
  row: Pick<MediaRow, 'id' | 'media_path' | 'kind' | 'mime_type' | 'detected_mime' | 'size_bytes' | 'checksum' | 'device_id' | 'error_code' | 'error_message'>,
  reason?: DeleteReason,
  at = new Date(),
) {
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
  if (!(await getWebhookUrl(db, row.app_id))) return null;
  const id = newEventId();
  await insertDelivery(db, { id, appId: row.app_id, event, mediaId: row.id, body: eventBody(id, event, row, reason) });
  return id;
}

/** Enqueues recorded deliveries (job id = delivery id); if Redis is down the reconciler does it later. */
export async function dispatchDelivery(deps: { queues: Queues; log: Logger }, id: string | null): Promise<void> {
  if (!id) return;
  try {
    await deps.queues.add('webhook', { v: 1, deliveryId: id });
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
  await dispatchDelivery(deps, await recordMediaEvent(deps.pool, row, event, reason));
}
