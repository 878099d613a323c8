import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Server, type ServerOptions } from '@tus/server';
import { ERRORS } from '@tus/utils';
import { NodeRequest, sendNodeResponse } from 'srvx/node';
import { AppError, type ErrorCode } from '../../domain/errors.js';
import { newTusUploadId } from '../../domain/ids.js';
import { hardCapBytes } from '../../ingest/limits.js';
import {
  checkTusRequest,
  createTusLocker,
  prepareTusUpload,
  SealedTusStore,
  tusMediaId,
  tusRequests,
  type TusRequestContext,
} from '../../ingest/tus-store.js';
import { sweepExpiredTusUploads } from '../../retention/tus-uploads.js';
import type { Logger } from '../../log.js';
import type { Runtime } from '../../runtime.js';
import { authOf } from '../plugins/auth.js';
import { envelope, toAppError } from '../plugins/errors.js';
import { errorResponses, routeSchema } from '../plugins/openapi.js';
import { publicBaseUrl } from '../present-media.js';

export const TUS_PATH = '/v1/uploads/tus';

/** What the route adds to a tus request's context: where its upload URL points and its request id. */
interface RouteContext extends TusRequestContext {
  baseUrl: string;
  requestId: string;
}

/** The tus server's own refusals (plain `{status_code, body}` objects) in the contract's codes. */
const TUS_STATUS_CODES: Record<number, ErrorCode> = {
  400: 'VALIDATION_FAILED',
  403: 'VALIDATION_FAILED',
  404: 'NOT_FOUND',
  409: 'CONFLICT',
  410: 'EXPIRED',
  412: 'VALIDATION_FAILED',
  413: 'FILE_TOO_LARGE',
  // creation-defer-length and concatenation: extensions we do not offer, so the request is malformed for us.
  501: 'VALIDATION_FAILED',
};

function asAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const tusErr = err as { status_code?: unknown; body?: unknown } | null;
  if (tusErr && typeof tusErr.status_code === 'number' && typeof tusErr.body === 'string') {
    const code = TUS_STATUS_CODES[tusErr.status_code];
    if (code) return new AppError(code, tusErr.body.trim().replace(/\.$/, '') || code);
  }
  return toAppError(err);
}

const isAborted = (err: unknown): boolean =>
  err === ERRORS.ABORTED || (typeof err === 'object' && err !== null && (err as { body?: unknown }).body === ERRORS.ABORTED.body);

/**
 * Every error in the envelope, as JSON. Errors that reach onResponseError already are; the few the
 * tus server answers by itself (a missing Tus-Resumable: 412, malformed tus headers: 400) are text.
 */
async function asEnvelope(response: Response, requestId: string): Promise<Response> {
  let text = await response.text();
  if (!text.startsWith('{"success":false')) {
    const code = TUS_STATUS_CODES[response.status] ?? (response.status >= 500 ? 'INTERNAL' : 'VALIDATION_FAILED');
    text = JSON.stringify(envelope(code, text.trim() || code, requestId));
  }
  const headers = new Headers(response.headers);
  headers.set('content-type', 'application/json; charset=utf-8');
  headers.set('content-length', String(Buffer.byteLength(text)));
  return new Response(text, { status: response.status, headers });
}

function current(): RouteContext {
  const ctx = tusRequests.getStore() as RouteContext | undefined;
  if (!ctx) throw new AppError('UNAUTHORIZED', 'authentication required');
  return ctx;
}

/** The tus server over our sealed store. Every hook runs inside the request's context (see `handle`). */
export function createTusServer(rt: Runtime): Server {
  const options: ServerOptions & { datastore: SealedTusStore } = {
    path: TUS_PATH,
    datastore: new SealedTusStore(rt, async () => (await sweepExpiredTusUploads(rt)).uploads),
    locker: createTusLocker(rt),
    // Tus-Max-Size, and a 413 at creation past it; the kind's own limit is checked in onUploadCreate.
    maxSize: hardCapBytes(rt),
    namingFunction: () => newTusUploadId(),
    generateUrl: (_req, { id }) => `${current().baseUrl}${TUS_PATH}/${id}`,
    // A finished upload is a media: it is deleted through DELETE /v1/media/:id, not here.
    disableTerminationForFinishedUploads: true,
    // No CORS, as for the rest of the API: the console is served from the same origin.
    allowedOrigins: () => false,
    exposedHeaders: ['Media-Id', 'x-request-id'],
    onIncomingRequest: async (req, id) => {
      if (req.method === 'POST') return;
      const length = req.headers.get('content-length');
      const patch = req.method === 'PATCH' ? { offset: Number(req.headers.get('upload-offset')), contentLength: length === null ? null : Number(length) } : undefined;
      await checkTusRequest(rt, current(), id, patch);
    },
    onUploadCreate: async (_req, upload) => {
      const ctx = current();
      ctx.creation = await prepareTusUpload(rt, ctx, upload.size, upload.metadata);
      return {};
    },
    onUploadFinish: async (_req, upload) => {
      const mediaId = await tusMediaId(rt, current(), upload.id);
      return mediaId ? { headers: { 'Media-Id': mediaId } } : {};
    },
    onResponseError: (_req, err) => {
      const ctx = tusRequests.getStore() as RouteContext | undefined;
      const e = asAppError(ctx?.writeError !== undefined && isAborted(err) ? ctx.writeError : err);
      if (e.status >= 500) ctx?.log.error({ err, code: e.code }, 'tus request failed');
      else ctx?.log.info({ code: e.code, reason: e.message }, 'tus request refused');
      return { status_code: e.status, body: JSON.stringify(envelope(e.code, e.message, ctx?.requestId ?? '', e.details)) };
    },
  };
  return new Server(options);
}

/**
 * Resumable uploads, tus 1.0 (creation, creation-with-upload, termination, expiration) at
 * /v1/uploads/tus. The auth plugin decides on these routes as on any other (an API key with
 * media:write); the tus server then runs on the raw request, which no body parser has touched.
 */
export function registerTusRoutes(app: FastifyInstance, rt: Runtime): void {
  const tus = createTusServer(rt);

  const serve = async (req: FastifyRequest, reply: FastifyReply, ctx: RouteContext | null): Promise<void> => {
    reply.hijack();
    reply.raw.setHeader('x-request-id', req.id);
    const run = async (): Promise<void> => {
      let response = await tus.handleWeb(new NodeRequest({ req: req.raw, res: reply.raw }));
      if (response.status >= 400) response = await asEnvelope(response, req.id);
      await sendNodeResponse(reply.raw, response);
    };
    try {
      await (ctx ? tusRequests.run(ctx, run) : run());
    } catch (err) {
      req.log.error({ err }, 'tus response failed');
      if (!reply.raw.headersSent) {
        const e = asAppError(err);
        reply.raw.writeHead(e.status, { 'content-type': 'application/json; charset=utf-8', connection: 'close' });
        reply.raw.end(JSON.stringify(envelope(e.code, e.message, req.id, e.details)));
      } else {
        reply.raw.destroy();
      }
    }
  };
  const authed = (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const auth = authOf(req);
    return serve(req, reply, {
      appId: auth.appId,
      limits: auth.limits,
      method: req.method,
      log: req.log as unknown as Logger,
      leases: new Map(),
      writes: new Map(),
      baseUrl: publicBaseUrl(rt, req),
      requestId: req.id,
    });
  };

  const tusHeaders = {
    type: 'object',
    properties: {
      'tus-resumable': { type: 'string', enum: ['1.0.0'], description: 'required on every request but OPTIONS' },
    },
  };
  const noContent = (description: string, headers: Record<string, { description: string; schema: { type: string } }> = {}) => ({
    description,
    headers: { 'Tus-Resumable': { description: '1.0.0', schema: { type: 'string' } }, ...headers },
    type: 'null',
  });
  const uploadParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', description: 'the upload id, the last segment of the Location that creation returned' } } };
  const binaryBody = { content: { 'application/offset+octet-stream': { schema: { type: 'string', format: 'binary' } } } };

  // The bodies are the file's bytes, streamed by the tus server itself: no parser may read them.
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null));

    scope.post(TUS_PATH, {
      config: { scope: 'media:write' },
      schema: routeSchema({
        summary: 'Create a resumable upload (tus 1.0 creation; creation-with-upload when the body carries bytes)',
        description:
          'tus 1.0 (https://tus.io/protocols/resumable-upload): `Upload-Length` is required (deferred lengths are refused) and is checked ' +
          "against the kind's input limit and the hard cap here (413). `Upload-Metadata` (comma-separated `key base64(value)`): " +
          '`filename`, `filetype`, `kind`, `folderId`, `deviceId`, `ttlSeconds`, `correlationId` (Uppy’s `name`/`type` stand in for ' +
          'filename/filetype); other keys are ignored. 201 with `Location` (the upload URL) and `Upload-Expires` ' +
          '(UPLOAD_SLOT_TTL_SECONDS after creation). The first bytes are sniffed as they arrive: a disallowed type ends the upload with 415. ' +
          'Bytes are sealed (encrypted) in 64 KiB segments as they arrive; `Upload-Offset` is a multiple of 65536 until the upload is ' +
          'complete, so a client that resumes re-sends at most 64 KiB. The request that completes the upload answers with `Media-Id`: ' +
          'the media is queued as for a slot PUT (`GET /v1/media/{Media-Id}`).',
        tags: ['uploads'],
        headers: {
          type: 'object',
          required: ['tus-resumable', 'upload-length'],
          properties: {
            ...tusHeaders.properties,
            'upload-length': { type: 'string', description: 'the file size in bytes (at least 1)' },
            'upload-metadata': { type: 'string', description: 'tus metadata: `filename`, `filetype`, `kind`, `folderId`, `deviceId`, `ttlSeconds`, `correlationId`' },
            'content-type': { type: 'string', description: '`application/offset+octet-stream` when the body carries the first bytes' },
          },
        },
        body: binaryBody,
        responses: {
          201: noContent('created: `Location` is the upload URL', {
            Location: { description: 'the upload URL', schema: { type: 'string' } },
            'Upload-Expires': { description: 'when an unfinished upload is removed', schema: { type: 'string' } },
            'Upload-Offset': { description: 'with creation-with-upload: the bytes sealed so far', schema: { type: 'string' } },
            'Media-Id': { description: 'when this request completed the upload: the media it became', schema: { type: 'string' } },
          }),
        },
        errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'FILE_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'STORAGE_UNAVAILABLE'],
      }),
    }, authed);

    scope.route({
      method: 'PATCH',
      url: `${TUS_PATH}/:id`,
      config: { scope: 'media:write' },
      schema: routeSchema({
        summary: 'Append bytes to a resumable upload (tus 1.0 PATCH)',
        description:
          '`Upload-Offset` must equal the upload’s offset (409 otherwise); `Content-Type: application/offset+octet-stream`. ' +
          'Answers 204 with the new `Upload-Offset`: the end of the last whole 64 KiB segment sealed (a trailing partial segment is ' +
          'not kept), or the full length on the last request, which also carries `Media-Id`. A second PATCH while one is writing is ' +
          '423 (tus clients retry). Another app’s upload is 404. The first bytes are sniffed: a disallowed type is 415 and the upload is removed.',
        tags: ['uploads'],
        params: uploadParams,
        headers: {
          type: 'object',
          required: ['tus-resumable', 'upload-offset', 'content-type'],
          properties: { ...tusHeaders.properties, 'upload-offset': { type: 'string' }, 'content-type': { type: 'string', enum: ['application/offset+octet-stream'] } },
        },
        body: binaryBody,
        responses: {
          204: noContent('bytes taken', {
            'Upload-Offset': { description: 'the offset to resume from', schema: { type: 'string' } },
            'Upload-Expires': { description: 'when an unfinished upload is removed', schema: { type: 'string' } },
            'Media-Id': { description: 'on completion: the media the upload became', schema: { type: 'string' } },
          }),
          423: { ...errorResponses(['CONFLICT'])[409], description: 'CONFLICT: another request is writing to this upload (tus clients retry)' },
        },
        errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT', 'EXPIRED', 'FILE_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'STORAGE_UNAVAILABLE'],
      }),
      handler: authed,
    });

    scope.route({
      method: 'HEAD',
      url: `${TUS_PATH}/:id`,
      // @fastify/swagger leaves HEAD routes out unless told; this one is part of the protocol.
      config: { scope: 'media:write', swagger: { exposeHeadRoute: true } },
      schema: routeSchema({
        summary: 'The offset to resume a resumable upload from (tus 1.0 HEAD)',
        tags: ['uploads'],
        params: uploadParams,
        headers: tusHeaders,
        responses: {
          200: noContent('`Upload-Offset`, `Upload-Length`, `Upload-Metadata`', {
            'Upload-Offset': { description: 'bytes sealed so far', schema: { type: 'string' } },
            'Upload-Length': { description: 'the file size', schema: { type: 'string' } },
          }),
        },
        errors: ['NOT_FOUND', 'EXPIRED'],
      }),
      handler: authed,
    });

    scope.route({
      method: 'DELETE',
      url: `${TUS_PATH}/:id`,
      config: { scope: 'media:write' },
      schema: routeSchema({
        summary: 'Abandon a resumable upload (tus 1.0 termination): its sealed bytes are deleted',
        tags: ['uploads'],
        params: uploadParams,
        headers: tusHeaders,
        responses: { 204: noContent('removed') },
        errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT'],
      }),
      handler: authed,
    });

    // tus discovery (Tus-Version, Tus-Extension, Tus-Max-Size). Private like every route: tus clients do
    // not need it, and the API serves no cross-origin preflights (the console is same-origin).
    for (const url of [TUS_PATH, `${TUS_PATH}/:id`]) {
      scope.route({
        method: 'OPTIONS',
        url,
        schema: routeSchema({
          summary: 'tus discovery: Tus-Version, Tus-Extension (creation, creation-with-upload, termination, expiration), Tus-Max-Size',
          tags: ['uploads'],
          responses: {
            204: noContent('the server’s tus capabilities', {
              'Tus-Version': { description: '1.0.0', schema: { type: 'string' } },
              'Tus-Extension': { description: 'creation,creation-with-upload,termination,expiration', schema: { type: 'string' } },
              'Tus-Max-Size': { description: 'the hard cap in bytes', schema: { type: 'string' } },
            }),
          },
        }),
        handler: (req, reply) => serve(req, reply, null),
      });
    }
  });
}
