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

/**
 * One connection attempt with no retry, for start-up checks and `mediaflow doctor`: resolves with a
 * ready connection (the caller disconnects it), or rejects with what the socket said (ECONNREFUSED,
 * ENOTFOUND, a timeout, a refused AUTH) rather than ioredis's bare "Connection is closed.".
 */
export async function connectOnce(url: string, timeoutMs = 2000): Promise<Redis> {
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false });
  let cause: Error | undefined;
  redis.on('error', (err: Error) => (cause ??= err));
  // connectTimeout ends at the TCP handshake; a peer that accepts and then says nothing (not a
  // Redis) would hold the ready check forever.
  const deadline = setTimeout(() => {
    cause ??= Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
    redis.disconnect();
  }, timeoutMs);
  try {
    await redis.connect();
    return redis;
  } catch (err) {
    redis.disconnect();
    throw cause ?? err;
  } finally {
    clearTimeout(deadline);
  }
}
