import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { MultipartFile } from '@fastify/multipart';
import { z } from 'zod';
import * as idem from '../../db/repos/idempotency.js';
import * as mediaRepo from '../../db/repos/media.js';
import type { MediaRow } from '../../db/repos/media.js';
import { markDeletingUnlessReferenced } from '../../db/repos/references.js';
import { scheduleWarnings } from '../../domain/references.js';
import { AppError } from '../../domain/errors.js';
import { newMediaId } from '../../domain/ids.js';
import { MEDIA_KINDS, MEDIA_STATUSES } from '../../domain/kinds.js';
import { canonicalMime, decideKind, fileTooLarge } from '../../domain/policies.js';
import { assertUrlAllowedSyntax } from '../../net/url-check.js';
import { decodeBase64Strict } from '../../pipeline/decode-base64.js';
import { commitMedia } from '../../ingest/commit-media.js';
import { hardCapBytes, limitFor } from '../../ingest/limits.js';
import { mediaFieldsSchema, type MediaFields } from '../../ingest/media-fields.js';
import { checkOwnership } from '../../ingest/ownership.js';
import { stageUpload, type StagedUpload } from '../../pipeline/stage-upload.js';
import { readJobProgress } from '../../queue/job-progress.js';
import { finishDeletion } from '../../retention/purge-media.js';
import type { Runtime } from '../../runtime.js';
import { authOf } from '../plugins/auth.js';
import { presentMedia } from '../present-media.js';
import { serveContent } from '../serve-content.js';
import { parseOr400, jsonSchema } from '../validation.js';
import { binary, errorEnvelope, mediaObjectSchema, noContent, ok, routeSchema } from '../plugins/openapi.js';

const idParams = z.object({ id: z.string().min(1).max(128) });

const listQuery = z.object({
  page: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(1000).default(10),
  sortBy: z.enum(['createdAt', 'name', 'sizeBytes']).default('createdAt'),
  sortOrder: z.enum(['asc', 'desc']).default('desc'),
  kind: z.enum(MEDIA_KINDS).optional(),
  status: z.enum(MEDIA_STATUSES).optional(),
  folderId: z.string().max(64).optional(),
  deviceId: z.string().max(64).optional(),
  /** Issue 15: media a live reference (a scheduled send) needs, or none does; media gone before an instant. */
  referenced: z.enum(['true', 'false']).optional(),
  expiresBefore: z.iso.datetime({ offset: true }).optional(),
  /** Part of the name or original file name, any case (the console's search box). */
  q: z.string().min(1).max(255).optional(),
});

/** For the document: the extend handler parses the same shape inline. */
const extendBody = z.object({ ttlSeconds: z.number().int().positive() });
const postQuery = z.object({ wait: z.coerce.number().min(0).max(30).optional() });
const deleteQuery = z.object({ force: z.enum(['true', 'false']).optional() });
const getQuery = z.object({ scheduledAt: z.iso.datetime({ offset: true }).optional() });

export const jsonBodySchema = mediaFieldsSchema.extend({
  url: z.string().min(1).max(4096).optional(),
  base64: z.string().min(1).optional(),
  filename: z.string().max(255).optional(),
  mimeType: z.string().max(255).optional(),
});

/** The JSON body may carry base64 of the largest input any kind takes (the hard cap) plus envelope. */
export function jsonBodyLimit(hardCap: number): number {
  return Math.ceil((hardCap * 4) / 3) + 64 * 1024;
}

/** Documentation of the file routes' bodies (OpenAPI only; handlers validate with zod). */
const contentResponses = {
  200: binary('the stored bytes, decrypted as they stream; `ETag` is the checksum'),
  206: binary('the requested `Range`'),
  304: noContent('`If-None-Match` matched the ETag'),
  416: { description: 'range not satisfiable (`content-range: bytes */<size>`)', ...errorEnvelope(['VALIDATION_FAILED']) },
};
export const contentDocs = { responses: contentResponses, errors: ['NOT_FOUND', 'EXPIRED', 'STORAGE_UNAVAILABLE'] as const };

export function registerMediaRoutes(app: FastifyInstance, rt: Runtime): void {
  const multipartBody = {
    type: 'object',
    required: ['file'],
    properties: { file: { type: 'string', format: 'binary' }, ...(jsonSchema(mediaFieldsSchema).properties as object) },
  };
  app.post('/v1/media', {
    config: { scope: 'media:write' },
    bodyLimit: jsonBodyLimit(hardCapBytes(rt)),
    schema: routeSchema({
      summary: 'Upload media (multipart file, base64 or URL)',
      description: 'The first bytes are sniffed before anything is kept (415 at once); the size cap is enforced while streaming (413). `?wait=N` answers when the media is ready or failed. `Idempotency-Key` makes a retry return the first answer.',
      tags: ['media'],
      querystring: postQuery,
      headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', minLength: 1, maxLength: 255 } } },
      body: { content: { 'multipart/form-data': { schema: multipartBody }, 'application/json': { schema: jsonSchema(jsonBodySchema) } } },
      responses: { 202: ok(mediaObjectSchema, 'accepted: the media is queued'), 200: ok(mediaObjectSchema, 'with ?wait=N: ready or failed') },
      errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT', 'FILE_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'STORAGE_UNAVAILABLE'],
    }),
  }, async (req, reply) => {
    const auth = authOf(req);
    const q = parseOr400(postQuery, req.query);
    // A body that declares more than any input may be is refused before a byte of it is read.
    const declared = Number(req.headers['content-length'] ?? 0);
    if (req.isMultipart() && declared > hardCapBytes(rt) + 1024 * 1024) {
      reply.header('connection', 'close');
      throw fileTooLarge(hardCapBytes(rt));
    }
    const idemKey = headerString(req.headers['idempotency-key']);
    if (idemKey !== undefined && (idemKey.length === 0 || idemKey.length > 255)) {
      throw new AppError('VALIDATION_FAILED', 'Idempotency-Key must be 1 to 255 characters', { fields: { 'Idempotency-Key': 'invalid' } });
    }
    if (idemKey) {
      const existing = await idem.claimIdempotencyKey(rt.pool, auth.appId, idemKey, 'pending');
      if (existing) return replayIdempotent(rt, req, reply, existing, idemKey);
    }
    try {
      const { row, requestHash } = req.isMultipart() ? await createFromMultipart(rt, req, auth.appId, false) : await createFromJson(rt, req, auth.appId, false);
      const settled = q.wait ? await waitSettled(rt, row!, q.wait) : row!;
      const status = settled.status === 'ready' || settled.status === 'failed' ? 200 : 202;
      const body = { success: true, data: presentMedia(rt, req, settled) };
      if (idemKey) await idem.completeIdempotencyKey(rt.pool, auth.appId, idemKey, requestHash, status, body);
      return reply.code(status).send(body);
    } catch (err) {
      if (idemKey) await idem.releaseIdempotencyKey(rt.pool, auth.appId, idemKey).catch(() => undefined);
      throw err;
    }
  });

  app.get('/v1/media', {
    config: { scope: 'media:read' },
    schema: routeSchema({ summary: 'List media', tags: ['media'], querystring: listQuery, responses: { 200: ok(mediaObjectSchema, 'a page of media', { list: true }) }, errors: ['VALIDATION_FAILED'] }),
  }, async (req) => {
    const auth = authOf(req);
    const q = parseOr400(listQuery, req.query);
    const { rows, total } = await mediaRepo.listMedia(rt.pool, {
      appId: auth.appId,
      ...q,
      referenced: q.referenced === undefined ? undefined : q.referenced === 'true',
      expiresBefore: q.expiresBefore === undefined ? undefined : new Date(q.expiresBefore),
    });
    return { success: true, data: rows.map((r) => presentMedia(rt, req, r)), page: { page: q.page, limit: q.limit, total } };
  });

  app.get('/v1/media/:id', {
    config: { scope: 'media:read' },
    schema: routeSchema({
      summary: 'Get a media object',
      description: '`?scheduledAt=ISO` adds `warnings: ["EXPIRES_BEFORE_SCHEDULE"]` when the media would be gone by then. While `processing`, `progress` (0–100) says how far the worker is, when it has said.',
      tags: ['media'], params: idParams, querystring: getQuery,
      responses: { 200: ok(mediaObjectSchema, 'the media object') },
      errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'EXPIRED'],
    }),
  }, async (req) => {
    const auth = authOf(req);
    const { id } = parseOr400(idParams, req.params);
    const q = parseOr400(getQuery, req.query);
    const row = await visibleMedia(rt, auth.appId, id);
    const warnings = q.scheduledAt ? scheduleWarnings(row.expires_at, new Date(q.scheduledAt)) : undefined;
    // The job id is the media id; Redis slow or down leaves the field out, never the answer.
    const progress = row.status === 'processing' ? await readJobProgress(rt.redis, rt.queues.get('ingest'), row.id) : undefined;
    return { success: true, data: presentMedia(rt, req, row, warnings, progress) };
  });

  app.get('/v1/media/:id/content', {
    config: { scope: 'media:read' },
    schema: routeSchema({ summary: 'Download the stored bytes', tags: ['media'], params: idParams, ...contentDocs, errors: [...contentDocs.errors, 'VALIDATION_FAILED'] }),
  }, async (req, reply) => {
    const auth = authOf(req);
    const { id } = parseOr400(idParams, req.params);
    const row = await visibleMedia(rt, auth.appId, id);
    return serveContent(rt, req, reply, row);
  });

  app.post('/v1/media/:id/extend', {
    config: { scope: 'media:write' },
    schema: routeSchema({
      summary: 'Push expiresAt out (up to the retention cap)', tags: ['media'], params: idParams, body: extendBody,
      responses: { 200: ok(mediaObjectSchema, 'the media object with its new expiresAt') },
      errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'EXPIRED'],
    }),
  }, async (req) => {
    const auth = authOf(req);
    const { id } = parseOr400(idParams, req.params);
    const body = parseOr400(z.object({ ttlSeconds: z.number().int().positive() }), req.body ?? {});
    await visibleMedia(rt, auth.appId, id);
    const row = await mediaRepo.extendExpiry(rt.pool, auth.appId, id, body.ttlSeconds, rt.config.MAX_RETENTION_SECONDS);
    if (!row) throw new AppError('NOT_FOUND', `no media ${id}`);
    return { success: true, data: presentMedia(rt, req, row) };
  });

  app.delete('/v1/media/:id', {
    config: { scope: 'media:delete' },
    schema: routeSchema({
      summary: 'Delete media: bytes gone from storage before the next sweep finishes', tags: ['media'], params: idParams,
      description: 'While a live reference (a scheduled send) needs the media: 409 MEDIA_IN_USE with `details.refs` (the refs) and `details.references` (`[{ref, sendAt}]`); `?force=true` deletes anyway and `media.deleted` lists those refs.',
      querystring: deleteQuery,
      responses: { 204: noContent('deleted') }, errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'MEDIA_IN_USE'],
    }),
  }, async (req, reply) => {
    const auth = authOf(req);
    const { id } = parseOr400(idParams, req.params);
    const { force } = parseOr400(deleteQuery, req.query);
    const marked = await markDeletingUnlessReferenced(rt.pool, auth.appId, id, force === 'true');
    if (marked.kind === 'not_found') throw new AppError('NOT_FOUND', `no media ${id}`);
    if (marked.kind === 'in_use') {
      throw new AppError('MEDIA_IN_USE', `media ${id} is needed by ${marked.refs.length} scheduled send(s); delete those references or add ?force=true`, { refs: marked.refs.map((r) => r.ref), references: marked.refs });
    }
    const row = marked.row;
    // A queued job finds the row `deleting` and does nothing; removing it just saves the work.
    await rt.queues.get('ingest').remove(id).catch(() => undefined);
    try {
      await finishDeletion(rt, row, 'deleted');
    } catch (err) {
      // The row stays `deleting` (404 from now on); the next sweep deletes the bytes.
      req.log.warn({ err, mediaId: id }, 'storage delete failed; left for the sweeper');
    }
    return reply.code(204).send();
  });
}

/** The media of this app as clients see it: other apps' and deleted media are 404, expired 410. */
export async function visibleMedia(rt: Runtime, appId: string, id: string): Promise<MediaRow> {
  const row = await mediaRepo.getMedia(rt.pool, appId, id);
  if (!row) throw new AppError('NOT_FOUND', `no media ${id}`);
  if (row.expires_at.getTime() <= Date.now()) throw new AppError('EXPIRED', `media ${id} expired at ${row.expires_at.toISOString()}`);
  return row;
}

function headerString(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Polls the row until it settles or `seconds` pass: every 10 ms at first, backing off to 150 ms, so
 * a small photo (ready in tens of milliseconds) is answered when it is ready, not at the next tick
 * of a slow poll, while a long video costs a query only every 150 ms.
 */
async function waitSettled(rt: Runtime, row: MediaRow, seconds: number): Promise<MediaRow> {
  const deadline = Date.now() + seconds * 1000;
  let current = row;
  let pause = 10;
  while (Date.now() < deadline && (current.status === 'queued' || current.status === 'processing')) {
    await new Promise((r) => setTimeout(r, Math.min(pause, Math.max(0, deadline - Date.now()))));
    pause = Math.min(150, pause * 1.5);
    current = (await mediaRepo.getMediaById(rt.pool, row.id)) ?? current;
  }
  return current;
}

/** The key was used before: same request → the first answer; another request → 409. */
async function replayIdempotent(rt: Runtime, req: FastifyRequest, reply: FastifyReply, existing: idem.IdempotencyRow, key: string) {
  if (existing.status_code === null) {
    if (req.isMultipart()) await drainMultipart(req);
    throw new AppError('CONFLICT', 'a request with this Idempotency-Key is still in progress');
  }
  const auth = authOf(req);
  const { requestHash } = req.isMultipart() ? await createFromMultipart(rt, req, auth.appId, true) : await createFromJson(rt, req, auth.appId, true);
  if (requestHash !== existing.request_hash) throw new AppError('CONFLICT', 'this Idempotency-Key was used with another request body', { key });
  return reply.code(existing.status_code).header('idempotent-replayed', 'true').send(existing.response);
}

async function drainMultipart(req: FastifyRequest): Promise<void> {
  for await (const part of req.parts()) if (part.type === 'file') part.file.resume();
}

function hashRequest(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex');
}

/**
 * multipart/form-data: part `file` plus optional fields, in any order. The file is sniffed and
 * staged as it arrives; fields sent after it are checked once the body has ended. With `dryRun`
 * (an idempotent replay) the file is only hashed.
 */
export async function createFromMultipart(
  rt: Runtime,
  req: FastifyRequest,
  appId: string,
  dryRun: boolean,
  /** Field names another upload route uses for ours (the console's `type` is our `kind`). */
  aliases: Readonly<Record<string, string>> = {},
): Promise<{ row: MediaRow | null; requestHash: string }> {
  const rawFields: Record<string, string> = {};
  let staged: StagedUpload | null = null;
  let fileHash: string | null = null;
  let fileInfo: { filename: string | null; mimetype: string | null } | null = null;
  const mediaId = newMediaId();
  try {
    for await (const part of req.parts()) {
      if (part.type !== 'file') {
        if (typeof part.value === 'string') rawFields[Object.hasOwn(aliases, part.fieldname) ? aliases[part.fieldname]! : part.fieldname] = part.value;
        continue;
      }
      const file = part as MultipartFile;
      if (file.fieldname !== 'file' || fileInfo) {
        file.file.resume();
        throw new AppError('VALIDATION_FAILED', `unexpected file part ${file.fieldname}; send one part named file`, { fields: { [file.fieldname]: 'unexpected' } });
      }
      fileInfo = { filename: file.filename || null, mimetype: file.mimetype || null };
      if (dryRun) {
        const h = createHash('sha256');
        await pipeline(file.file, new Writable({ write: (c, _e, cb) => (h.update(c), cb()) }));
        fileHash = h.digest('hex');
        continue;
      }
      const early = mediaFieldsSchema.safeParse(rawFields);
      if (early.success) await checkOwnership(rt.pool, appId, early.data);
      try {
        staged = await stageUpload(rt, {
          body: file.file,
          appId,
          mediaId,
          kind: early.success ? early.data.kind : undefined,
          declaredMime: file.mimetype,
          limitFor: limitFor(rt, authOf(req).limits),
        });
      } catch (err) {
        file.file.resume();
        throw err;
      }
      // busboy truncates at the multipart limit instead of failing: a truncated file is never kept.
      if (file.file.truncated) throw fileTooLarge(rt.config.HARD_CAP_BYTES);
      fileHash = staged.sha256;
    }
    if (!fileInfo) throw new AppError('VALIDATION_FAILED', 'the multipart body has no part named file', { fields: { file: 'required' } });
    const fields = parseOr400(mediaFieldsSchema, rawFields);
    const requestHash = hashRequest({ fields: sortKeys(fields), file: fileHash, name: fileInfo.filename, type: fileInfo.mimetype });
    if (dryRun || !staged) return { row: null, requestHash };
    await checkOwnership(rt.pool, appId, fields);
    // A kind that arrived after the file: check the type and size rules again now that it is known.
    const kind = decideKind({ kind: fields.kind ?? staged.kind, mime: staged.sniffed.mime, declared: fileInfo.mimetype, seen: 'head' });
    const limit = limitFor(rt, authOf(req).limits)(kind);
    if (staged.bytes > limit) throw fileTooLarge(limit);
    const row = await commitMedia(rt, {
      appId,
      mediaId,
      kind,
      source: 'upload',
      declaredMime: fileInfo.mimetype ? canonicalMime(fileInfo.mimetype) : null,
      detectedMime: staged.sniffed.raw,
      originalName: fileInfo.filename,
      inputBytes: staged.bytes,
      stagingKey: staged.stagingKey,
      fields,
    });
    staged = null;
    return { row, requestHash };
  } finally {
    if (staged) await rt.store.delete([staged.stagingKey]).catch(() => undefined);
  }
}

async function createFromJson(rt: Runtime, req: FastifyRequest, appId: string, dryRun: boolean): Promise<{ row: MediaRow | null; requestHash: string }> {
  const body = parseOr400(jsonBodySchema, req.body ?? {});
  const requestHash = hashRequest(sortKeys(body));
  if (dryRun) return { row: null, requestHash };
  if (!!body.url === !!body.base64) {
    throw new AppError('VALIDATION_FAILED', 'send exactly one of url or base64 (or a multipart file)', { fields: { url: 'one of url/base64', base64: 'one of url/base64' } });
  }
  const fields: MediaFields = mediaFieldsSchema.parse({ ...body, url: undefined, base64: undefined });
  await checkOwnership(rt.pool, appId, fields);
  const mediaId = newMediaId();
  if (body.url) {
    // Only the form is judged here (scheme, credentials): addresses are judged where the connection
    // is made, by the worker, on every redirect, so a refused target fails the media with its reason.
    const url = assertUrlAllowedSyntax(body.url, { allowPrivateNetworks: true });
    const row = await commitMedia(rt, {
      appId, mediaId, kind: fields.kind ?? null, source: 'url', sourceUrl: url.toString(), declaredMime: null, originalName: null, inputBytes: null, stagingKey: null, fields,
    });
    return { row, requestHash };
  }
  const appLimits = authOf(req).limits;
  // Without a kind the type decides it after decoding: until then only the hard cap is known.
  const maxBytes = fields.kind ? limitFor(rt, appLimits)(fields.kind) : hardCapBytes(rt);
  const decoded = decodeBase64Strict(body.base64!, maxBytes);
  const declared = body.mimeType ?? decoded.dataUrlMime ?? null;
  const staged = await stageUpload(rt, { body: Readable.from([decoded.bytes]), appId, mediaId, kind: fields.kind, declaredMime: declared, limitFor: limitFor(rt, appLimits) });
  const row = await commitMedia(rt, {
    appId,
    mediaId,
    kind: staged.kind,
    source: 'base64',
    declaredMime: declared ? canonicalMime(declared) : null,
    detectedMime: staged.sniffed.raw,
    originalName: body.filename ?? null,
    inputBytes: staged.bytes,
    stagingKey: staged.stagingKey,
    fields,
  });
  return { row, requestHash };
}

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined).sort(([a], [b]) => a.localeCompare(b)));
}
