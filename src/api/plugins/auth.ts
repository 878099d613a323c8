import type { FastifyInstance, FastifyRequest } from 'fastify';
import * as appsRepo from '../../db/repos/apps.js';
import { AppError } from '../../domain/errors.js';
import { sha256Hex } from '../../domain/ids.js';
import type { Scope } from '../../domain/kinds.js';
import type { KindLimits } from '../../domain/policies.js';
import type { Runtime } from '../../runtime.js';
import { authenticateSession, hasSessionCookie, type ConsoleIdentity } from '../console-session.js';

export interface AuthContext {
  appId: string;
  scopes: ReadonlySet<Scope>;
  keyPrefix: string;
  /** The app's per-kind input limits, overriding the defaults. */
  limits: KindLimits;
  /** Set when the request came from a console session (cookie) rather than an API key. */
  console?: ConsoleIdentity;
}

declare module 'fastify' {
  interface FastifyRequest {
    auth?: AuthContext;
  }
  interface FastifyContextConfig {
    /** The scope a route needs; a route without one still needs a valid key. */
    scope?: Scope;
    /** Routes that take no API key (health, public file URLs, slot PUTs, docs). */
    public?: boolean;
    /** Routes guarded by an operator token in their own scope (the queue dashboard), not by an API key. */
    admin?: boolean;
    /** Routes of the web console that take its session cookie only: an API key is 401 there. */
    console?: boolean;
  }
}

/** How a route is reached, as decided from its registration: an API key unless it says otherwise. */
export type RouteAccess = 'api-key' | 'public' | 'admin' | 'console';

export interface RegisteredRoute {
  method: string;
  url: string;
  access: RouteAccess;
}

type RouteSeen = { method: string | string[]; url: string; config?: { public?: boolean; admin?: boolean; console?: boolean } };
const routeTables = new WeakMap<FastifyInstance, RouteSeen[]>();

/** Every route registered on an app after registerAuth, with the access it was given (for audits and tests). */
export function registeredRoutes(app: FastifyInstance): RegisteredRoute[] {
  // Read at call time: a scope's own onRoute hook (the dashboard's) may set config after ours ran.
  return (routeTables.get(app) ?? []).flatMap((r) => [r.method].flat().map((method) => ({ method, url: r.url, access: accessOf(r.config) })));
}

function accessOf(config: { public?: boolean; admin?: boolean; console?: boolean } | undefined): RouteAccess {
  return config?.public ? 'public' : config?.admin ? 'admin' : config?.console ? 'console' : 'api-key';
}

/**
 * Scopes are checked here and nowhere else. Access is decided on the route the router matched
 * (its config), never on `req.url`: the raw URL may be percent-encoded or absolute-form and still
 * reach a route, so any prefix test on it can be walked around. A route is private unless it is
 * registered `public` (or `admin`, guarded in its own scope). This runs at onRequest, before any
 * body is read, and an unmatched request is answered 404 here for the same reason.
 *
 * Two credentials, decided here too: an API key (`Authorization: Bearer`), or the web console's
 * session cookie (src/api/console-session.ts), which every API-key route also takes, acting with
 * every scope of the user's app; with the cookie, a state-changing request needs the CSRF header.
 * An Authorization header always wins over a cookie. Routes marked `console` take the session only.
 */
export function registerAuth(app: FastifyInstance, rt: Runtime): void {
  const table: RouteSeen[] = [];
  routeTables.set(app, table);
  app.addHook('onRoute', (route) => void table.push(route));
  app.addHook('onRequest', async (req, reply) => {
    try {
      if (req.is404) throw new AppError('NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`);
      const cfg = req.routeOptions.config;
      const access = accessOf(cfg);
      if (access === 'public' || access === 'admin') return;
      if (access === 'console' && req.headers.authorization !== undefined) {
        throw new AppError('UNAUTHORIZED', 'this route takes the console session (sign in at /console), not an API key');
      }
      if (access === 'console' || (req.headers.authorization === undefined && hasSessionCookie(req))) {
        const { auth, identity } = await authenticateSession(rt, req, reply);
        req.auth = { ...auth, console: identity };
      } else {
        req.auth = await authenticate(rt, req);
      }
      req.log = req.log.child({ appId: req.auth.appId, key: req.auth.keyPrefix });
      if (cfg?.scope && !req.auth.scopes.has(cfg.scope)) throw new AppError('FORBIDDEN', `this key lacks the ${cfg.scope} scope`);
    } catch (err) {
      // The body was never read: closing after the answer keeps Node from draining it for us.
      if (hasBody(req)) reply.header('connection', 'close');
      throw err;
    }
  });
}

export function hasBody(req: FastifyRequest): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

async function authenticate(rt: Runtime, req: FastifyRequest): Promise<AuthContext> {
  const h = req.headers.authorization;
  const m = h ? /^Bearer\s+(\S+)\s*$/i.exec(h) : null;
  if (!m) throw new AppError('UNAUTHORIZED', 'send Authorization: Bearer <apiKey>');
  const key = m[1]!;
  if (!key.startsWith('mf_') || key.length > 200) throw new AppError('UNAUTHORIZED', 'unknown API key');
  const row = await appsRepo.findApiKeyByHash(rt.pool, sha256Hex(key));
  if (!row) throw new AppError('UNAUTHORIZED', 'unknown API key');
  if (row.revoked_at) throw new AppError('UNAUTHORIZED', 'this API key was revoked');
  return { appId: row.app_id, scopes: new Set(row.scopes), keyPrefix: row.prefix, limits: (row.limits ?? {}) as KindLimits };
}

export function authOf(req: FastifyRequest): AuthContext {
  if (!req.auth) throw new AppError('UNAUTHORIZED', 'authentication required');
  return req.auth;
}
