import type { DeleteReason } from '../../domain/kinds.js';
import type { Queryable } from '../pool.js';

/** One `media.deleted` audit row per deleted media, in one statement (a sweep batch audits together). */
export async function auditDeletions(db: Queryable, items: ReadonlyArray<{ appId: string; mediaId: string; reason: DeleteReason; bytes: number }>): Promise<void> {
  await db.query(
    `INSERT INTO audit_events (app_id, media_id, event, reason, bytes)
     SELECT a, m, 'media.deleted', r, b FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS t(a, m, r, b)`,
    [items.map((i) => i.appId), items.map((i) => i.mediaId), items.map((i) => i.reason), items.map((i) => i.bytes)],
  );
}
