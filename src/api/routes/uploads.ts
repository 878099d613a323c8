import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { z } from 'zod';
import * as slotsRepo from '../../db/repos/upload-slots.js';
import { AppError } from '../../domain/errors.js';
import { newMediaId, sha256Hex } from '../../domain/ids.js';
import { MEDIA_KINDS } from '../../domain/kinds.js';
import { canonicalMime, decideKind, declaredAgrees, HARD_CAP_BYTES } from '../../domain/policies.js';
import { stageUpload } from '../../pipeline/stage-upload.js';
import type { Runtime } from '../../runtime.js';
import { authOf } from '../plugins/auth.js';
import { commitMedia } from '../../ingest/commit-media.js';
import { limitFor } from '../../ingest/limits.js';
import { mediaFieldsSchema, type MediaFields } from '../../ingest/media-fields.js';
import { checkOwnership } from '../../ingest/ownership.js';
import { presentMedia, publicBaseUrl } from '../present-media.js';
import { parseOr400 } from '../validation.js';
import { mediaObjectSchema, ok, routeSchema } from '../plugins/openapi.js';

export const slotBody = mediaFieldsSchema.extend({
  mimeType: z.string().min(1).max(255),
  byteSize: z.number().int().positive(),
  kind: z.enum(MEDIA_KINDS).optional(),
});

/** Upload slots: a single-use, unguessable URL (stored hashed) a browser PUTs exact bytes to. */
export function registerUploadRoutes(app: FastifyInstance, rt: Runtime): void {
  app.post('/v1/media/uploads', {
    config: { scope: 'media:write' },
    schema: routeSchema({
      summary: 'Create a single-use upload slot (valid 30 minutes)', tags: ['uploads'], body: slotBody,
      responses: {
        201: ok({
          type: 'object',
          properties: { mediaId: { type: 'string' }, uploadUrl: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' }, maxByteSize: { type: 'integer' }, method: { type: 'string', enum: ['PUT'] } },
        }, 'the slot: PUT exactly byteSize bytes to uploadUrl'),
      },
      errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'FILE_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE'],
    }),
  }, async (req, reply) => {
    const auth = authOf(req);
    const body = parseOr400(slotBody, req.body ?? {});
    const mime = canonicalMime(body.mimeType);
    const kind = decideKind({ kind: body.kind, mime: body.mimeType, seen: 'declared' });
    const max = limitFor(rt, auth.limits)(kind);
    if (body.byteSize > max) throw new AppError('FILE_TOO_LARGE', `byteSize ${body.byteSize} is over the limit of ${max} bytes for ${kind}`, { maxBytes: max });
    const fields: MediaFields = mediaFieldsSchema.parse({ ...body, mimeType: undefined, byteSize: undefined });
    await checkOwnership(rt.pool, auth.appId, fields);
    const token = randomBytes(32).toString('base64url');
    const mediaId = newMediaId();
    const expiresAt = await slotsRepo.insertSlot(rt.pool, {
      mediaId, appId: auth.appId, tokenHash: sha256Hex(token), mimeType: mime, byteSize: body.byteSize, kind, fields, ttlSeconds: rt.config.UPLOAD_SLOT_TTL_SECONDS,
    });
    return reply.code(201).send({
      success: true,
      data: { mediaId, uploadUrl: `${publicBaseUrl(rt, req)}/v1/uploads/${token}`, expiresAt: expiresAt.toISOString(), maxByteSize: body.byteSize, method: 'PUT' },
    });
  });

  // The PUT body is the raw file, streamed: no parser may buffer it.
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    scope.put('/v1/uploads/:token', {
      config: { public: true },
      bodyLimit: HARD_CAP_BYTES,
      schema: routeSchema({
        summary: 'PUT the bytes to an upload slot (the slot URL is the credential)', tags: ['uploads'], auth: 'public',
        params: { type: 'object', required: ['token'], properties: { token: { type: 'string' } } },
        body: { content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
        responses: { 202: ok(mediaObjectSchema, 'accepted: the media is queued') },
        errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT', 'EXPIRED', 'FILE_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'STORAGE_UNAVAILABLE', 'QUEUE_UNAVAILABLE'],
      }),
    }, async (req, reply) => {
      const { token } = req.params as { token: string };
      const body = req.body as Readable | undefined;
      const hash = /^[A-Za-z0-9_-]{43}$/.test(token) ? sha256Hex(token) : null;
      // Exactly one PUT wins: the claim is one conditional update.
      const slot = hash ? await slotsRepo.claimSlot<MediaFields>(rt.pool, hash) : null;
      if (!slot) {
        body?.resume();
        const s = hash ? await slotsRepo.findSlotByHash(rt.pool, hash) : null;
        if (!s) throw new AppError('NOT_FOUND', 'no such upload slot');
        if (s.used_at) throw new AppError('CONFLICT', 'this upload slot was already used');
        throw new AppError('EXPIRED', 'this upload slot has expired');
      }
      req.log = req.log.child({ appId: slot.app_id, mediaId: slot.media_id });
      try {
        const declaredLength = req.headers['content-length'] === undefined ? null : Number(req.headers['content-length']);
        if (declaredLength !== null && declaredLength > slot.byte_size) {
          throw new AppError('FILE_TOO_LARGE', `this slot takes exactly ${slot.byte_size} bytes`, { byteSize: slot.byte_size });
        }
        if (declaredLength !== null && declaredLength !== slot.byte_size) {
          throw new AppError('VALIDATION_FAILED', `this slot takes exactly ${slot.byte_size} bytes, got ${declaredLength}`, { fields: { body: 'size mismatch' } });
        }
        if (!body) throw new AppError('VALIDATION_FAILED', 'empty body', { fields: { body: 'required' } });
        const putType = req.headers['content-type'];
        if (putType && !declaredAgrees(putType, slot.mime_type) && canonicalMime(putType) !== 'application/octet-stream') {
          throw new AppError('UNSUPPORTED_MEDIA_TYPE', `the slot was created for ${slot.mime_type}, not ${putType}`);
        }
        const staged = await stageUpload(rt, {
          body,
          appId: slot.app_id,
          mediaId: slot.media_id,
          kind: slot.kind,
          declaredMime: slot.mime_type,
          limitFor: (k) => Math.min(limitFor(rt, slot.limits)(k), slot.byte_size),
        });
        if (staged.bytes !== slot.byte_size) {
          await rt.store.delete([staged.stagingKey]).catch(() => undefined);
          throw new AppError('VALIDATION_FAILED', `this slot takes exactly ${slot.byte_size} bytes, got ${staged.bytes}`, { fields: { body: 'size mismatch' } });
        }
        const row = await commitMedia(rt, {
          appId: slot.app_id,
          mediaId: slot.media_id,
          kind: staged.kind,
          source: 'slot',
          declaredMime: slot.mime_type,
          detectedMime: staged.sniffed.raw,
          originalName: slot.fields.name ?? null,
          inputBytes: staged.bytes,
          stagingKey: staged.stagingKey,
          fields: slot.fields,
        });
        return reply.code(202).send({ success: true, data: presentMedia(rt, req, row) });
      } catch (err) {
        body?.resume();
        // A refused PUT does not burn the slot: the client may retry with the right bytes. When
        // PostgreSQL is what failed, the release is tried again until it answers (`npm run soak`
        // stops PgBouncer mid-PUT: without this the slot stayed used and every retry was a 409).
        await slotsRepo.releaseSlot(rt.pool, slot.media_id).catch(() => releaseLater(rt, slot.media_id, req.log));
        throw err;
      }
    });
  });
}

/** Retries a slot release every half second for up to a minute, in the background. */
function releaseLater(rt: Runtime, mediaId: string, log: FastifyBaseLogger): void {
  const deadline = Date.now() + 60_000;
  const attempt = (): void => {
    slotsRepo.releaseSlot(rt.pool, mediaId).catch((err: unknown) => {
      if (Date.now() < deadline) setTimeout(attempt, 500).unref();
      else log.warn({ err: String(err), mediaId }, 'could not release an upload slot after a failed PUT; it stays used');
    });
  };
  setTimeout(attempt, 500).unref();
}
