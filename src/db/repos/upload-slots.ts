import type { MediaKind } from '../../domain/kinds.js';
import type { KindLimits } from '../../domain/policies.js';
import type { Queryable } from '../pool.js';

/** `Fields` is the media fields the slot was created with, stored as JSON and given back as sent. */
export interface UploadSlotRow<Fields = Record<string, unknown>> {
  media_id: string;
  app_id: string;
  token_hash: string;
  mime_type: string;
  byte_size: number;
  kind: MediaKind;
  fields: Fields;
  expires_at: Date;
  used_at: Date | null;
  created_at: Date;
}

export interface NewUploadSlot {
  mediaId: string;
  appId: string;
  tokenHash: string;
  mimeType: string;
  byteSize: number;
  kind: MediaKind;
  fields: unknown;
  ttlSeconds: number;
}

/** Returns when the slot expires (by the database clock, which every later check uses). */
export async function insertSlot(db: Queryable, s: NewUploadSlot): Promise<Date> {
  const { rows } = await db.query<{ expires_at: Date }>(
    `INSERT INTO upload_slots (media_id, app_id, token_hash, mime_type, byte_size, kind, fields, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8)) RETURNING expires_at`,
    [s.mediaId, s.appId, s.tokenHash, s.mimeType, s.byteSize, s.kind, JSON.stringify(s.fields), s.ttlSeconds],
  );
  return rows[0]!.expires_at;
}

/**
 * Takes an unused, unexpired slot for one PUT, with its app's limits. One conditional update, so
 * exactly one of concurrent PUTs gets the slot; the others get null.
 */
export async function claimSlot<Fields = Record<string, unknown>>(
  db: Queryable,
  tokenHash: string,
): Promise<(UploadSlotRow<Fields> & { limits: KindLimits }) | null> {
  const { rows } = await db.query<UploadSlotRow<Fields> & { limits: KindLimits }>(
    `UPDATE upload_slots s SET used_at = now() FROM apps a
     WHERE s.token_hash = $1 AND s.used_at IS NULL AND s.expires_at > now() AND a.id = s.app_id RETURNING s.*, a.limits`,
    [tokenHash],
  );
  return rows[0] ?? null;
}

/** The slot for a token, used or expired alike: says why a claim failed. */
export async function findSlotByHash(db: Queryable, tokenHash: string): Promise<UploadSlotRow | null> {
  const { rows } = await db.query<UploadSlotRow>('SELECT * FROM upload_slots WHERE token_hash = $1', [tokenHash]);
  return rows[0] ?? null;
}

/** Gives a claimed slot back (its PUT was refused), so the client may PUT again. */
export async function releaseSlot(db: Queryable, mediaId: string): Promise<void> {
  await db.query('UPDATE upload_slots SET used_at = NULL WHERE media_id = $1', [mediaId]);
}

/** Expired slots nobody used, an hour on: they never had bytes. Returns how many went. */
export async function deleteExpiredUnusedSlots(db: Queryable): Promise<number> {
  const { rowCount } = await db.query(`DELETE FROM upload_slots WHERE used_at IS NULL AND expires_at <= now() - interval '1 hour'`);
  return rowCount ?? 0;
}
