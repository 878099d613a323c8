import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import * as consoleUsers from '../../db/repos/console-users.js';
import * as mediaRepo from '../../db/repos/media.js';
import type { MediaRow } from '../../db/repos/media.js';
import { AppError, type ErrorCode, ERROR_STATUS } from '../../domain/errors.js';
import { signFileToken } from '../../domain/file-token.js';
import { newConsoleSessionId } from '../../domain/ids.js';
import { dummyHash, normalizeEmail, verifyPassword } from '../../domain/password.js';
import { fileTooLarge, suggestedMessageType } from '../../domain/policies.js';
import { hardCapBytes } from '../../ingest/limits.js';
import type { Runtime } from '../../runtime.js';
import { clearSessionCookies, setSessionCookies } from '../console-session.js';
import { authOf } from '../plugins/auth.js';
import { noContent, ok, routeSchema } from '../plugins/openapi.js';
import { signInLimiter } from '../plugins/sign-in-limit.js';
import { publicBaseUrl } from '../present-media.js';
import { parseOr400 } from '../validation.js';
import { createFromMultipart } from './media.js';

const signInBody = z.object({ email: z.string().min(1).max(320), password: z.string().min(1).max(1024) });

/** How long the dashboard upload waits for the media to settle before answering with what it has. */
const UPLOAD_WAIT_MS = 25_000;

const sessionDoc = {
  type: 'object',
  properties: { email: { type: 'string' }, appId: { type: 'string' }, csrfToken: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' } },
};
const dashboardUploadDoc = {
  type: 'object',
  properties: {
    id: { type: 'string' }, url: { type: 'string', description: 'the temporary URL (serves once the media is ready)' }, type: { type: 'string' },
    mimeType: { type: 'string' }, sizeBytes: { type: 'integer' }, originalName: { type: ['string', 'null'] }, expiresAt: { type: 'string', format: 'date-time' },
    suggestedMessageType: { type: ['string', 'null'] }, status: { type: 'string' },
  },
};

/** The built console: `console/dist` beside the sources (src/api/routes) or a build (dist/src/api/routes). */
export function consoleDistDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '../../../console/dist'), path.resolve(here, '../../../../console/dist')];
  return candidates.find((d) => existsSync(path.join(d, 'index.html'))) ?? candidates[0]!;
}

/**
 * Content-Security-Policy of the console's pages: nothing from any other origin. Inline style
 * attributes are allowed for the upload widget's progress bars; scripts only from our own files.
 */
const CONSOLE_CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' blob: data:", "media-src 'self' blob:",
  "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
].join('; ');

export function registerConsoleRoutes(app: FastifyInstance, rt: Runtime): void {
  const limiter = signInLimiter(rt);

  app.post('/api/session', {
    config: { public: true },
    schema: routeSchema({
      summary: 'Console sign-in', tags: ['console'], auth: 'public', body: signInBody,
      description: 'Sets an HttpOnly, SameSite=Strict session cookie (Secure over https) and answers the CSRF token in `x-csrf-token` (also in the readable `mf_csrf` cookie). Wrong credentials and an unknown email get the same 401; repeated failures per account and per address get 429.',
      responses: { 204: noContent('signed in') }, errors: ['VALIDATION_FAILED', 'UNAUTHORIZED', 'RATE_LIMITED'],
    }),
  }, async (req, reply) => {
    const body = parseOr400(signInBody, req.body ?? {});
    const email = normalizeEmail(body.email) ?? body.email.trim().toLowerCase();
    const blocked = await limiter.retryAfter(email, req.ip);
    if (blocked > 0) {
      reply.header('retry-after', String(blocked));
      throw new AppError('RATE_LIMITED', `too many failed sign-ins; retry in ${blocked} s`);
    }
    const user = await consoleUsers.findConsoleUserByEmail(rt.pool, email);
    // An unknown email costs the same scrypt as a known one, and answers the same.
    const good = await verifyPassword(body.password, user?.password_hash ?? (await dummyHash()));
    if (!user || !good || user.disabled_at) {
      await limiter.recordFailure(email, req.ip);
      req.log.info({ event: 'console.sign_in_failed' }, 'console sign-in refused');
      throw new AppError('UNAUTHORIZED', 'wrong email or password');
    }
    await limiter.reset(email);
    const sessionId = newConsoleSessionId();
    const sessionExpiresAt = new Date(Date.now() + rt.config.CONSOLE_SESSION_MAX_SECONDS * 1000);
    await consoleUsers.openConsoleSession(rt.pool, { id: sessionId, userId: user.id, expiresAt: sessionExpiresAt });
    await setSessionCookies(rt, req, reply, { sessionId, userId: user.id, sessionExpiresAt });
    req.log.info({ event: 'console.signed_in', userId: user.id, appId: user.app_id }, 'console user signed in');
    return reply.code(204).send();
  });

  app.get('/api/session', {
    config: { console: true },
    schema: routeSchema({
      summary: 'The signed-in console user and the CSRF token', tags: ['console'], auth: 'console',
      responses: { 200: ok(sessionDoc, 'the session') }, errors: ['UNAUTHORIZED'],
    }),
  }, async (req) => {
    const auth = authOf(req);
    const c = auth.console!;
    return { success: true, data: { email: c.email, appId: auth.appId, csrfToken: c.csrfToken, expiresAt: c.sessionExpiresAt.toISOString() } };
  });

  app.delete('/api/session', {
    config: { console: true },
    schema: routeSchema({ summary: 'Console sign-out: the session stops working at once', tags: ['console'], auth: 'console', responses: { 204: noContent('signed out') }, errors: ['UNAUTHORIZED', 'FORBIDDEN'] }),
  }, async (req, reply) => {
    const c = authOf(req).console!;
    await consoleUsers.revokeConsoleSession(rt.pool, c.sessionId);
    clearSessionCookies(req, reply);
    req.log.info({ event: 'console.signed_out', userId: c.userId }, 'console user signed out');
    return reply.code(204).send();
  });

  app.post('/api/media/upload', {
    config: { console: true },
    bodyLimit: hardCapBytes(rt) + 1024 * 1024,
    schema: routeSchema({
      summary: 'Dashboard upload (console session only; an API key is 401)', tags: ['console'], auth: 'console',
      description: 'multipart `file` and optional `type` (a kind). Committed like `POST /v1/media`; answers once the media is ready (or after 25 s with what it has). A media that fails answers with its error.',
      body: { content: { 'multipart/form-data': { schema: { type: 'object', required: ['file'], properties: { file: { type: 'string', format: 'binary' }, type: { type: 'string' } } } } } },
      responses: { 201: ok(dashboardUploadDoc, 'the media and its temporary URL') },
      errors: ['VALIDATION_FAILED', 'UNAUTHORIZED', 'FORBIDDEN', 'FILE_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'MEDIA_REJECTED', 'STORAGE_UNAVAILABLE'],
    }),
  }, async (req, reply) => {
    const auth = authOf(req);
    if (!req.isMultipart()) throw new AppError('VALIDATION_FAILED', 'send multipart/form-data with a part named file', { fields: { file: 'required' } });
    // A body that declares more than any input may be is refused before a byte of it is read.
    if (Number(req.headers['content-length'] ?? 0) > hardCapBytes(rt) + 1024 * 1024) {
      reply.header('connection', 'close');
      throw fileTooLarge(hardCapBytes(rt));
    }
    const { row } = await createFromMultipart(rt, req, auth.appId, false, { type: 'kind' });
    const settled = await settle(rt, row!, UPLOAD_WAIT_MS);
    if (settled.status === 'failed') {
      const code = (settled.error_code && settled.error_code in ERROR_STATUS ? settled.error_code : 'MEDIA_REJECTED') as ErrorCode;
      throw new AppError(code, settled.error_message ?? 'the media could not be processed', { id: settled.id });
    }
    const expiresAt = new Date(Math.min(Date.now() + rt.config.FILE_URL_TTL_SECONDS * 1000, settled.expires_at.getTime()));
    return reply.code(201).send({
      success: true,
      data: {
        id: settled.id,
        url: `${publicBaseUrl(rt, req)}/v1/files/${signFileToken(rt.fileUrlSecret, settled.id, expiresAt)}`,
        type: settled.kind,
        mimeType: settled.mime_type ?? settled.detected_mime,
        sizeBytes: settled.size_bytes ?? settled.input_bytes,
        originalName: settled.original_name,
        expiresAt: settled.expires_at.toISOString(),
        suggestedMessageType: settled.kind ? suggestedMessageType(settled.kind) : null,
        status: settled.status,
      },
    });
  });

  registerConsoleFiles(app);
}

async function settle(rt: Runtime, row: MediaRow, ms: number): Promise<MediaRow> {
  const deadline = Date.now() + ms;
  let current = row;
  let pause = 20;
  while (Date.now() < deadline && (current.status === 'queued' || current.status === 'processing')) {
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(250, pause * 1.5);
    current = (await mediaRepo.getMediaById(rt.pool, row.id)) ?? current;
  }
  return current;
}

/**
 * The console's static files at /console/ (served by @fastify/static's sendFile from console/dist).
 * Hashed assets are immutable for a year; index.html is revalidated every time so a new build is
 * picked up at once. Paths without an extension are the app's own screens: index.html.
 */
function registerConsoleFiles(app: FastifyInstance): void {
  const root = consoleDistDir();
  app.get('/console', { config: { public: true }, schema: { hide: true } }, async (_req, reply) => reply.redirect('/console/', 302));
  app.get('/console/*', { config: { public: true }, schema: { hide: true } }, async (req, reply) => {
    if (!existsSync(path.join(root, 'index.html'))) {
      throw new AppError('NOT_FOUND', 'the console is not built: run `npm run build:console` (npm start and npm test build it when missing)');
    }
    const wanted = (req.params as { '*': string })['*'] ?? '';
    reply.header('content-security-policy', CONSOLE_CSP).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
    if (wanted.startsWith('assets/')) {
      return reply.sendFile(wanted, root, { cacheControl: true, maxAge: 365 * 24 * 3600 * 1000, immutable: true, dotfiles: 'deny', index: false });
    }
    const file = wanted === '' || !path.extname(wanted) ? 'index.html' : wanted;
    reply.header('cache-control', 'no-cache');
    return reply.sendFile(file, root, { cacheControl: false, dotfiles: 'deny', index: false });
  });
}
