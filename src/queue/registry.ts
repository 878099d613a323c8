import type { JobsOptions } from 'bullmq';
import type { z } from 'zod';
import { ingestPayloadV1, jobIdSchema, sweepPayloadV1, webhookPayloadV1, type IngestPayload, type SweepPayload } from './payloads.js';

/**
 * The one job registry: each job's queue, payload schema, job id and retry policy. Producers' types
 * derive from it, and the worker start-up refuses a job without exactly one handler.
 *
 * Job ids are built here only, from the payload: the id of what the job works on, so adding the same
 * work twice is a no-op. BullMQ refuses `:` in an id and takes all-digit ids for its own counters;
 * `jobIdSchema` refuses both.
 */
export const JOBS = {
  ingest: {
    queue: 'media-ingest',
    schema: ingestPayloadV1,
    jobId: ingestJobId,
    options: {
      attempts: 5,
      backoff: { type: 'exponential', delay: 2000, jitter: 0.5 },
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    } satisfies JobsOptions,
  },
  webhook: {
    queue: 'webhook',
    schema: webhookPayloadV1,
    jobId: (p: { deliveryId: string }): string => jobIdSchema.parse(p.deliveryId),
    options: {
      attempts: 8,
      backoff: { type: 'exponential', delay: 5000, jitter: 0.5 },
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    } satisfies JobsOptions,
  },
  'retention-sweep': {
    queue: 'retention-sweep',
    schema: sweepPayloadV1,
    jobId: sweepJobId,
    options: { attempts: 3, backoff: { type: 'exponential', delay: 5000 }, removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } } satisfies JobsOptions,
  },
} as const;

/** The job scheduler that adds the periodic retention sweep (one per prefix, however many sweepers run). */
export const SWEEP_SCHEDULER_ID = 'retention-sweep';

/** The media id: the API, the CLI, the reconciler and `enqueueMedia` all add one media's job once. */
function ingestJobId(p: Pick<IngestPayload, 'mediaId'>): string {
  if (!p.mediaId) throw new Error('an ingest job added by mediaflow names its media (mediaId)');
  return jobIdSchema.parse(p.mediaId);
}

/**
 * A device is destroyed once (device ids are never reused), so its purge is one job however often it
 * is asked for; an ad-hoc sweep is one per scope at a time.
 */
function sweepJobId(p: Pick<SweepPayload, 'appId' | 'deviceId'>): string {
  const id = p.deviceId ? `purge-${p.appId ?? 'all'}-${p.deviceId}` : p.appId ? `sweep-${p.appId}` : 'sweep';
  return jobIdSchema.parse(id);
}

export type JobName = keyof typeof JOBS;
export type JobPayload<N extends JobName> = z.infer<(typeof JOBS)[N]['schema']>;
export const QUEUE_NAMES = [...new Set(Object.values(JOBS).map((j) => j.queue))];
