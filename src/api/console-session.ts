import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SignJWT, jwtVerify } from 'jose';
import * as consoleUsers from '../db/repos/console-users.js';
import { AppError } from '../domain/errors.js';
import { SCOPES } from '../domain/kinds.js';
import type { KindLimits } from '../domain/policies.js';
import type { Runtime } from '../runtime.js';

/**
 * The web console's session: an HttpOnly cookie holding a short-lived JWT (HS256, jose) that names a
 * session row. The token proves who signed it and until when; the row (checked on every request)
 * lets sign-out and `users disable` end a session at once. A token past half its life is renewed
 * on use, never past the session's own end (CONSOLE_SESSION_MAX_SECONDS after sign-in).
 *
 * CSRF: the cookie is SameSite=Strict, and every state-changing request that authenticates with it
 * must also carry `x-csrf-token`, an HMAC of the session id that only a page able to read our
 * answers (same origin) can know. It is given in the sign-in answer (header and a readable cookie)
 * and by `GET /api/session`.
 */

export const SESSION_COOKIE = 'mf_session';
export const CSRF_COOKIE = 'mf_csrf';
export const CSRF_HEADER = 'x-csrf-token';
const ISSUER = 'mediaflow';
const AUDIENCE = 'mediaflow-console';
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface ConsoleIdentity {
  userId: string;
  email: string;
  sessionId: string;
  sessionExpiresAt: Date;
  csrfToken: string;
}

const keys = new WeakMap<Runtime, Uint8Array>();

/** CONSOLE_SESSION_SECRET, or (development, tests) a key derived from the master key for this purpose only. */
function signingKey(rt: Runtime): Uint8Array {
  let key = keys.get(rt);
  if (!key) {
    const secret = rt.config.CONSOLE_SESSION_SECRET;
    key = secret ? new TextEncoder().encode(secret) : createHmac('sha256', rt.fileUrlSecret).update('mediaflow:console-session').digest();
    keys.set(rt, key);
  }
  return key;
}

export function csrfTokenFor(rt: Runtime, sessionId: string): string {
  return createHmac('sha256', signingKey(rt)).update(`csrf:v1:${sessionId}`).digest('base64url');
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

async function issueToken(rt: Runtime, s: { sessionId: string; userId: string; sessionExpiresAt: Date }): Promise<{ token: string; expiresAt: Date }> {
  const expiresAt = new Date(Math.min(Date.now() + rt.config.CONSOLE_SESSION_TTL_SECONDS * 1000, s.sessionExpiresAt.getTime()));
  const token = await new SignJWT({ sid: s.sessionId })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(s.userId)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(Math.floor(expiresAt.getTime() / 1000))
    .sign(signingKey(rt));
  return { token, expiresAt };
}

/** Secure whenever the request came over https (directly, or through a trusted proxy). */
function cookieBase(req: FastifyRequest) {
  return { path: '/', sameSite: 'strict' as const, secure: req.protocol === 'https' };
}

export async function setSessionCookies(rt: Runtime, req: FastifyRequest, reply: FastifyReply, s: { sessionId: string; userId: string; sessionExpiresAt: Date }): Promise<string> {
  const { token, expiresAt } = await issueToken(rt, s);
  const maxAge = Math.max(1, Math.floor((expiresAt.getTime() - Date.now()) / 1000));
  const csrf = csrfTokenFor(rt, s.sessionId);
  reply.setCookie(SESSION_COOKIE, token, { ...cookieBase(req), httpOnly: true, maxAge });
  // Readable by the console's script (that is its purpose); it grants nothing without the session cookie.
  reply.setCookie(CSRF_COOKIE, csrf, { ...cookieBase(req), httpOnly: false, maxAge: Math.floor((s.sessionExpiresAt.getTime() - Date.now()) / 1000) });
  reply.header(CSRF_HEADER, csrf);
  return csrf;
}

export function clearSessionCookies(req: FastifyRequest, reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, { ...cookieBase(req), httpOnly: true });
  reply.clearCookie(CSRF_COOKIE, { ...cookieBase(req), httpOnly: false });
}

export function hasSessionCookie(req: FastifyRequest): boolean {
  return typeof req.cookies?.[SESSION_COOKIE] === 'string' && req.cookies[SESSION_COOKIE] !== '';
}

/**
 * The console user behind the request's session cookie, as an auth context for the app they belong
 * to (every scope: the console is the app's own dashboard). 401 when the cookie is missing, forged,
 * expired, signed out or its user disabled; 403 when a state-changing request lacks the CSRF header.
 */
export async function authenticateSession(rt: Runtime, req: FastifyRequest, reply: FastifyReply) {
  const token = req.cookies?.[SESSION_COOKIE];
  if (!token) throw new AppError('UNAUTHORIZED', 'sign in to the console first (no session cookie)');
  let payload: { sid?: unknown; exp?: number };
  try {
    ({ payload } = await jwtVerify(token, signingKey(rt), { issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'] }));
  } catch {
    throw new AppError('UNAUTHORIZED', 'the console session is invalid or has expired; sign in again');
  }
  if (typeof payload.sid !== 'string' || typeof payload.exp !== 'number') throw new AppError('UNAUTHORIZED', 'the console session is invalid; sign in again');
  const sid = payload.sid;
  const live = await liveSession(rt, sid);
  checkCsrf(rt, req, sid);
  // Renew past half the token's life, so a console in use stays signed in and an idle one does not.
  if (payload.exp * 1000 - Date.now() < (rt.config.CONSOLE_SESSION_TTL_SECONDS * 1000) / 2) {
    await setSessionCookies(rt, req, reply, { sessionId: sid, userId: live.user_id, sessionExpiresAt: live.expires_at });
  }
  return {
    auth: { appId: live.app_id, scopes: new Set(SCOPES), keyPrefix: `console:${live.user_id}`, limits: (live.limits ?? {}) as KindLimits },
    identity: { userId: live.user_id, email: live.email, sessionId: sid, sessionExpiresAt: live.expires_at, csrfToken: csrfTokenFor(rt, sid) } satisfies ConsoleIdentity,
  };
}

async function liveSession(rt: Runtime, sid: string) {
  const live = await consoleUsers.findLiveConsoleSession(rt.pool, sid);
  if (!live) throw new AppError('UNAUTHORIZED', 'the console session has ended; sign in again');
  return live;
}

function checkCsrf(rt: Runtime, req: FastifyRequest, sid: string): void {
  if (SAFE_METHODS.has(req.method)) return;
  const given = req.headers[CSRF_HEADER];
  if (typeof given !== 'string' || !sameToken(given, csrfTokenFor(rt, sid))) {
    throw new AppError('FORBIDDEN', `a request that changes something with the console session needs the ${CSRF_HEADER} header from the sign-in answer`);
  }
}
