import * as mediaRepo from '../db/repos/media.js';
import { findStalePending } from '../db/repos/webhook-deliveries.js';
import { queuedSource } from '../domain/sources.js';
import type { Runtime } from '../runtime.js';

/** BullMQ states of a job that will still run: the work is not lost. */
const ALIVE = new Set(['waiting', 'delayed', 'active', 'waiting-children', 'prioritized']);

/**
 * Re-enqueues rows the queue lost: `queued` rows whose job is gone (Redis restarted, enqueue failed
 * after the row was written), and pending webhook deliveries likewise. Job ids are deterministic,
 * so a job that does exist is never doubled. Returns how many jobs it added.
 */
export async function reconcile(rt: Runtime): Promise<number> {
  let n = 0;
  const stale = await mediaRepo.findStale(rt.pool, rt.config.RECONCILE_AFTER_SECONDS);
  const q = rt.queues.get('ingest');
  const alive: string[] = [];
  for (const stub of stale) {
    const state = await q.getJobState(stub.id);
    if (ALIVE.has(state)) {
      alive.push(stub.id);
      continue;
    }
    if (state === 'completed' || state === 'failed') await q.remove(stub.id).catch(() => undefined);
    // Read after the job's state: a job that just finished has changed the row.
    const row = await mediaRepo.getMediaById(rt.pool, stub.id);
    if (!row) continue;
    const source = queuedSource({ sourceUrl: row.source_url, stagingKey: row.staging_key });
    if (!source) {
      await mediaRepo.markFailed(rt.pool, stub.id, 'NOT_FOUND', 'the source of this media was lost before processing');
      continue;
    }
    await rt.queues.add('ingest', { v: 1, mediaId: stub.id, appId: stub.app_id, source, ...(row.correlation_id ? { correlationId: row.correlation_id } : {}) });
    await mediaRepo.touch(rt.pool, stub.id);
    rt.log.warn({ mediaId: stub.id, previousState: state }, 'reconciler re-enqueued media the queue had lost');
    n++;
  }
  // A row whose job still waits (a long backlog, or no worker running) is refreshed, so it is not
  // looked at again before RECONCILE_AFTER_SECONDS.
  await mediaRepo.touchUnsettled(rt.pool, alive);
  const wq = rt.queues.get('webhook');
  for (const d of await findStalePending(rt.pool, rt.config.RECONCILE_AFTER_SECONDS)) {
    if ((await wq.getJobState(d.id)) !== 'unknown') continue;
    await rt.queues.add('webhook', { v: 1, deliveryId: d.id });
    n++;
  }
  return n;
}
