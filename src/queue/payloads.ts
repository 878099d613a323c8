import { z } from 'zod';
import { MEDIA_KINDS } from '../domain/kinds.js';
import { MAX_REFERENCES_PER_MEDIA, REF_PATTERN } from '../domain/references.js';
import { ingestSourceSchema } from '../domain/sources.js';

/** Job ids: our media ids (`med_…`). BullMQ refuses `:` and treats all-digit ids as its own counters. */
export const jobIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only')
  .refine((s) => !/^\d+$/.test(s), 'must not be all digits');

/** Queue `media-ingest`, job `ingest`, payload version 1 (API.md "Queue contract"). */
export const ingestPayloadV1 = z.object({
  v: z.literal(1),
  mediaId: jobIdSchema.optional(),
  appId: z.string().min(1).max(128),
  deviceId: z.string().min(1).max(64).optional(),
  kind: z.enum(MEDIA_KINDS).optional(),
  ttlSeconds: z.number().int().positive().optional(),
  source: ingestSourceSchema,
  correlationId: z.string().max(256).optional(),
  /** Scheduled sends that need this media (issue 15), recorded with the row the worker creates; optional, so v1 jobs without it stay valid. */
  references: z
    .array(z.object({ ref: z.string().regex(REF_PATTERN, '1 to 128 characters of A-Z a-z 0-9 . _ : -'), sendAt: z.iso.datetime({ offset: true }) }))
    .max(MAX_REFERENCES_PER_MEDIA)
    .optional(),
});
export type IngestPayload = z.infer<typeof ingestPayloadV1>;
/** One scheduled send a producer's job may carry: `{ ref, sendAt }` (ISO 8601 with an offset). */
export type IngestReference = NonNullable<IngestPayload['references']>[number];

export const webhookPayloadV1 = z.object({ v: z.literal(1), deliveryId: jobIdSchema });
export type WebhookPayload = z.infer<typeof webhookPayloadV1>;

export const sweepPayloadV1 = z.object({
  v: z.literal(1),
  /** A device purge targets one device; a scheduled sweep has no target. */
  appId: z.string().optional(),
  deviceId: z.string().optional(),
  dryRun: z.boolean().optional(),
});
export type SweepPayload = z.infer<typeof sweepPayloadV1>;
