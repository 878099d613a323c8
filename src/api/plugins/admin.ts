import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Runtime } from '../../runtime.js';
import { hasBody } from './auth.js';
import { envelope } from './errors.js';
import { authFailureLimiter } from './rate-limit.js';

export const DASHBOARD_PATH = '/admin/queues';

/**
 * Whether an Authorization header carries an operator token (ADMIN_TOKEN, ADMIN_WRITE_TOKEN,
 * METRICS_TOKEN): as `Bearer <token>` (scripts, Prometheus' `authorization` scrape setting) or as
 * HTTP Basic with the token as the password and any user name (so a browser can open the dashboard
 * through its own login prompt). Compared as SHA-256 digests in constant time, so neither the
 * length nor a prefix of the token leaks through timing.
 */
export function carriesOperatorToken(header: string | undefined, token: string): boolean {
  if (!header) return false;
  const m = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  let given = m[2]!;
  if (m[1]!.toLowerCase() === 'basic') {
    const decoded = Buffer.from(given, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return false;
    given = decoded.slice(colon + 1);
  }
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

/**
 * The queue dashboard (bull-board) at /admin/queues. Without ADMIN_TOKEN or ADMIN_WRITE_TOKEN it
 * is not mounted at all (404): an admin surface with no credential must not exist.
 *
 * Read-only unless ADMIN_WRITE_TOKEN is set: adding, retrying, promoting or cleaning jobs reaches
 * the workers with whatever payload the request carries, so a read credential (often shared with
 * whoever watches the queues) must not grant it. With ADMIN_WRITE_TOKEN the queues are writable,
 * and any request that could change state (anything but GET/HEAD) needs that token; reading takes
 * either. Wrong tokens are counted per client address (authFailureLimiter): past the limit, 429.
 *
 * bull-board installs its own error handler in its scope, so refusals are sent from the guard
 * directly in the API's error envelope rather than thrown.
 */
export async function registerQueueDashboard(app: FastifyInstance, rt: Runtime): Promise<void> {
  const readToken = rt.config.ADMIN_TOKEN;
  const writeToken = rt.config.ADMIN_WRITE_TOKEN;
  if (!readToken && !writeToken) return;
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: rt.queues.all().map((q) => new BullMQAdapter(q, { readOnlyMode: !writeToken })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'mediaflow' } },
  });
  const failures = authFailureLimiter(rt);
  await app.register(async (scope) => {
    // These routes take no API key (the auth hook skips them); the guard below is their auth.
    scope.addHook('onRoute', (route) => {
      route.config = { ...route.config, admin: true };
    });
    scope.addHook('onRequest', async (req, reply) => {
      // Any refusal below is sent before the body is read: close rather than drain it.
      if (hasBody(req)) reply.header('connection', 'close');
      const wait = await failures.retryAfter(req.ip);
      if (wait > 0) {
        return reply
          .code(429)
          .header('retry-after', String(wait))
          .send(envelope('RATE_LIMITED', `too many wrong admin tokens from this address; retry in ${wait} s`, req.id));
      }
      const header = req.headers.authorization;
      const writes = !!writeToken && carriesOperatorToken(header, writeToken);
      const reads = writes || (!!readToken && carriesOperatorToken(header, readToken));
      if (!reads) {
        await failures.record(req.ip);
        return reply
          .code(401)
          .header('www-authenticate', 'Basic realm="mediaflow admin", charset="UTF-8"')
          .send(envelope('UNAUTHORIZED', 'send ADMIN_TOKEN (or ADMIN_WRITE_TOKEN) as a Bearer token or as the Basic auth password', req.id));
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        if (!writes) {
          const why = writeToken ? 'changing queues needs ADMIN_WRITE_TOKEN' : 'the queue dashboard is read-only (ADMIN_WRITE_TOKEN is not set)';
          return reply.code(403).send(envelope('FORBIDDEN', why, req.id));
        }
        // Basic credentials are sent by the browser on its own: refuse state changes started by another site.
        if (req.headers['sec-fetch-site'] === 'cross-site') {
          return reply.code(403).send(envelope('FORBIDDEN', 'cross-site requests cannot change queues', req.id));
        }
      }
      if (hasBody(req)) reply.removeHeader('connection');
      req.log = req.log.child({ admin: writes ? 'write' : 'read' });
    });
    await scope.register(serverAdapter.registerPlugin(), { prefix: DASHBOARD_PATH });
  });
}
