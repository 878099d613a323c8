import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import * as refsRepo from '../../db/repos/references.js';
import { AppError } from '../../domain/errors.js';
import { liveUntil, MAX_REFERENCES_PER_MEDIA, planReference, REF_PATTERN, REFERENCE_WARNINGS, sendAtProblem } from '../../domain/references.js';
import type { Runtime } from '../../runtime.js';
import { authOf } from '../plugins/auth.js';
import { mediaObjectSchema, noContent, ok, routeSchema } from '../plugins/openapi.js';
import { presentMedia } from '../present-media.js';
import { parseOr400 } from '../validation.js';
import { visibleMedia } from './media.js';

/**
 * Scheduled sends (issue 15): a reference says a send at `sendAt` needs this media. It warns when the
 * media would be gone by then, can `extend` the media's expiry (never past the retention cap), and
 * guards the media's deletion while live. It never keeps a media past `expiresAt` by itself.
 */

const refString = z.string().regex(REF_PATTERN, '1 to 128 characters of A-Z a-z 0-9 . _ : -');
export const referenceBody = z.object({
  ref: refString,
  sendAt: z.iso.datetime({ offset: true, message: 'an ISO 8601 date-time with an offset, e.g. 2026-12-24T09:00:00Z' }),
  extend: z.boolean().optional(),
});
const idParams = z.object({ id: z.string().min(1).max(128) });
const refParams = z.object({ id: z.string().min(1).max(128), ref: refString });

const referenceDoc = {
  type: 'object',
  required: ['ref', 'sendAt', 'createdAt'],
  properties: {
    ref: { type: 'string', pattern: REF_PATTERN.source, example: 'campaign-42' },
    sendAt: { type: 'string', format: 'date-time' },
    createdAt: { type: 'string', format: 'date-time' },
  },
};
const addedDoc = {
  type: 'object',
  required: ['reference', 'media', 'warnings'],
  properties: {
    reference: referenceDoc,
    media: mediaObjectSchema,
    warnings: {
      type: 'array',
      items: { type: 'string', enum: [...REFERENCE_WARNINGS] },
      description: '`EXPIRES_BEFORE_SCHEDULE`: the media is gone at or before `sendAt`; `RETENTION_CAP_REACHED`: the retention cap stopped `extend`, see `keptUntil`',
    },
    keptUntil: { type: 'string', format: 'date-time', description: 'with `RETENTION_CAP_REACHED` only: the media is kept until then (its `expiresAt`), not until `sendAt` + grace' },
  },
};

const present = (r: refsRepo.ReferenceRow) => ({ ref: r.ref, sendAt: r.send_at.toISOString(), createdAt: r.created_at.toISOString() });

export function registerReferenceRoutes(app: FastifyInstance, rt: Runtime): void {
  app.post('/v1/media/:id/references', {
    config: { scope: 'media:write' },
    schema: routeSchema({
      summary: 'Record a scheduled send that needs this media',
      description:
        '`ref` is your own id of the send, unique per media: a repeat updates `sendAt`. `sendAt` must not be in the past nor further than MAX_RETENTION_SECONDS from now. ' +
        '`extend: true` moves `expiresAt` to `sendAt` + REFERENCE_GRACE_SECONDS when that is later, never past the retention cap. ' +
        'While a reference is live (until `sendAt` + REFERENCE_GRACE_SECONDS) `DELETE /v1/media/:id` answers 409 MEDIA_IN_USE. A reference never keeps a media past `expiresAt` by itself.',
      tags: ['references'],
      params: idParams,
      body: referenceBody,
      responses: { 201: ok(addedDoc, 'the reference, the media object after it, and warnings') },
      errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'CONFLICT', 'EXPIRED'],
    }),
  }, async (req, reply) => {
    const auth = authOf(req);
    const { id } = parseOr400(idParams, req.params);
    const body = parseOr400(referenceBody, req.body ?? {});
    const sendAt = new Date(body.sendAt);
    const problem = sendAtProblem(sendAt, new Date(), rt.config.MAX_RETENTION_SECONDS);
    if (problem) throw new AppError('VALIDATION_FAILED', `invalid sendAt: ${problem}`, { fields: { sendAt: problem } });

    const grace = rt.config.REFERENCE_GRACE_SECONDS;
    const out = await refsRepo.addReference(rt.pool, {
      appId: auth.appId,
      mediaId: id,
      ref: body.ref,
      sendAt,
      liveUntil: liveUntil(sendAt, grace),
      maxReferences: MAX_REFERENCES_PER_MEDIA,
      plan: (row) =>
        planReference({
          createdAt: row.created_at,
          expiresAt: row.expires_at,
          sendAt,
          extend: body.extend === true,
          graceSeconds: grace,
          maxRetentionSeconds: rt.config.MAX_RETENTION_SECONDS,
        }),
    });
    switch (out.kind) {
      case 'not_found':
        throw new AppError('NOT_FOUND', `no media ${id}`);
      case 'settled':
        throw new AppError('CONFLICT', `media ${id} is ${out.status === 'deleting' ? 'deleted' : out.status}: no send can use it`, { status: out.status === 'deleting' ? 'deleted' : out.status });
      case 'expired':
        throw new AppError('EXPIRED', `media ${id} expired at ${out.expiresAt.toISOString()}`);
      case 'too_many':
        throw new AppError('CONFLICT', `media ${id} already has ${out.limit} live references; delete sent or cancelled ones first`, { limit: out.limit });
    }
    const data: Record<string, unknown> = {
      reference: present(out.reference),
      media: presentMedia(rt, req, out.row),
      warnings: out.result.warnings,
    };
    if (out.result.keptUntil) data.keptUntil = out.result.keptUntil.toISOString();
    return reply.code(201).send({ success: true, data });
  });

  app.get('/v1/media/:id/references', {
    config: { scope: 'media:read' },
    schema: routeSchema({
      summary: 'The live references of a media (a reference is live until sendAt + REFERENCE_GRACE_SECONDS)',
      tags: ['references'],
      params: idParams,
      responses: { 200: ok(referenceDoc, 'the live references, by sendAt', { list: true }) },
      errors: ['VALIDATION_FAILED', 'NOT_FOUND', 'EXPIRED'],
    }),
  }, async (req) => {
    const auth = authOf(req);
    const { id } = parseOr400(idParams, req.params);
    await visibleMedia(rt, auth.appId, id);
    const rows = await refsRepo.listLiveReferences(rt.pool, id);
    return { success: true, data: rows.map(present), page: { page: 0, limit: MAX_REFERENCES_PER_MEDIA, total: rows.length } };
  });

  app.delete('/v1/media/:id/references/:ref', {
    config: { scope: 'media:write' },
    schema: routeSchema({
      summary: 'The send happened or was cancelled: the reference goes',
      tags: ['references'],
      params: refParams,
      responses: { 204: noContent('the reference is gone') },
      errors: ['VALIDATION_FAILED', 'NOT_FOUND'],
    }),
  }, async (req, reply) => {
    const auth = authOf(req);
    const { id, ref } = parseOr400(refParams, req.params);
    if (!(await refsRepo.removeReference(rt.pool, auth.appId, id, ref))) throw new AppError('NOT_FOUND', `media ${id} has no reference ${ref}`);
    return reply.code(204).send();
  });
}
