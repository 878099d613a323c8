import type { Queryable } from '../pool.js';

export async function audit(db: Queryable, e: { appId: string; mediaId?: string | null; event: string; reason?: string | null; bytes?: number | null; details?: unknown }): Promise<void> {
  await db.query('INSERT INTO audit_events (app_id, media_id, event, reason, bytes, details) VALUES ($1, $2, $3, $4, $5, $6)', [
    e.appId, e.mediaId ?? null, e.event, e.reason ?? null, e.bytes ?? null, e.details === undefined ? null : JSON.stringify(e.details),
  ]);
}
