/**
 * `import { enqueueMedia } from "mediaflow/producer"`: for message pipelines that enqueue media
 * jobs without going through HTTP. Needs only Redis; the worker creates the media row.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { newMediaId } from '../domain/ids.js';
import { ingestPayloadV1, type IngestPayload } from './payloads.js';
import { JOBS } from './registry.js';

export type { IngestPayload } from './payloads.js';

export interface ProducerOptions {
  /** Defaults to REDIS_URL or redis://127.0.0.1:6379. */
  redisUrl?: string;
  /** An existing connection; you close it yourself. */
  connection?: Redis;
  /** Defaults to QUEUE_PREFIX or `mediaflow`. */
  prefix?: string;
}

export type EnqueueInput = Omit<IngestPayload, 'v'> & { v?: 1 };

/**
 * Validates the payload (version 1), assigns a media id when none is given and adds the job with
 * job id = media id, so enqueueing the same media id twice does nothing the second time.
 */
export async function enqueueMedia(input: EnqueueInput, opts: ProducerOptions = {}): Promise<{ mediaId: string; jobId: string }> {
  const payload = ingestPayloadV1.parse({ ...input, v: 1, mediaId: input.mediaId ?? newMediaId() });
  const own = !opts.connection;
  const connection =
    opts.connection ??
    new Redis(opts.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1, connectTimeout: 3000 });
  const queue = new Queue(JOBS.ingest.queue, { connection, prefix: opts.prefix ?? process.env.QUEUE_PREFIX ?? 'mediaflow' });
  try {
    const jobId = JOBS.ingest.jobId(payload);
    await queue.add('ingest', payload, { ...JOBS.ingest.options, jobId });
    return { mediaId: payload.mediaId!, jobId };
  } finally {
    await queue.close();
    // BullMQ does not close connections it was given.
    if (own) await connection.quit().catch(() => connection.disconnect());
  }
}

/** A reusable producer for pipelines that enqueue many jobs. */
export function createProducer(opts: ProducerOptions = {}): { enqueueMedia(input: EnqueueInput): Promise<{ mediaId: string; jobId: string }>; close(): Promise<void> } {
  const own = !opts.connection;
  const connection = opts.connection ?? new Redis(opts.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
  return {
    enqueueMedia: (input) => enqueueMedia(input, { ...opts, connection }),
    async close() {
      if (own) await connection.quit().catch(() => connection.disconnect());
    },
  };
}
