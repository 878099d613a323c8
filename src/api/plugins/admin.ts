import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Runtime } from '../../runtime.js';
import { envelope } from './errors.js';

export const DASHBOARD_PATH = '/admin/queues';

/**
 * Whether an Authorization header carries ADMIN_TOKEN: as `Bearer <token>` (scripts, Prometheus'
 * `authorization` scrape setting) or as HTTP Basic with the token as the password and any user
 * name (so a browser can open the dashboard through its own login prompt). Compared as SHA-256
 * digests in constant time, so neither the length nor a prefix of the token leaks through timing.
 */
export function carriesAdminToken(header: string | undefined, token: string): boolean {
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
 * The queue dashboard (bull-board) at /admin/queues, behind ADMIN_TOKEN. Without ADMIN_TOKEN it is
 * not mounted at all (404): an admin surface with no credential must not exist.
 *
 * bull-board installs its own error handler in its scope, so refusals are sent from the guard
 * directly in the API's error envelope rather than thrown.
 */
export async function registerQueueDashboard(app: FastifyInstance, rt: Runtime): Promise<void> {
  const token = rt.config.ADMIN_TOKEN;
  if (!token) return;
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: rt.queues.all().map((q) => new BullMQAdapter(q)),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'mediaflow' } },
  });
  await app.register(async (scope) => {
    scope.addHook('onRequest', async (req, reply) => {
      if (!carriesAdminToken(req.headers.authorization, token)) {
        return reply
          .code(401)
          .header('www-authenticate', 'Basic realm="mediaflow admin", charset="UTF-8"')
          .send(envelope('UNAUTHORIZED', 'send ADMIN_TOKEN as a Bearer token or as the Basic auth password', req.id));
      }
      // Basic credentials are sent by the browser on its own: refuse state changes started by another site.
      if (req.method !== 'GET' && req.method !== 'HEAD' && req.headers['sec-fetch-site'] === 'cross-site') {
        return reply.code(403).send(envelope('FORBIDDEN', 'cross-site requests cannot change queues', req.id));
      }
      req.log = req.log.child({ admin: true });
    });
    await scope.register(serverAdapter.registerPlugin(), { prefix: DASHBOARD_PATH });
  });
}
