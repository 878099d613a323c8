import type { SweepPayload } from '../queue/payloads.js';
import { sweep, sweepSlots } from '../retention/sweep.js';
import type { Runtime } from '../runtime.js';
import type { JobContext } from './job-context.js';
import { purgeDevice } from './purge-device.js';

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
      });
  const slots = await sweepSlots(rt.pool);
  if (res.deleted || res.failed || slots) job.log.info({ deleted: res.deleted, failed: res.failed, byReason: res.byReason, bytesFreed: res.bytesFreed, slots }, 'sweep done');
  return { deleted: res.deleted, failed: res.failed, bytesFreed: res.bytesFreed };
}
