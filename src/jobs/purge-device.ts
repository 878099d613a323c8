import type { SweepResult } from '../retention/sweep.js';
import { sweep } from '../retention/sweep.js';
import type { Runtime } from '../runtime.js';

export interface DevicePurge {
  appId?: string | undefined;
  deviceId: string;
  dryRun?: boolean | undefined;
}

/**
 * The purge a device's destruction asks for: its media, already `deleting` (404 since the destroy),
 * lose their bytes and rows now instead of at the next scheduled sweep, by the same two-phase
 * deletion, limited to the device.
 */
export function purgeDevice(rt: Runtime, target: DevicePurge): Promise<SweepResult> {
  return sweep(rt, {
    batchSize: rt.config.SWEEP_BATCH_SIZE,
    maxRetentionSeconds: rt.config.MAX_RETENTION_SECONDS,
    appId: target.appId,
    deviceId: target.deviceId,
    dryRun: target.dryRun,
    leaseSeconds: rt.config.SWEEP_LEASE_SECONDS,
  });
}
