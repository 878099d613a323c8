import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import type { RedisConnection } from '../../queue/connection.js';
import { AppError } from '../../domain/errors.js';
import type { Runtime } from '../../runtime.js';

/**
 * Per-API-key limits, kept in Redis so every API instance shares them.
 *
 * 1. A request rate: RATE_LIMIT_PER_MINUTE per key in a fixed one-minute window
 *    (@fastify/rate-limit's Redis store), keyed by the key's visible prefix once auth has run.
 * 2. Uploads in flight: at most UPLOAD_CONCURRENCY_PER_KEY `POST /v1/media` at once per key.
 *    Each upload holds a lease in a sorted set scored by Redis time; the lease is renewed while
 *    the request lives and released when its response closes. A process that dies mid-upload
 *    cannot release, so a lease nobody renews expires after LEASE_MS and the slot comes back.
 *
 * Both answer 429 RATE_LIMITED in the error envelope with `retry-after`. Both fail open when Redis
 * does not answer: reads must not depend on Redis, and a write needs Redis to enqueue anyway, so it
 * gets its 503 there.
 */

const LEASE_MS = 60_000;
const RENEW_MS = 20_000;

/** Drops expired leases, then takes one if fewer than ARGV[2] are held. Redis time, so API hosts' clocks don't matter. */
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`;

/** Moves a held lease's time forward (XX: never re-creates one that expired or was released). */
const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
`;

interface LeaseCommands {
  mfUploadAcquire(key: string, leaseMs: number, limit: number, token: string): Promise<number>;
  mfUploadRenew(key: string, leaseMs: number, token: string): Promise<number>;
}

function leaseCommands(redis: RedisConnection): LeaseCommands {
  const r = redis as RedisConnection & Partial<LeaseCommands>;
  if (!r.mfUploadAcquire) redis.defineCommand('mfUploadAcquire', { numberOfKeys: 1, lua: ACQUIRE });
  if (!r.mfUploadRenew) redis.defineCommand('mfUploadRenew', { numberOfKeys: 1, lua: RENEW });
  return r as unknown as LeaseCommands;
}

/** Must be registered before the routes: both limits attach themselves to routes as they are added. */
export async function registerRateLimits(app: FastifyInstance, rt: Runtime): Promise<void> {
  const ns = `${rt.config.QUEUE_PREFIX}:ratelimit:`;
  await app.register(rateLimit, {
    global: true,
    max: rt.config.RATE_LIMIT_PER_MINUTE,
    timeWindow: 60_000,
    // A route-level onRequest hook: it runs after the app-level auth hook, so the key is known,
    // and before any body is read.
    hook: 'onRequest',
    redis: rt.redis,
    nameSpace: ns,
    keyGenerator: (req) => req.auth?.keyPrefix ?? 'anonymous',
    // Only API-key traffic is limited here: health, docs, metrics, public file URLs and slot PUTs carry no key.
    allowList: (req) => !req.auth,
    skipOnError: true,
    errorResponseBuilder: (_req, ctx) =>
      new AppError('RATE_LIMITED', `this API key made more than ${ctx.max} requests in a minute; retry in ${ctx.after}`, { limit: ctx.max, windowSeconds: 60 }),
  });

  const limit = rt.config.UPLOAD_CONCURRENCY_PER_KEY;
  const cmds = leaseCommands(rt.redis);
  const holdUploadLease = async (req: FastifyRequest, reply: FastifyReply) => {
    const auth = req.auth;
    if (!auth) return;
    const key = `${ns}uploads:${auth.keyPrefix}`;
    const token = `${req.id}:${randomUUID()}`;
    let got: number;
    try {
      got = await cmds.mfUploadAcquire(key, LEASE_MS, limit, token);
    } catch (err) {
      req.log.warn({ err: (err as Error).message }, 'upload concurrency check skipped: Redis did not answer');
      return;
    }
    if (!got) {
      reply.header('retry-after', '1');
      throw new AppError('RATE_LIMITED', `at most ${limit} uploads may be in flight at once for this API key`, { limit, inFlight: limit });
    }
    const renew = setInterval(() => void cmds.mfUploadRenew(key, LEASE_MS, token).catch(() => undefined), RENEW_MS);
    renew.unref();
    // 'close' fires once the response is finished or the connection is gone, whichever comes first.
    reply.raw.once('close', () => {
      clearInterval(renew);
      void rt.redis.zrem(key, token).catch(() => undefined);
    });
  };
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    // The console's dashboard upload is an upload like any other: its user holds a lease the same way.
    if ((route.url !== '/v1/media' && route.url !== '/api/media/upload') || !methods.includes('POST')) return;
    const existing = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    route.onRequest = [...existing, holdUploadLease] as typeof route.onRequest;
  });
}

/** Wrong operator tokens (dashboard, metrics) one client address may send per window before it gets 429. */
export const AUTH_FAILURES_PER_WINDOW = 10;
const AUTH_FAILURE_WINDOW_MS = 60_000;
/** The window starts at the first failure (PEXPIRE NX would need Redis 7). */
const COUNT_FAILURE = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`;

export interface AuthFailureLimiter {
  /** Seconds the address must wait before trying again, or 0 when it may try now. */
  retryAfter(address: string): Promise<number>;
  /** Counts one wrong token from this address. */
  record(address: string): Promise<void>;
}

/**
 * Guessing operator tokens: failures per client address in a fixed one-minute window, in Redis so
 * every API instance (and the METRICS_PORT servers) share one count. A good token from a blocked
 * address waits out the window too, so a guesser learns nothing from the answer. Fails open when
 * Redis does not answer: the 32-character token is the real guard; this only slows guessing.
 */
export function authFailureLimiter(rt: Pick<Runtime, 'redis' | 'config' | 'log'>): AuthFailureLimiter {
  const keyOf = (address: string) => `${rt.config.QUEUE_PREFIX}:ratelimit:auth-failures:${address}`;
  return {
    async retryAfter(address) {
      try {
        const res = await rt.redis.multi().get(keyOf(address)).pttl(keyOf(address)).exec();
        const count = Number(res?.[0]?.[1] ?? 0);
        const ttl = Number(res?.[1]?.[1] ?? -1);
        return count >= AUTH_FAILURES_PER_WINDOW ? Math.max(1, Math.ceil(ttl / 1000)) : 0;
      } catch (err) {
        rt.log.warn({ err: (err as Error).message }, 'operator auth failure check skipped: Redis did not answer');
        return 0;
      }
    },
    async record(address) {
      const key = keyOf(address);
      await rt.redis.eval(COUNT_FAILURE, 1, key, AUTH_FAILURE_WINDOW_MS).catch(() => undefined);
    },
  };
}
