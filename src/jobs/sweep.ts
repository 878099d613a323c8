import type { SweepPayload } from '../queue/payloads.js';
import { sweep, sweepSlots } from '../retention/sweep.js';
import { sweepExpiredTusUploads } from '../retention/tus-uploads.js';
import type { Runtime } from '../runtime.js';
import type { JobContext } from './job-context.js';
import { purgeDevice } from './purge-device.js';
import { sendExpiryNotices } from './expiry-notice.js';

/**
 * The `retention-sweep` job: the scheduled sweep (every SWEEP_CRON), or a device's purge when the
 * payload names one; then expired, never-used upload slots go.
 */
export async function sweepJob(rt: Runtime, payload: SweepPayload, job: JobContext): Promise<{ deleted: number; failed: number; bytesFreed: number }> {
  const res = payload.deviceId
    ? await purgeDevice(rt, { appId: payload.appId, deviceId: payload.deviceId, dryRun: payload.dryRun })
    : await sweep(rt, {
        batchSize: rt.config.SWEEP_BATCH_SIZE,
        maxRetentionSeconds: rt.config.MAX_RETENTION_SECONDS,
        appId: payload.appId,
        dryRun: payload.dryRun,
        leaseSeconds: rt.config.SWEEP_LEASE_SECONDS,
      });
  const slots = await sweepSlots(rt.pool);
  // Scheduled sweeps only: a device's purge or an operator's app-scoped or dry run leaves these be.
  // A failure of either is logged and retried by the next run, never failing this one.
  if (!payload.deviceId && !payload.appId && !payload.dryRun) {
    // Resumable (tus) uploads past UPLOAD_SLOT_TTL_SECONDS: their sealed parts, then their rows.
    const tus = await sweepExpiredTusUploads(rt).catch((err: unknown) => (job.log.warn({ err }, 'tus upload expiry failed; the next sweep retries'), { uploads: 0 }));
    if (tus.uploads) job.log.info({ uploads: tus.uploads }, 'expired tus uploads removed');
    const notices = await sendExpiryNotices(rt).catch((err: unknown) => (job.log.warn({ err }, 'expiry notices failed; the next sweep retries'), { noticed: 0 }));
    if (notices.noticed) job.log.info({ noticed: notices.noticed }, 'media.expiring recorded');
  }
  if (res.deleted || res.failed || slots) job.log.info({ deleted: res.deleted, failed: res.failed, byReason: res.byReason, bytesFreed: res.bytesFreed, slots }, 'sweep done');
  return { deleted: res.deleted, failed: res.failed, bytesFreed: res.bytesFreed };
}
