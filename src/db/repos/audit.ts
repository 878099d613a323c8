/**
 * The `media.deleted` audit rows of a batch of deletions, as one arm of the statement that marks the
 * batch deleted (`markDeletedAudited` in media.ts): one audit row per row `source` yields, with its
 * columns `id`, `app_id`, `reason` and `bytes`, in the same atomic statement as the state change.
 */
export const insertDeletionAuditsSql = (source: string): string =>
  `INSERT INTO audit_events (app_id, media_id, event, reason, bytes)
   SELECT ${source}.app_id, ${source}.id, 'media.deleted', ${source}.reason, ${source}.bytes FROM ${source}`;
