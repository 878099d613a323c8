import { randomUUID } from 'node:crypto';
import fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import cookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import { HARD_CAP_BYTES } from '../domain/policies.js';
import { httpRequestsTotal, httpSeconds } from '../metrics.js';
import type { Runtime } from '../runtime.js';
import { registerQueueDashboard } from './plugins/admin.js';
import { registerAuth } from './plugins/auth.js';
import { registerMetricsGuard } from './plugins/metrics.js';
import { registerOpenApi } from './plugins/openapi.js';
import { registerRateLimits } from './plugins/rate-limit.js';
import { registerSocketGuards } from './plugins/socket-guards.js';
import { requestSerializer } from './plugins/request-log.js';
import { registerErrorHandling } from './plugins/errors.js';
import { registerDownloadRoutes } from './routes/download.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerMediaRoutes } from './routes/media.js';
import { registerReferenceRoutes } from './routes/references.js';
import { registerDeviceRoutes } from './routes/devices.js';
import { registerUploadRoutes } from './routes/uploads.js';
import { registerTusRoutes } from './routes/tus.js';
import { consoleDistDir, registerConsoleRoutes } from './routes/console.js';
import { registerLibraryRoutes } from './routes/library.js';
import { trustedProxies } from './trusted-proxies.js';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Longer than any legitimate silence: `?wait=30` on an upload, a body window, a scrape. */
const IDLE_SOCKET_MS = 120_000;

/** The Fastify app over a runtime; `listen` is the caller's. */
export async function buildApp(rt: Runtime): Promise<FastifyInstance> {
  const proxies = trustedProxies(rt.config.TRUST_PROXY);
  const headersTimeoutMs = rt.config.HEADERS_TIMEOUT_SECONDS * 1000;
  const app = fastify({
    loggerInstance: rt.log.child({ role: 'api' }, { serializers: { req: requestSerializer } }) as FastifyBaseLogger,
    // A client's request id is kept when it is safe to echo, else we make one.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // X-Forwarded-* shape temporary and upload URLs (without PUBLIC_BASE_URL) and client
    // addresses (per-address limits): believed only from the proxies the operator listed.
    trustProxy: proxies.trustProxy,
    // Every wait has a deadline: headers within HEADERS_TIMEOUT_SECONDS (checked every second,
    // Node's default check runs every 30 s), bodies above a floor rate (socket-guards), and a
    // socket with no traffic either way (a client that stops reading a download) closed after
    // IDLE_SOCKET_MS. No total request deadline: a 100 MB upload on a slow line takes long.
    http: { headersTimeout: headersTimeoutMs, connectionsCheckingInterval: Math.min(1000, headersTimeoutMs), requestTimeout: 0 },
    connectionTimeout: IDLE_SOCKET_MS,
    bodyLimit: 1024 * 1024,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false } },
  });
  registerSocketGuards(app.server, {
    bodyMinBytesPerSecond: rt.config.BODY_MIN_BYTES_PER_SECOND,
    bodyRateWindowMs: rt.config.BODY_RATE_WINDOW_SECONDS * 1000,
    maxConnectionsPerIp: rt.config.MAX_CONNECTIONS_PER_IP,
    exempt: (address) => proxies.trusts(address),
    log: rt.log.child({ role: 'api' }),
  });
  // Route schemas only document (OpenAPI): handlers validate with zod (`parseOr400`), so Fastify
  // must neither reject nor coerce what zod would judge, nor strip fields through a response schema.
  app.setValidatorCompiler(() => (data) => ({ value: data }));
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    httpRequestsTotal.labels(req.method, route, String(reply.statusCode)).inc();
    httpSeconds.labels(req.method, route).observe(reply.elapsedTime / 1000);
  });
  registerErrorHandling(app);
  await app.register(multipart, {
    limits: { fileSize: Math.min(rt.config.HARD_CAP_BYTES, HARD_CAP_BYTES), files: 1, fields: 20, fieldSize: 64 * 1024, parts: 30, headerPairs: 100 },
  });
  // The console's session cookie is parsed before auth reads it; sendFile serves its built files.
  await app.register(cookie);
  await app.register(fastifyStatic, { root: consoleDistDir(), serve: false });
  registerAuth(app, rt);
  // Both collect routes as they are added (onRoute), so they come before any route.
  await registerOpenApi(app);
  await registerRateLimits(app, rt);
  registerMetricsGuard(app, rt);
  registerHealthRoutes(app, rt);
  registerMediaRoutes(app, rt);
  registerReferenceRoutes(app, rt);
  registerDownloadRoutes(app, rt);
  registerDeviceRoutes(app, rt);
  registerUploadRoutes(app, rt);
  registerTusRoutes(app, rt);
  registerLibraryRoutes(app, rt);
  registerConsoleRoutes(app, rt);
  await registerQueueDashboard(app, rt);
  return app;
}
