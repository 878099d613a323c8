import type { JobsOptions } from 'bullmq';
import type { z } from 'zod';
import { ingestPayloadV1, sweepPayloadV1, webhookPayloadV1 } from './payloads.js';

/**
 * The one job registry: each job's queue, payload schema, job id and retry policy. Producers'
 * types derive from it, and the worker start-up refuses a job without exactly one handler.
 */
export const JOBS = {
  ingest: {
    queue: 'media-ingest',
    schema: ingestPayloadV1,
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
    options: { attempts: 3, backoff: { type: 'exponential', delay: 5000 }, removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } } satisfies JobsOptions,
  },
} as const;

export type JobName = keyof typeof JOBS;
export type JobPayload<N extends JobName> = z.infer<(typeof JOBS)[N]['schema']>;
export const QUEUE_NAMES = [...new Set(Object.values(JOBS).map((j) => j.queue))];
