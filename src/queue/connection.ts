import { Redis, type RedisOptions } from 'ioredis';

/**
 * Producers fail fast (no offline queue, one retry) so the API answers 503 in well under 2 s when
 * Redis is gone; workers wait out disconnects (BullMQ requires maxRetriesPerRequest: null).
 */
export function createRedis(url: string, role: 'producer' | 'worker', extra: RedisOptions = {}): Redis {
  const common: RedisOptions = { connectTimeout: 2000, lazyConnect: false, ...extra };
  const opts: RedisOptions =
    role === 'producer'
      ? { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 1500, retryStrategy: (n) => Math.min(n * 200, 2000) }
      : { ...common, maxRetriesPerRequest: null, enableReadyCheck: true, retryStrategy: (n) => Math.min(n * 500, 5000) };
  const redis = new Redis(url, opts);
  // Connection errors surface through commands; without a listener ioredis would print them all.
  redis.on('error', () => undefined);
  return redis;
}

/** Resolves once the connection is ready, or rejects after `timeoutMs`. */
export async function waitReady(redis: Redis, timeoutMs = 5000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => {
      cleanup();
      reject(new Error(`redis not ready after ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(t);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}
