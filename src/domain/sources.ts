import { z } from 'zod';

/**
 * Where a queued media's bytes come from: a URL a worker fetches, a key in the store (our staging
 * object or the app's inbox), or a file on the worker's machine. The queue payload carries it and the
 * acquire step reads it, so it is defined here rather than by either of them.
 */
export const ingestSourceSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('url'), url: z.string().min(1).max(4096) }),
  z.object({ type: z.literal('storage'), key: z.string().min(1).max(1024) }),
  z.object({ type: z.literal('file'), path: z.string().min(1).max(4096) }),
]);
export type IngestSource = z.infer<typeof ingestSourceSchema>;

/**
 * The source a queued media's job reads, from what its row keeps: the URL it was given, else its
 * sealed staging object. Null when the row keeps neither (a producer's `file` or inbox source, which
 * the row does not record).
 */
export function queuedSource(row: { sourceUrl: string | null | undefined; stagingKey: string | null | undefined }): IngestSource | null {
  if (row.sourceUrl) return { type: 'url', url: row.sourceUrl };
  if (row.stagingKey) return { type: 'storage', key: row.stagingKey };
  return null;
}
