import type { FastifyInstance, FastifyRequest } from 'fastify';
import * as appsRepo from '../../db/repos/apps.js';
import { AppError } from '../../domain/errors.js';
import { sha256Hex } from '../../domain/ids.js';
import type { Scope } from '../../domain/kinds.js';
import type { KindLimits } from '../../domain/policies.js';
import type { Runtime } from '../../runtime.js';

export interface AuthContext {
  appId: string;
  scopes: ReadonlySet<Scope>;
  keyPrefix: string;
  /** The app's per-kind input limits, overriding the defaults. */
  limits: KindLimits;
}

declare module 'fastify' {
  interface FastifyRequest {
    auth?: AuthContext;
  }
  interface FastifyContextConfig {
    /** The scope a route needs; routes without one under /v1 and /media still need a valid key. */
    scope?: Scope;
    /** Routes that take no API key (health, public file URLs, docs). */
    public?: boolean;
  }
}

/** Scopes are checked here and nowhere else. */
export function registerAuth(app: FastifyInstance, rt: Runtime): void {
  app.addHook('onRequest', async (req) => {
    const cfg = req.routeOptions.config;
    if (cfg?.public) return;
    const url = req.url;
    if (!url.startsWith('/v1') && !url.startsWith('/media')) return;
    req.auth = await authenticate(rt, req);
    req.log = req.log.child({ appId: req.auth.appId, key: req.auth.keyPrefix });
    if (cfg?.scope && !req.auth.scopes.has(cfg.scope)) throw new AppError('FORBIDDEN', `this key lacks the ${cfg.scope} scope`);
  });
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
