/**
 * `import { enqueueMedia } from "mediaflow/producer"`: for message pipelines that enqueue media
 * jobs without going through HTTP. Needs only Redis; the worker creates the media row.
 */
import { Queue } from 'bullmq';
import { assertPrefixFits, openRedis, type RedisConnection } from './connection.js';
import { AppError } from '../domain/errors.js';
import { newMediaId } from '../domain/ids.js';
import { ingestPayloadV1, type IngestPayload } from './payloads.js';
import { JOBS } from './registry.js';

export type { IngestPayload, IngestReference } from './payloads.js';

export interface ProducerOptions {
  /**
   * Defaults to REDIS_URL or redis://127.0.0.1:6379. A Redis Cluster is a seed list,
   * `redis+cluster://host1:7000,host2:7001`, and needs a prefix with a hash tag (`{mediaflow}`).
   */
  redisUrl?: string;
  /** An existing connection (an ioredis `Redis` or `Cluster`); you close it yourself. */
  connection?: RedisConnection;
  /** Defaults to QUEUE_PREFIX or `mediaflow`; the service's QUEUE_PREFIX, exactly. */
  prefix?: string;
}

export type EnqueueInput = Omit<IngestPayload, 'v'> & { v?: 1 };

/**
 * Validates the payload (version 1), assigns a media id when none is given and adds the job with
 * job id = media id, so enqueueing the same media id twice does nothing the second time.
 */
export async function enqueueMedia(input: EnqueueInput, opts: ProducerOptions = {}): Promise<{ mediaId: string; jobId: string }> {
  const payload = ingestPayloadV1.parse({ ...input, v: 1, mediaId: input.mediaId ?? newMediaId() });
  const prefix = opts.prefix ?? process.env.QUEUE_PREFIX ?? 'mediaflow';
  const url = opts.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  // Before connecting: a cluster without a hash-tagged prefix would fail with CROSSSLOT inside BullMQ.
  assertPrefixFits(opts.connection ?? url, prefix);
  const own = !opts.connection;
  const connection = opts.connection ?? openRedis(url, { maxRetriesPerRequest: 1, connectTimeout: 3000 });
  const queue = new Queue(JOBS.ingest.queue, { connection, prefix });
  try {
    const jobId = JOBS.ingest.jobId(payload);
    try {
      await queue.add('ingest', payload, { ...JOBS.ingest.options, jobId });
    } catch (err) {
      // The payload was valid: what failed is Redis (down, failing over, out of reach). Callers see
      // the contract's code, as the API's producers do; the same mediaId may be enqueued again.
      throw Object.assign(new AppError('QUEUE_UNAVAILABLE', `could not enqueue media ${payload.mediaId}: Redis is unavailable (${(err as Error).message})`), { cause: err });
    }
    return { mediaId: payload.mediaId!, jobId };
  } finally {
    await queue.close();
    // BullMQ does not close connections it was given.
    if (own) await connection.quit().catch(() => connection.disconnect());
  }
}

/** A reusable producer for pipelines that enqueue many jobs. */
export function createProducer(opts: ProducerOptions = {}): { enqueueMedia(input: EnqueueInput): Promise<{ mediaId: string; jobId: string }>; close(): Promise<void> } {
  const url = opts.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  assertPrefixFits(opts.connection ?? url, opts.prefix ?? process.env.QUEUE_PREFIX ?? 'mediaflow');
  const own = !opts.connection;
  const connection = opts.connection ?? openRedis(url, { maxRetriesPerRequest: 1 });
  return {
    enqueueMedia: (input) => enqueueMedia(input, { ...opts, connection }),
    async close() {
      if (own) await connection.quit().catch(() => connection.disconnect());
    },
  };
}
