import type { Queryable } from '../pool.js';
import type { MediaKind, MediaSource, MediaStatus } from '../../domain/kinds.js';

export interface MediaRow {
  id: string;
  app_id: string;
  device_id: string | null;
  folder_id: string | null;
  kind: MediaKind;
  status: MediaStatus;
  source: MediaSource;
  source_url: string | null;
  declared_mime: string | null;
  detected_mime: string | null;
  mime_type: string | null;
  original_name: string | null;
  name: string | null;
  description: string | null;
  input_bytes: number | null;
  size_bytes: number | null;
  stored_bytes: number | null;
  checksum: string | null;
  width: number | null;
  height: number | null;
  duration_ms: number | null;
  pages: number | null;
  waveform: number[] | null;
  transform: string | null;
  media_path: string;
  storage_key: string;
  staging_key: string | null;
  key_id: string | null;
  variants: Array<{ name: string; key: string; mimeType: string; bytes: number }>;
  attempts: number;
  error_code: string | null;
  error_message: string | null;
  delete_reason: string | null;
  correlation_id: string | null;
  expires_at: Date;
  created_at: Date;
  updated_at: Date;
  ready_at: Date | null;
  deleted_at: Date | null;
  /** Lease token of the sweeper working on this row while `deleting` (migration *_sweep-claims). */
  sweep_claim?: number | null;
  /** The processing run that last claimed this row (migration *_media-claim-token). */
  claim_token?: string | null;
}

export interface NewMedia {
  id: string;
  appId: string;
  deviceId: string | null;
  folderId: string | null;
  kind: MediaKind;
  source: MediaSource;
  sourceUrl?: string | null;
  declaredMime: string | null;
  detectedMime?: string | null;
  originalName: string | null;
  name: string | null;
  description: string | null;
  inputBytes: number | null;
  mediaPath: string;
  storageKey: string;
  stagingKey: string | null;
  ttlSeconds: number;
  correlationId?: string | null;
}

export async function insertMedia(db: Queryable, m: NewMedia): Promise<MediaRow> {
  const { rows } = await db.query<MediaRow>(
    `INSERT INTO media (id, app_id, device_id, folder_id, kind, status, source, source_url, declared_mime, detected_mime,
       original_name, name, description, input_bytes, media_path, storage_key, staging_key, correlation_id, expires_at)
     VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, now() + make_interval(secs => $18))
     RETURNING *`,
    [
      m.id, m.appId, m.deviceId, m.folderId, m.kind, m.source, m.sourceUrl ?? null, m.declaredMime, m.detectedMime ?? null,
      m.originalName, m.name, m.description, m.inputBytes, m.mediaPath, m.storageKey, m.stagingKey, m.correlationId ?? null, m.ttlSeconds,
    ],
  );
  return rows[0]!;
}

/** Visible media of an app: rows being or already deleted are gone for clients. */
export async function getMedia(db: Queryable, appId: string, id: string): Promise<MediaRow | null> {
  const { rows } = await db.query<MediaRow>(
    `SELECT * FROM media WHERE app_id = $1 AND id = $2 AND status NOT IN ('deleting', 'deleted')`,
    [appId, id],
  );
  return rows[0] ?? null;
}

export async function getMediaById(db: Queryable, id: string): Promise<MediaRow | null> {
  const { rows } = await db.query<MediaRow>('SELECT * FROM media WHERE id = $1', [id]);
  return rows[0] ?? null;
}

export async function getMediaByPath(db: Queryable, appId: string, mediaPath: string): Promise<MediaRow | null> {
  const { rows } = await db.query<MediaRow>(
    `SELECT * FROM media WHERE app_id = $1 AND media_path = $2 AND status NOT IN ('deleting', 'deleted')`,
    [appId, mediaPath],
  );
  return rows[0] ?? null;
}

export interface ListQuery {
  appId: string;
  page: number;
  limit: number;
  sortBy: 'createdAt' | 'name' | 'sizeBytes';
  sortOrder: 'asc' | 'desc';
  kind?: string;
  status?: string;
  folderId?: string;
  deviceId?: string;
}

const SORT_COLUMNS = { createdAt: 'created_at', name: 'name', sizeBytes: 'size_bytes' } as const;

export async function listMedia(db: Queryable, q: ListQuery): Promise<{ rows: MediaRow[]; total: number }> {
  const where: string[] = ['app_id = $1', `status NOT IN ('deleting', 'deleted')`];
  const params: unknown[] = [q.appId];
  const add = (col: string, v: string | undefined) => {
    if (v === undefined) return;
    params.push(v);
    where.push(`${col} = $${params.length}`);
  };
  add('kind', q.kind);
  add('status', q.status);
  add('folder_id', q.folderId);
  add('device_id', q.deviceId);
  const col = SORT_COLUMNS[q.sortBy];
  const dir = q.sortOrder === 'asc' ? 'ASC' : 'DESC';
  const w = where.join(' AND ');
  const { rows: countRows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM media WHERE ${w}`, params);
  params.push(q.limit, q.page * q.limit);
  // id breaks ties so pages never overlap or skip rows with equal sort keys.
  const { rows } = await db.query<MediaRow>(
    `SELECT * FROM media WHERE ${w} ORDER BY ${col} ${dir} NULLS LAST, id ${dir} LIMIT $${params.length - 1} OFFSET $${params.length}`,
    params,
  );
  return { rows, total: countRows[0]!.n };
}

/**
 * queued|processing → processing, owned by run `claimToken`; null when another delivery finished it
 * already. A later claim takes the row over from an earlier run that may still be working (its job
 * stalled): from then on every conditional change of the earlier run matches nothing.
 */
export async function claimForProcessing(db: Queryable, id: string, claimToken: string): Promise<MediaRow | null> {
  const { rows } = await db.query<MediaRow>(
    `UPDATE media SET status = 'processing', claim_token = $2, attempts = attempts + 1, updated_at = now()
     WHERE id = $1 AND status IN ('queued', 'processing') RETURNING *`,
    [id, claimToken],
  );
  return rows[0] ?? null;
}

/** The kind decided from the bytes, if run `claimToken` still owns the row; false when it does not. */
export async function setKindForRun(db: Queryable, id: string, claimToken: string, kind: MediaKind): Promise<boolean> {
  const { rowCount } = await db.query(`UPDATE media SET kind = $3 WHERE id = $1 AND status = 'processing' AND claim_token = $2`, [id, claimToken, kind]);
  return rowCount === 1;
}

/** processing → queued after a transient fault of run `claimToken`, so readers and the reconciler see it waits for a retry. */
export async function requeueForRun(db: Queryable, id: string, claimToken: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE media SET status = 'queued', updated_at = now() WHERE id = $1 AND status = 'processing' AND claim_token = $2`,
    [id, claimToken],
  );
  return rowCount === 1;
}

export interface ReadyFields {
  mimeType: string;
  detectedMime: string;
  sizeBytes: number;
  storedBytes: number;
  checksum: string;
  keyId: string;
  width: number | null;
  height: number | null;
  durationMs: number | null;
  pages: number | null;
  waveform: number[] | null;
  transform: string;
  variants: MediaRow['variants'];
  inputBytes: number;
  originalName?: string | null;
  /** The stored object this run wrote (its run-unique key): the row points at it from this commit on. */
  storageKey: string;
}

/**
 * processing → ready, only for the run that owns the row (`claimToken`): a run that was taken over
 * matches nothing, so the row and the objects it points at always come from one run.
 */
export async function markReady(db: Queryable, id: string, claimToken: string, f: ReadyFields): Promise<MediaRow | null> {
  const { rows } = await db.query<MediaRow>(
    `UPDATE media SET status = 'ready', mime_type = $3, detected_mime = $4, size_bytes = $5, stored_bytes = $6, checksum = $7,
       key_id = $8, width = $9, height = $10, duration_ms = $11, pages = $12, waveform = $13, transform = $14, variants = $15,
       input_bytes = $16, original_name = COALESCE(original_name, $17), storage_key = $18, staging_key = NULL, error_code = NULL,
       error_message = NULL, ready_at = now(), updated_at = now()
     WHERE id = $1 AND status = 'processing' AND claim_token = $2 RETURNING *`,
    [
      id, claimToken, f.mimeType, f.detectedMime, f.sizeBytes, f.storedBytes, f.checksum, f.keyId, f.width, f.height, f.durationMs, f.pages,
      f.waveform === null ? null : JSON.stringify(f.waveform), f.transform, JSON.stringify(f.variants), f.inputBytes, f.originalName ?? null,
      f.storageKey,
    ],
  );
  return rows[0] ?? null;
}

/**
 * queued|processing → failed. With `claimToken` (a processing run recording its own failure) only
 * while that run still owns the row; without it (the reconciler, which found no source) any run.
 */
export async function markFailed(
  db: Queryable,
  id: string,
  code: string,
  message: string,
  opts: { claimToken?: string; detectedMime?: string | null } = {},
): Promise<MediaRow | null> {
  const owner = opts.claimToken === undefined ? `status IN ('queued', 'processing')` : `status = 'processing' AND claim_token = $5`;
  const params: unknown[] = [id, code, message.slice(0, 500), opts.detectedMime ?? null];
  if (opts.claimToken !== undefined) params.push(opts.claimToken);
  const { rows } = await db.query<MediaRow>(
    `UPDATE media SET status = 'failed', error_code = $2, error_message = $3, detected_mime = COALESCE($4, detected_mime), updated_at = now()
     WHERE id = $1 AND ${owner} RETURNING *`,
    params,
  );
  return rows[0] ?? null;
}

/** Client deletion: the row answers 404 from now on; bytes go next, then the row is marked deleted. */
export async function markDeleting(db: Queryable, appId: string, id: string, reason: string): Promise<MediaRow | null> {
  const { rows } = await db.query<MediaRow>(
    `UPDATE media SET status = 'deleting', delete_reason = $3, updated_at = now()
     WHERE app_id = $1 AND id = $2 AND status NOT IN ('deleting', 'deleted') RETURNING *`,
    [appId, id, reason],
  );
  return rows[0] ?? null;
}

export async function markDeleted(db: Queryable, id: string): Promise<MediaRow | null> {
  const { rows } = await db.query<MediaRow>(
    `UPDATE media SET status = 'deleted', deleted_at = now(), updated_at = now(), staging_key = NULL
     WHERE id = $1 AND status = 'deleting' RETURNING *`,
    [id],
  );
  return rows[0] ?? null;
}

/** Hard delete, for an upload that never became a job (enqueue failed): nothing half-written stays. */
export async function removeMedia(db: Queryable, id: string): Promise<void> {
  await db.query('DELETE FROM media WHERE id = $1', [id]);
}

export async function extendExpiry(db: Queryable, appId: string, id: string, ttlSeconds: number, maxRetentionSeconds: number): Promise<MediaRow | null> {
  const { rows } = await db.query<MediaRow>(
    `UPDATE media SET expires_at = LEAST(GREATEST(expires_at, now() + make_interval(secs => $3)), created_at + make_interval(secs => $4)),
       updated_at = now()
     WHERE app_id = $1 AND id = $2 AND status NOT IN ('deleting', 'deleted') RETURNING *`,
    [appId, id, ttlSeconds, maxRetentionSeconds],
  );
  return rows[0] ?? null;
}

/** Rows left `queued`/`processing` longer than `olderThanSeconds`: candidates for re-enqueue. */
export async function findStale(db: Queryable, olderThanSeconds: number, limit = 500): Promise<Array<Pick<MediaRow, 'id' | 'app_id' | 'status'>>> {
  const { rows } = await db.query<Pick<MediaRow, 'id' | 'app_id' | 'status'>>(
    `SELECT id, app_id, status FROM media WHERE status IN ('queued', 'processing') AND updated_at < now() - make_interval(secs => $1)
     ORDER BY updated_at LIMIT $2`,
    [olderThanSeconds, limit],
  );
  return rows;
}

export async function touch(db: Queryable, id: string): Promise<void> {
  await db.query('UPDATE media SET updated_at = now() WHERE id = $1', [id]);
}

/**
 * A `ready` row whose stored object is gone (found by orphan reconciliation): the bytes cannot come
 * back, so the row stops claiming to be servable. `failed` rows are swept an hour later.
 */
export async function markObjectLost(db: Queryable, id: string, message: string): Promise<MediaRow | null> {
  const { rows } = await db.query<MediaRow>(
    `UPDATE media SET status = 'failed', error_code = 'STORAGE_UNAVAILABLE', error_message = $2, updated_at = now()
     WHERE id = $1 AND status = 'ready' RETURNING *`,
    [id, message.slice(0, 500)],
  );
  return rows[0] ?? null;
}
