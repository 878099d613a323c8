import type { FastifyInstance } from 'fastify';
import { registry } from '../../metrics.js';
import type { Runtime } from '../../runtime.js';

async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`timeout after ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

export function registerHealthRoutes(app: FastifyInstance, rt: Runtime): void {
  app.get('/healthz', { config: { public: true } }, async () => ({ success: true, data: { status: 'ok' } }));

  /** 200 only when PostgreSQL, Redis and storage all answer. */
  app.get('/readyz', { config: { public: true } }, async (_req, reply) => {
    const checks = await Promise.allSettled([
      within(rt.pool.query('SELECT 1'), 2000),
      within(rt.redis.ping(), 2000),
      within(rt.store.ping(), 3000),
    ]);
    const names = ['postgres', 'redis', 'storage'] as const;
    const status = Object.fromEntries(checks.map((c, i) => [names[i], c.status === 'fulfilled' ? 'ok' : `down: ${String((c as PromiseRejectedResult).reason?.message ?? c)}`]));
    const ok = checks.every((c) => c.status === 'fulfilled');
    return reply.code(ok ? 200 : 503).send(
      ok
        ? { success: true, data: { status: 'ready', checks: status } }
        : { success: false, error: { code: 'QUEUE_UNAVAILABLE', message: 'a dependency is down', request_id: _req.id, details: status } },
    );
  });

  app.get('/metrics', { config: { public: true } }, async (_req, reply) => {
    return reply.header('content-type', registry.contentType).send(await registry.metrics());
  });
}
