import { findExpiryNoticesDue, recordExpiryNotices } from '../db/repos/references.js';
import { newEventId } from '../domain/ids.js';
import type { Runtime } from '../runtime.js';
import { dispatchDelivery, eventBody } from '../webhooks/emit.js';

/** Media noticed per statement; a sweep takes batches until none is due. */
const BATCH = 500;
/** Bound per sweep run, so one run cannot hold the sweeper: what is left is noticed by the next run. */
const MAX_BATCHES = 20;

/**
 * `media.expiring`, run by the sweeper's schedule (the `retention-sweep` job): once per media,
 * EXPIRY_NOTICE_SECONDS before `expiresAt`, for media that a live reference sending at or after
 * `expiresAt` still needs. The notice and its outbox row are recorded by one conditional statement,
 * so of several sweeper processes (or a restarted one) exactly one records each media's notice; the
 * delivery job is enqueued after the commit, and the reconciler enqueues it should that be lost.
 */
export async function sendExpiryNotices(rt: Pick<Runtime, 'pool' | 'queues' | 'log' | 'config'>): Promise<{ noticed: number }> {
  let noticed = 0;
  for (let i = 0; i < MAX_BATCHES; i++) {
    const due = await findExpiryNoticesDue(rt.pool, rt.config.EXPIRY_NOTICE_SECONDS, BATCH);
    if (due.length === 0) break;
    const at = new Date();
    const items = due.map((row) => {
      const eventId = newEventId();
      const body = eventBody(eventId, 'media.expiring', row, undefined, at);
      return { id: row.id, eventId, body: { ...body, payload: { ...body.payload, expires_at: row.expires_at.toISOString(), refs: row.refs.map((r) => r.ref), references: row.refs.map((r) => ({ ref: r.ref, send_at: r.sendAt })) } } };
    });
    const done = await recordExpiryNotices(rt.pool, items);
    noticed += done.noticed.length;
    // After the commit; one lost enqueue stays pending in the outbox for the reconciler.
    await Promise.all(done.deliveries.map((id) => dispatchDelivery(rt, id)));
    // Everything due was another sweeper's already, or the batch was short: nothing more to find now.
    if (done.noticed.length === 0 || due.length < BATCH) break;
  }
  return { noticed };
}
