import type { Config } from './config/index.js';
import { createPool, type Pool } from './db/pool.js';
import { deriveSecret } from './domain/file-token.js';
import type { Logger } from './log.js';
import { assertPrefixFits, closeRedis, createRedis, waitReady, type RedisConnection } from './queue/connection.js';
import { Queues } from './queue/queues.js';
import type { BlobStore } from './storage/blob-store.js';
import { createStore, moveLegacyFsLayout } from './storage/create-store.js';
import { loadKeyring } from './storage/keyring.js';
import type { Keyring } from './storage/sealed-format.js';

/** What every role shares: one pool, one producer connection, one store, one keyring. */
export interface Runtime {
  config: Config;
  log: Logger;
  pool: Pool;
  redis: RedisConnection;
  queues: Queues;
  store: BlobStore;
  keyring: Keyring;
  fileUrlSecret: Buffer;
  close(): Promise<void>;
}

export async function createRuntime(config: Config, log: Logger, overrides: Partial<Pick<Runtime, 'store'>> = {}): Promise<Runtime> {
  const keyring = await loadKeyring(config, log);
  const pool = createPool(config.DATABASE_URL);
  assertPrefixFits(config.REDIS_URL, config.QUEUE_PREFIX);
  const redis = createRedis(config.REDIS_URL, 'producer');
  const queues = new Queues(redis, config.QUEUE_PREFIX, {
    webhook: { attempts: config.WEBHOOK_ATTEMPTS, backoff: { type: 'exponential', delay: config.WEBHOOK_BACKOFF_MS, jitter: 0.3 } },
    ingest: { attempts: config.JOB_ATTEMPTS },
  });
  // Queues are made while Redis answers: one created during an outage would wait for it forever.
  await waitReady(redis, 10_000).catch((err: Error) => log.warn({ err: err.message }, 'Redis is not reachable yet; producers answer 503 until it is'));
  queues.all();
  if (config.STORAGE_DRIVER === 'fs' && !overrides.store) {
    const moved = await moveLegacyFsLayout(config.DATA_DIR);
    if (moved.length) log.warn({ moved }, 'moved the fs store of an earlier layout into DATA_DIR/store');
  }
  const store =
    overrides.store ??
    createStore({
      driver: config.STORAGE_DRIVER,
      dataDir: config.DATA_DIR,
      s3: config.S3_BUCKET
        ? {
            endpoint: config.S3_ENDPOINT,
            region: config.S3_REGION,
            bucket: config.S3_BUCKET,
            accessKeyId: config.S3_ACCESS_KEY_ID,
            secretAccessKey: config.S3_SECRET_ACCESS_KEY,
            forcePathStyle: config.S3_FORCE_PATH_STYLE,
          }
        : undefined,
    });
  const master = keyring.keys.get(keyring.activeKeyId)!;
  return {
    config,
    log,
    pool,
    redis,
    queues,
    store,
    keyring,
    fileUrlSecret: deriveSecret(master, 'file-urls'),
    async close() {
      await queues.close();
      await closeRedis(redis);
      await pool.end().catch(() => undefined);
      await store.close().catch(() => undefined);
    },
  };
}
