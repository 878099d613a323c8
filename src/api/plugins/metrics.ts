import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../domain/errors.js';
import { queueDepth, registry } from '../../metrics.js';
import { JOBS, type JobName } from '../../queue/registry.js';
import type { Runtime } from '../../runtime.js';
import { carriesAdminToken } from './admin.js';

/**
 * /metrics needs ADMIN_TOKEN (Bearer or Basic) when one is set, and is open when none is: the
 * numbers carry no tenant data (labels are route templates, queue names, kinds, outcomes), but on
 * an API that faces the internet they still tell traffic volumes, error rates and the runtime's
 * versions to anyone, so an operator who set an admin credential gets them behind it. Prometheus
 * sends it with `authorization: { credentials: … }` in the scrape config.
 */
export function metricsAllowed(rt: Runtime, authorization: string | undefined): boolean {
  const token = rt.config.ADMIN_TOKEN;
  return !token || carriesAdminToken(authorization, token);
}

/**
 * Queue depth is read from Redis when scraped, so any process (an API-only one too) reports the
 * same current numbers; bounded so a slow Redis cannot hold a scrape.
 */
export async function refreshQueueDepth(rt: Runtime, timeoutMs = 1000): Promise<void> {
  const work = (async () => {
    for (const name of Object.keys(JOBS) as JobName[]) {
      const counts = await rt.queues.get(name).getJobCounts('waiting', 'active', 'delayed', 'failed', 'prioritized');
      for (const [state, v] of Object.entries(counts)) queueDepth.labels(JOBS[name].queue, state).set(v);
    }
  })();
  let t: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise<void>((resolve) => (t = setTimeout(resolve, timeoutMs)))])
    .catch(() => undefined)
    .finally(() => clearTimeout(t));
  work.catch(() => undefined);
}

/** Guards and freshens the API's /metrics route (the route itself is in routes/health.ts). */
export function registerMetricsGuard(app: FastifyInstance, rt: Runtime): void {
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.url !== '/metrics') return;
    if (!metricsAllowed(rt, req.headers.authorization)) {
      reply.header('www-authenticate', 'Bearer realm="mediaflow metrics"');
      throw new AppError('UNAUTHORIZED', 'send ADMIN_TOKEN as a Bearer token to read metrics');
    }
    await refreshQueueDepth(rt);
  });
}

export interface MetricsServer {
  url: string;
  close(): Promise<void>;
}

/**
 * For roles without the API (worker, sweeper): a tiny HTTP server on METRICS_PORT with
 * `GET /metrics` (same token rule as the API's) and `GET /healthz` (the container healthcheck).
 */
export async function startMetricsServer(rt: Runtime, port: number, host: string): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"success":true,"data":{"status":"ok"}}');
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (!metricsAllowed(rt, req.headers.authorization)) {
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="mediaflow metrics"', 'content-type': 'text/plain' }).end('send ADMIN_TOKEN as a Bearer token\n');
      return;
    }
    void (async () => {
      await refreshQueueDepth(rt);
      const body = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType }).end(body);
    })().catch((err: unknown) => {
      rt.log.error({ err }, 'metrics scrape failed');
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const url = `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
