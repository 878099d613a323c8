import type { FastifyInstance, FastifySchema } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { z } from 'zod';
import { ERROR_STATUS, type ErrorCode } from '../../domain/errors.js';
import { MEDIA_KINDS, MEDIA_STATUSES } from '../../domain/kinds.js';
import { jsonSchema } from '../validation.js';

/**
 * The OpenAPI document at /docs/json (UI at /docs), built by @fastify/swagger from each route's
 * `schema`. Route schemas here only document: requests are validated by the handlers' own zod
 * schemas (`parseOr400`), so app.ts installs a validator compiler that accepts anything and a
 * serializer compiler that is plain JSON.stringify (a response schema must never strip fields).
 * The request parts come from those same zod schemas (`jsonSchema`), so the document follows the
 * validators instead of being written twice.
 */

type Json = Record<string, unknown>;

/** When each code is answered (API.md's error table), shown on every documented response. */
const ERROR_WHEN: Record<ErrorCode, string> = {
  VALIDATION_FAILED: 'malformed body, missing `file` part, bad field; `details.fields` names each field',
  UNAUTHORIZED: 'missing, unknown or revoked key',
  FORBIDDEN: 'the key lacks the scope this route needs',
  NOT_FOUND: 'no such media / device / path for this app (another app’s is 404 too, never 403)',
  CONFLICT: 'upload slot already used; idempotency key reused with another body; id taken; resumable upload offset mismatch (409) or another request writing to it (423)',
  MEDIA_IN_USE: 'delete of a media that a live reference (a scheduled send) still needs; `details.refs` lists their refs and `details.references` the sends (`[{ref, sendAt}]`); `?force=true` overrides',
  EXPIRED: 'temporary URL or upload slot past its expiry; media past `expiresAt`',
  FILE_TOO_LARGE: 'over the kind’s limit or the hard cap; cut off while streaming, nothing kept',
  UNSUPPORTED_MEDIA_TYPE: 'sniffed bytes are not an allowed format for the kind, or contradict the declared type',
  MEDIA_REJECTED: 'well-formed request, content fails deep validation',
  RATE_LIMITED: 'per-key rate limit, too many uploads in flight for this key, or too many wrong operator tokens from this address; see the `retry-after` header',
  INTERNAL: 'unexpected server error',
  STORAGE_UNAVAILABLE: 'object storage failed; retry after a short delay',
  QUEUE_UNAVAILABLE: 'Redis or PostgreSQL unreachable; nothing half-written',
};

/** The error envelope of API.md, with `code` narrowed to what this status can carry. */
export function errorEnvelope(codes: readonly ErrorCode[]): Json {
  return {
    type: 'object',
    required: ['success', 'error'],
    properties: {
      success: { type: 'boolean', enum: [false] },
      error: {
        type: 'object',
        required: ['code', 'message', 'request_id'],
        properties: {
          code: { type: 'string', enum: [...codes] },
          message: { type: 'string' },
          request_id: { type: 'string', description: 'also sent as the `x-request-id` header' },
          details: { description: 'for VALIDATION_FAILED: `{ "fields": { "<name>": "<problem>" } }`' },
        },
      },
    },
  };
}

/** Error responses keyed by status, one entry per code (each code has exactly one status). */
export function errorResponses(codes: readonly ErrorCode[]): Record<number, Json> {
  const out: Record<number, Json> = {};
  for (const code of new Set(codes)) {
    const status = ERROR_STATUS[code];
    const headers = code === 'RATE_LIMITED' ? { 'retry-after': { description: 'seconds until a retry can succeed', schema: { type: 'integer' } } } : undefined;
    out[status] = { description: `${code}: ${ERROR_WHEN[code]}`, ...errorEnvelope([code]), ...(headers ? { headers } : {}) };
  }
  return out;
}

export const mediaObjectSchema: Json = {
  type: 'object',
  description: 'The media object (API.md)',
  additionalProperties: true,
  properties: {
    id: { type: 'string', example: 'med_…' },
    status: { type: 'string', enum: [...MEDIA_STATUSES.filter((s) => s !== 'deleting')] },
    progress: {
      type: 'integer',
      minimum: 0,
      maximum: 100,
      description: 'only while `processing` (GET /v1/media/:id): how far the worker is, as it last reported; absent when not known',
    },
    kind: { type: 'string', enum: [...MEDIA_KINDS], nullable: true },
    mimeType: { type: 'string', nullable: true },
    declaredMimeType: { type: 'string', nullable: true },
    sizeBytes: { type: 'integer', nullable: true },
    originalName: { type: 'string', nullable: true },
    name: { type: 'string', nullable: true },
    description: { type: 'string', nullable: true },
    folderId: { type: 'string', nullable: true },
    deviceId: { type: 'string', nullable: true },
    checksum: {
      type: 'object',
      nullable: true,
      properties: { algorithm: { type: 'string', enum: ['sha256'] }, value: { type: 'string', description: 'hex SHA-256 of the stored plaintext' } },
    },
    width: { type: 'integer', nullable: true },
    height: { type: 'integer', nullable: true },
    durationMs: { type: 'integer', nullable: true },
    pages: { type: 'integer', nullable: true },
    waveform: { type: 'array', items: { type: 'integer' }, nullable: true },
    mediaPath: { type: 'string', example: 'media/<deviceId or appId>/<uuid>-<HEX>.bin' },
    url: { type: 'string', nullable: true, description: 'temporary public URL (ready media only)' },
    urlExpiresAt: { type: 'string', format: 'date-time', nullable: true },
    expiresAt: { type: 'string', format: 'date-time' },
    suggestedMessageType: { type: 'string', nullable: true },
    source: { type: 'string', enum: ['upload', 'url', 'base64', 'slot', 'queue', 'tus'] },
    references: {
      type: 'object',
      description: 'live scheduled sends that need this media (POST /v1/media/:id/references)',
      properties: { count: { type: 'integer', minimum: 0 }, nextSendAt: { type: 'string', format: 'date-time', nullable: true, description: 'the earliest sendAt of the live references' } },
    },
    createdAt: { type: 'string', format: 'date-time' },
    readyAt: { type: 'string', format: 'date-time', nullable: true },
    error: { type: 'object', nullable: true, properties: { code: { type: 'string' }, message: { type: 'string' } } },
    warnings: { type: 'array', items: { type: 'string', enum: ['EXPIRES_BEFORE_SCHEDULE'] } },
  },
};

/** `{success: true, data}`; lists add `page`. */
export function ok(data: Json, description: string, opts: { list?: boolean } = {}): Json {
  const properties: Json = { success: { type: 'boolean', enum: [true] }, data: opts.list ? { type: 'array', items: data } : data };
  if (opts.list) {
    properties.page = { type: 'object', properties: { page: { type: 'integer' }, limit: { type: 'integer' }, total: { type: 'integer' } } };
  }
  return { description, type: 'object', required: ['success', 'data'], properties };
}

/** A response with a non-JSON body (file bytes, metrics text). */
export function binary(description: string, contentType = 'application/octet-stream'): Json {
  return { description, content: { [contentType]: { schema: { type: 'string', format: 'binary' } } } };
}

export const noContent = (description: string): Json => ({ description, type: 'null' });

type SchemaPart = z.ZodType | Json;
const part = (s: SchemaPart | undefined): Json | undefined => (s === undefined ? undefined : isZod(s) ? jsonSchema(s) : s);
function isZod(s: SchemaPart): s is z.ZodType {
  return typeof (s as { safeParse?: unknown }).safeParse === 'function';
}

export interface RouteDoc {
  summary: string;
  description?: string;
  tags: string[];
  /** `bearer` (default): an API key; `public`: none; `admin`: an operator token (METRICS_TOKEN) when one is set. */
  /** `bearer`: an API key (or the console session, see bearerAuth's description); `console`: the console session only. */
  auth?: 'bearer' | 'public' | 'admin' | 'console';
  params?: SchemaPart;
  querystring?: SchemaPart;
  headers?: SchemaPart;
  /** A schema, or `{ content: { '<type>': { schema } } }` for several content types. */
  body?: SchemaPart;
  /** Success responses by status. */
  responses: Record<number, Json>;
  /** Error codes this route answers beyond the ones its auth implies. */
  errors?: readonly ErrorCode[];
}

/**
 * A route's `schema`: documentation only (see the header). Bearer routes get 401, 403, 429 and
 * 503 without listing them; a route lists the rest of what it can answer.
 */
export function routeSchema(d: RouteDoc): FastifySchema {
  const auth = d.auth ?? 'bearer';
  const implied: ErrorCode[] = auth === 'bearer' || auth === 'console' ? ['UNAUTHORIZED', 'FORBIDDEN', 'RATE_LIMITED', 'QUEUE_UNAVAILABLE'] : auth === 'admin' ? ['UNAUTHORIZED', 'RATE_LIMITED'] : [];
  const schema: Record<string, unknown> = {
    summary: d.summary,
    tags: d.tags,
    security: auth === 'bearer' ? [{ bearerAuth: [] }] : auth === 'console' ? [{ consoleSession: [] }] : auth === 'admin' ? [{ adminToken: [] }, {}] : [],
    response: { ...d.responses, ...errorResponses([...(d.errors ?? []), ...implied]) },
  };
  if (d.description) schema.description = d.description;
  for (const k of ['params', 'querystring', 'headers', 'body'] as const) {
    const s = part(d[k]);
    if (s) schema[k] = s;
  }
  return schema as FastifySchema;
}

/** Registers the document and its UI; must run before the routes so their schemas are collected. */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'mediaflow',
        version: '1',
        description:
          'Queue-driven media processing: upload, sniff, validate, normalize, encrypt, store, expire. ' +
          'Success bodies are `{"success": true, "data": …}`; errors are `{"success": false, "error": {"code", "message", "request_id", "details"?}}`.',
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key (`mf_…`), scoped to one app. Every route that takes a key also takes the web console’s session (consoleSession), acting with every scope of the user’s app' },
          adminToken: { type: 'http', scheme: 'bearer', description: 'METRICS_TOKEN for /metrics, when the operator set one' },
          consoleSession: { type: 'apiKey', in: 'cookie', name: 'mf_session', description: 'The web console’s session (POST /api/session); state-changing requests also need the `x-csrf-token` header' },
        },
      },
      tags: [
        { name: 'media', description: 'upload, list, read, download, extend, delete' },
        { name: 'references', description: 'scheduled sends that need a media: expiry warnings, extend, delete guard' },
        { name: 'uploads', description: 'single-use upload slots for browsers; resumable uploads (tus 1.0) for big files and bad networks' },
        { name: 'devices', description: 'devices own media; destroying one purges its media' },
        { name: 'folders', description: 'folders for the media library' },
        { name: 'ops', description: 'health, readiness, metrics' },
        { name: 'console', description: 'the web console’s sign-in and dashboard upload (session cookie)' },
      ],
    },
    // The dashboard's own routes are not part of the public contract.
    transform: ({ schema, url }) => ({ schema: url.startsWith('/admin') ? { ...(schema ?? {}), hide: true } : schema, url }),
  });
  // The document and its UI take no API key; routes are private unless marked, so mark these.
  await app.register(async (scope) => {
    scope.addHook('onRoute', (route) => {
      route.config = { ...route.config, public: true };
    });
    await scope.register(swaggerUi, { routePrefix: '/docs', uiConfig: { deepLinking: true }, logLevel: 'warn' });
  });
}
