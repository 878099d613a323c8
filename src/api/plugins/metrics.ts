import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { AppError } from '../../domain/errors.js';
import { queueDepth, registry } from '../../metrics.js';
import { JOBS, type JobName } from '../../queue/registry.js';
import type { Runtime } from '../../runtime.js';
import { carriesOperatorToken } from './admin.js';
import { authFailureLimiter, type AuthFailureLimiter } from './rate-limit.js';

export type MetricsAccess = { ok: true } | { ok: false; status: 401 } | { ok: false; status: 429; retryAfter: number };

/**
 * /metrics needs METRICS_TOKEN (Bearer or Basic) when one is set, and is open when none is (the
 * contract lists it open): the numbers carry no tenant data (labels are route templates, queue
 * names, kinds, outcomes), but on an API that faces the internet they still tell traffic volumes,
 * error rates and the runtime's versions to anyone. Its own token, not ADMIN_TOKEN: the scraper's
 * credential sits in a Prometheus config and must not open the queue dashboard. Prometheus sends it
 * with `authorization: { credentials: … }` in the scrape config. Wrong tokens are counted per client
 * address like the dashboard's (one shared count): past the limit, 429.
 */
export async function checkMetricsAccess(rt: Runtime, failures: AuthFailureLimiter, address: string, authorization: string | undefined): Promise<MetricsAccess> {
  const token = rt.config.METRICS_TOKEN;
  if (!token) return { ok: true };
  const wait = await failures.retryAfter(address);
  if (wait > 0) return { ok: false, status: 429, retryAfter: wait };
  if (carriesOperatorToken(authorization, token)) return { ok: true };
  await failures.record(address);
  return { ok: false, status: 401 };
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
  const failures = authFailureLimiter(rt);
  app.addHook('onRequest', async (req, reply) => {
    if (req.routeOptions.url !== '/metrics') return;
    const access = await checkMetricsAccess(rt, failures, req.ip, req.headers.authorization);
    if (!access.ok && access.status === 429) {
      reply.header('retry-after', String(access.retryAfter));
      throw new AppError('RATE_LIMITED', `too many wrong metrics tokens from this address; retry in ${access.retryAfter} s`);
    }
    if (!access.ok) {
      reply.header('www-authenticate', 'Bearer realm="mediaflow metrics"');
      throw new AppError('UNAUTHORIZED', 'send METRICS_TOKEN as a Bearer token to read metrics');
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
  const failures = authFailureLimiter(rt);
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
    void (async () => {
      const access = await checkMetricsAccess(rt, failures, req.socket.remoteAddress ?? '', req.headers.authorization);
      if (!access.ok && access.status === 429) {
        res.writeHead(429, { 'retry-after': String(access.retryAfter), 'content-type': 'text/plain' }).end('too many wrong metrics tokens from this address\n');
        return;
      }
      if (!access.ok) {
        res.writeHead(401, { 'www-authenticate': 'Bearer realm="mediaflow metrics"', 'content-type': 'text/plain' }).end('send METRICS_TOKEN as a Bearer token\n');
        return;
      }
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
