import type { MediaKind } from '../../domain/kinds.js';
import type { KindLimits } from '../../domain/policies.js';
import type { Queryable } from '../pool.js';

/** A run of whole sealed segments of a resumable upload, stored as one object. */
export interface TusPart {
  key: string;
  /** Index of its first segment. */
  seg: number;
  /** Segments it holds. */
  n: number;
}

/** `Fields` is the media fields the upload was created with, stored as JSON and given back as sent. */
export interface TusUploadRow<Fields = Record<string, unknown>> {
  id: string;
  app_id: string;
  media_id: string;
  upload_length: number;
  sealed_offset: number;
  parts: TusPart[];
  sealed_header: Buffer;
  kind: MediaKind | null;
  declared_mime: string | null;
  detected_mime: string | null;
  original_name: string | null;
  fields: Fields;
  metadata: Record<string, string | null>;
  lock_token: string | null;
  locked_until: Date | null;
  completed_at: Date | null;
  expires_at: Date;
  created_at: Date;
}

export interface NewTusUpload {
  id: string;
  appId: string;
  mediaId: string;
  uploadLength: number;
  sealedHeader: Buffer;
  kind: MediaKind | null;
  declaredMime: string | null;
  originalName: string | null;
  fields: unknown;
  metadata: Record<string, string | null>;
  ttlSeconds: number;
  /** The creating request's write lease (creation-with-upload writes at once). */
  leaseToken: string;
  leaseSeconds: number;
}

/** Returns when it was created and when it expires (by the database clock, which every later check uses). */
export async function insertTusUpload(db: Queryable, u: NewTusUpload): Promise<{ created_at: Date; expires_at: Date }> {
  const { rows } = await db.query<{ created_at: Date; expires_at: Date }>(
    `INSERT INTO tus_uploads (id, app_id, media_id, upload_length, sealed_header, kind, declared_mime, original_name, fields, metadata, expires_at, lock_token, locked_until)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() + make_interval(secs => $11), $12, now() + make_interval(secs => $13))
     RETURNING created_at, expires_at`,
    [u.id, u.appId, u.mediaId, u.uploadLength, u.sealedHeader, u.kind, u.declaredMime, u.originalName, JSON.stringify(u.fields), JSON.stringify(u.metadata), u.ttlSeconds, u.leaseToken, u.leaseSeconds],
  );
  return rows[0]!;
}

/** The upload with its app's limits; null when there is none of that id (whatever the app: the caller compares). */
export async function findTusUpload<Fields = Record<string, unknown>>(db: Queryable, id: string): Promise<(TusUploadRow<Fields> & { limits: KindLimits }) | null> {
  const { rows } = await db.query<TusUploadRow<Fields> & { limits: KindLimits }>(
    'SELECT t.*, a.limits FROM tus_uploads t JOIN apps a ON a.id = t.app_id WHERE t.id = $1',
    [id],
  );
  return rows[0] ?? null;
}

/**
 * Takes the write lease of an upload for one request: one conditional update, so of concurrent
 * requests (on any API process) exactly one gets it while it is held and unexpired.
 */
export async function acquireTusLease(db: Queryable, id: string, token: string, leaseSeconds: number): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE tus_uploads SET lock_token = $2, locked_until = now() + make_interval(secs => $3)
     WHERE id = $1 AND (lock_token IS NULL OR locked_until < now())`,
    [id, token, leaseSeconds],
  );
  return rowCount === 1;
}

/** Extends a lease still held; false when it was lost (expired and taken, or the upload is gone). */
export async function renewTusLease(db: Queryable, id: string, token: string, leaseSeconds: number): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE tus_uploads SET locked_until = now() + make_interval(secs => $3) WHERE id = $1 AND lock_token = $2',
    [id, token, leaseSeconds],
  );
  return rowCount === 1;
}

export async function releaseTusLease(db: Queryable, id: string, token: string): Promise<void> {
  await db.query('UPDATE tus_uploads SET lock_token = NULL, locked_until = NULL WHERE id = $1 AND lock_token = $2', [id, token]);
}

/**
 * Records a part stored by the lease holder, moving the offset from `fromOffset` to `toOffset`; the
 * first part also records what the first bytes were sniffed as. False when the lease was lost, the
 * offset moved or the upload expired: the caller's part object is then nobody's.
 */
export async function appendTusPart(
  db: Queryable,
  p: { id: string; token: string; fromOffset: number; toOffset: number; part: TusPart; detectedMime?: string | null; kind?: MediaKind | null },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE tus_uploads SET sealed_offset = $4, parts = parts || $5::jsonb,
       detected_mime = COALESCE($6, detected_mime), kind = COALESCE($7, kind)
     WHERE id = $1 AND lock_token = $2 AND locked_until > now() AND sealed_offset = $3 AND completed_at IS NULL AND expires_at > now()`,
    [p.id, p.token, p.fromOffset, p.toOffset, JSON.stringify([p.part]), p.detectedMime ?? null, p.kind ?? null],
  );
  return rowCount === 1;
}

/** The upload became its media: the offset is the whole length and no part remains. */
export async function completeTusUpload(db: Queryable, id: string, uploadLength: number): Promise<void> {
  await db.query(
    `UPDATE tus_uploads SET sealed_offset = $2, parts = '[]'::jsonb, completed_at = now(), lock_token = NULL, locked_until = NULL
     WHERE id = $1 AND completed_at IS NULL`,
    [id, uploadLength],
  );
}

/** Removes an upload (termination, refusal, expiry); returns the row it removed. */
export async function deleteTusUpload(db: Queryable, id: string): Promise<TusUploadRow | null> {
  const { rows } = await db.query<TusUploadRow>('DELETE FROM tus_uploads WHERE id = $1 RETURNING *', [id]);
  return rows[0] ?? null;
}

/** Uploads past their expiry (finished or not), oldest first: the sweeper removes their bytes, then them. */
export async function listExpiredTusUploads(db: Queryable, limit: number): Promise<Array<{ id: string; app_id: string }>> {
  const { rows } = await db.query<{ id: string; app_id: string }>(
    'SELECT id, app_id FROM tus_uploads WHERE expires_at <= now() ORDER BY expires_at LIMIT $1',
    [limit],
  );
  return rows;
}
