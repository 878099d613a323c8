import type { FastifyInstance } from 'fastify';
import { pingDatabase } from '../../db/pool.js';
import { registry } from '../../metrics.js';
import type { Runtime } from '../../runtime.js';
import { ok, routeSchema } from '../plugins/openapi.js';

async function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`timeout after ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

export function registerHealthRoutes(app: FastifyInstance, rt: Runtime): void {
  app.get('/healthz', {
    config: { public: true },
    schema: routeSchema({ summary: 'Liveness: 200 while the process lives', tags: ['ops'], auth: 'public', responses: { 200: ok({ type: 'object' }, 'alive') } }),
  }, async () => ({ success: true, data: { status: 'ok' } }));

  /** 200 only when PostgreSQL, Redis and storage all answer. */
  app.get('/readyz', {
    config: { public: true },
    schema: routeSchema({
      summary: 'Readiness: 200 only when PostgreSQL, Redis and storage answer', tags: ['ops'], auth: 'public',
      responses: { 200: ok({ type: 'object' }, 'ready, with each check') }, errors: ['QUEUE_UNAVAILABLE'],
    }),
  }, async (_req, reply) => {
    const checks = await Promise.allSettled([
      within(pingDatabase(rt.pool), 2000),
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

  app.get('/metrics', {
    config: { public: true },
    schema: routeSchema({
      summary: 'Prometheus metrics (needs METRICS_TOKEN as a bearer token when one is set)', tags: ['ops'], auth: 'admin',
      responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } },
    }),
  }, async (_req, reply) => {
    return reply.header('content-type', registry.contentType).send(await registry.metrics());
  });
}
