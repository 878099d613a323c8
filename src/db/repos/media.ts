import type { Queryable } from '../pool.js';
import type { DeleteReason, MediaKind, MediaSource, MediaStatus } from '../../domain/kinds.js';
import { insertDeletionAuditsSql } from './audit.js';
import { deleteReferencesOfSql, hasLiveReferenceSql, refSummaryColumnsSql, withLiveRefsSql } from './reference-sql.js';
import { LIVE_TOKENS_SQL } from './sweep-leases.js';
import { insertMediaDeletedDeliveriesSql } from './webhook-deliveries.js';

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
  /** Live scheduled sends (migration *_media-references), when the row was read with `refSummaryColumnsSql`. */
  ref_count?: number;
  next_send_at?: Date | null;
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
    `SELECT media.*, ${refSummaryColumnsSql('media')} FROM media WHERE app_id = $1 AND id = $2 AND status NOT IN ('deleting', 'deleted')`,
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
  /** Part of the name or original file name, any case (the console's search). */
  q?: string;
  /** true: only media a live reference needs; false: only media none needs. */
  referenced?: boolean;
  /** Only media that expire before this instant. */
  expiresBefore?: Date;
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
  if (q.referenced !== undefined) where.push(q.referenced ? hasLiveReferenceSql('media') : `NOT ${hasLiveReferenceSql('media')}`);
  if (q.expiresBefore !== undefined) {
    params.push(q.expiresBefore);
    where.push(`expires_at < $${params.length}`);
  }
  if (q.q) {
    params.push(`%${q.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where.push(`(name ILIKE $${params.length} OR original_name ILIKE $${params.length})`);
  }
  const col = SORT_COLUMNS[q.sortBy];
  const dir = q.sortOrder === 'asc' ? 'ASC' : 'DESC';
  const w = where.join(' AND ');
  const { rows: countRows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM media WHERE ${w}`, params);
  params.push(q.limit, q.page * q.limit);
  // id breaks ties so pages never overlap or skip rows with equal sort keys.
  const { rows } = await db.query<MediaRow>(
    `SELECT media.*, ${refSummaryColumnsSql('media')} FROM media WHERE ${w} ORDER BY ${col} ${dir} NULLS LAST, id ${dir} LIMIT $${params.length - 1} OFFSET $${params.length}`,
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

/**
 * The worker's claim in one round trip: `claimForProcessing` for a row of `appId`, returning with it
 * the app's per-kind limits. Null when there is nothing to claim (no row, another app's, settled);
 * the caller reads the row to tell which.
 *
 * Committed without waiting for the WAL flush (synchronous_commit off for this one transaction):
 * a claim lost to a database crash changes nothing, because the run's every later change is
 * conditional on it and committed synchronously, which flushes the WAL up to and past the claim;
 * a crash before that fails the run as any outage does, and the job is retried. It saves a disk
 * flush on every job.
 */
export async function claimForRun(db: Queryable, id: string, appId: string, claimToken: string): Promise<{ row: MediaRow; appLimits: Record<string, unknown> } | null> {
  const { rows } = await db.query<MediaRow & { app_limits: Record<string, unknown> | null }>({
    text: `UPDATE media SET status = 'processing', claim_token = $2, attempts = attempts + 1, updated_at = now()
     FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
     WHERE media.id = $1 AND media.app_id = $3 AND media.status IN ('queued', 'processing')
     RETURNING media.*, (SELECT limits FROM apps WHERE apps.id = media.app_id) AS app_limits`,
    values: [id, claimToken, appId],
  });
  const r = rows[0];
  if (!r) return null;
  const { app_limits: appLimits, ...row } = r;
  return { row: row as MediaRow, appLimits: appLimits ?? {} };
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
 * `markReady` and, when the app has a webhook URL, its `media.ready` outbox row, in one statement:
 * one round trip, and atomic like the transaction it replaces (the state change and its event commit
 * together or not at all). `event.body` is built by the caller from the row it claimed and the
 * fields it sets. Null when the run no longer owns the row; else the delivery id (null without a
 * webhook, or without `event`).
 */
export async function markReadyWithEvent(
  db: Queryable,
  id: string,
  claimToken: string,
  f: ReadyFields,
  event: { id: string; body: unknown } | null,
): Promise<{ deliveryId: string | null } | null> {
  const values = [
    id, claimToken, f.mimeType, f.detectedMime, f.sizeBytes, f.storedBytes, f.checksum, f.keyId, f.width, f.height, f.durationMs, f.pages,
    f.waveform === null ? null : JSON.stringify(f.waveform), f.transform, JSON.stringify(f.variants), f.inputBytes, f.originalName ?? null,
    f.storageKey,
  ];
  const ready = `UPDATE media SET status = 'ready', mime_type = $3, detected_mime = $4, size_bytes = $5, stored_bytes = $6, checksum = $7,
       key_id = $8, width = $9, height = $10, duration_ms = $11, pages = $12, waveform = $13, transform = $14, variants = $15,
       input_bytes = $16, original_name = COALESCE(original_name, $17), storage_key = $18, staging_key = NULL, error_code = NULL,
       error_message = NULL, ready_at = now(), updated_at = now()
     WHERE id = $1 AND status = 'processing' AND claim_token = $2 RETURNING id, app_id`;
  if (!event) {
    const { rows } = await db.query<{ id: string }>(ready, values);
    return rows[0] ? { deliveryId: null } : null;
  }
  const { rows } = await db.query<{ id: string; delivery_id: string | null }>({
    text: `WITH ready AS (${ready}),
     outbox AS (
       INSERT INTO webhook_deliveries (id, app_id, event, media_id, body)
       SELECT $19, ready.app_id, 'media.ready', ready.id, $20::jsonb FROM ready
       WHERE EXISTS (SELECT 1 FROM apps WHERE apps.id = ready.app_id AND apps.webhook_url IS NOT NULL AND apps.webhook_url <> '')
       RETURNING id)
     SELECT ready.id, (SELECT id FROM outbox) AS delivery_id FROM ready`,
    values: [...values, event.id, JSON.stringify(event.body)],
  });
  return rows[0] ? { deliveryId: rows[0].delivery_id } : null;
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

/** One row to mark deleted: why, and its `media.deleted` event when its app may have a webhook. */
export interface Deletion {
  id: string;
  reason: DeleteReason;
  event: { id: string; body: unknown } | null;
}

/**
 * deleting → deleted for rows whose bytes are gone, with exactly one `media.deleted` audit row each
 * and, for apps that have a webhook when it commits, the event's outbox row: one statement, so one
 * round trip per batch and atomic like the transaction it replaces (no BEGIN/COMMIT to wait for).
 * Conditional on `deleting`, so a row two sweepers both finished is deleted, audited and announced
 * by one of them only. Returns the rows this call deleted, with their delivery id (null: no webhook).
 */
export async function markDeletedAudited(
  db: Queryable,
  items: readonly Deletion[],
): Promise<Array<{ id: string; app_id: string; stored_bytes: number | null; delivery_id: string | null }>> {
  if (items.length === 0) return [];
  const { rows } = await db.query<{ id: string; app_id: string; stored_bytes: number | null; delivery_id: string | null }>(
    // `m.id = ANY($1)` keeps the update a primary-key lookup whatever the batch size (see claimDue).
    `WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[]) AS i(id, reason, event_id, body)),
     d AS (
       UPDATE media m SET status = 'deleted', deleted_at = now(), updated_at = now(), staging_key = NULL
       WHERE m.id = ANY($1::text[]) AND m.status = 'deleting'
       RETURNING m.id, m.app_id, m.stored_bytes),
     done AS (SELECT d.id, d.app_id, d.stored_bytes, COALESCE(d.stored_bytes, 0) AS bytes, i.reason, i.event_id, ${withLiveRefsSql('i.body', 'd.id')} AS body
       FROM d JOIN i ON i.id = d.id),
     refs AS (${deleteReferencesOfSql('ARRAY(SELECT id FROM d)')}),
     audit AS (${insertDeletionAuditsSql('done')}),
     outbox AS (${insertMediaDeletedDeliveriesSql('done')})
     SELECT done.id, done.app_id, done.stored_bytes, outbox.id AS delivery_id FROM done LEFT JOIN outbox ON outbox.media_id = done.id`,
    [
      items.map((d) => d.id),
      items.map((d) => d.reason),
      items.map((d) => d.event?.id ?? null),
      items.map((d) => (d.event ? JSON.stringify(d.event.body) : null)),
    ],
  );
  return rows;
}

/**
 * A destroyed device's media answer 404 from now on. Their `updated_at` is set an hour back so a
 * sweep takes them over at once should the purge job never run.
 */
export async function markDeviceMediaDeleting(db: Queryable, appId: string, deviceId: string): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE media SET status = 'deleting', delete_reason = 'device_destroyed', updated_at = now() - interval '1 hour'
     WHERE app_id = $1 AND device_id = $2 AND status NOT IN ('deleting', 'deleted')`,
    [appId, deviceId],
  );
  return rowCount ?? 0;
}

/** Hard delete, for an upload that never became a job (enqueue failed): nothing half-written stays. */
export async function removeMedia(db: Queryable, id: string): Promise<void> {
  await db.query('DELETE FROM media WHERE id = $1', [id]);
}

export async function extendExpiry(db: Queryable, appId: string, id: string, ttlSeconds: number, maxRetentionSeconds: number): Promise<MediaRow | null> {
  const { rows } = await db.query<MediaRow>(
    `UPDATE media SET expires_at = LEAST(GREATEST(expires_at, now() + make_interval(secs => $3)), created_at + make_interval(secs => $4)),
       updated_at = now()
     WHERE app_id = $1 AND id = $2 AND status NOT IN ('deleting', 'deleted') RETURNING media.*, ${refSummaryColumnsSql('media')}`,
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
 * Media whose job still waits (a long backlog, or no worker running): refreshed, so neither the
 * reconciler nor the sweep takes them for lost before RECONCILE_AFTER_SECONDS passes again.
 */
export async function touchUnsettled(db: Queryable, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.query(`UPDATE media SET updated_at = now() WHERE id = ANY($1::text[]) AND status IN ('queued', 'processing')`, [ids]);
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

/** Owner and status of each of these media that has a row: whether their staging objects are still needed. */
export async function findStagingOwners(db: Queryable, ids: readonly string[]): Promise<Array<Pick<MediaRow, 'id' | 'app_id' | 'status'>>> {
  const { rows } = await db.query<Pick<MediaRow, 'id' | 'app_id' | 'status'>>('SELECT id, app_id, status FROM media WHERE id = ANY($1::text[])', [ids]);
  return rows;
}

/** Media counts and stored bytes by status and kind, over all apps (`mediaflow stats`). */
export async function countByStatusAndKind(db: Queryable): Promise<Array<{ status: MediaStatus; kind: MediaKind | null; n: number; bytes: number }>> {
  const { rows } = await db.query<{ status: MediaStatus; kind: MediaKind | null; n: number; bytes: number }>(
    `SELECT status, kind, count(*)::int AS n, COALESCE(sum(stored_bytes), 0)::bigint AS bytes FROM media GROUP BY status, kind ORDER BY status, kind`,
  );
  return rows;
}

// Retention: which rows a sweep deletes, and claiming them (src/retention/sweep.ts runs the sweep).

/** Narrows a sweep to one app or one device (the immediate purge after a device is destroyed). */
export interface SweepScope {
  appId?: string;
  deviceId?: string;
}

/**
 * What a sweep batch needs of a row it claims: its objects, its audit figures and its event's
 * fields; no timestamps, which are the costly part of reading a row back. `hooked`: its app had a
 * webhook at claim time, so its event is built (the commit checks the app again).
 */
export type ClaimedRow = Pick<
  MediaRow,
  'id' | 'app_id' | 'device_id' | 'kind' | 'media_path' | 'mime_type' | 'detected_mime' | 'size_bytes' | 'stored_bytes' | 'checksum'
  | 'error_code' | 'error_message' | 'storage_key' | 'variants'
> & { reason: DeleteReason; hooked: boolean };

const CLAIMED = `m.id, m.app_id, m.device_id, m.kind, m.media_path, m.mime_type, m.detected_mime, m.size_bytes, m.stored_bytes, m.checksum,
  m.error_code, m.error_message, m.storage_key, m.variants,
  EXISTS (SELECT 1 FROM apps a WHERE a.id = m.app_id AND a.webhook_url IS NOT NULL) AS hooked`;

/** Failed uploads, and queued/processing rows that name no source, are removed this long after their last change. */
export const ABANDONED_AFTER = "interval '1 hour'";
/**
 * A `queued`/`processing` row is accepted work when it names its input: a staging object (upload,
 * base64, slot PUT, CLI file: the row is written only once the bytes are staged), a URL, or a
 * producer's job (the source lives in the job). Such a row waits through a worker outage of any
 * length (the reconciler, which the sweeper runs too, re-enqueues it if the queue lost it) and only
 * expiry removes it. Uploads that never completed have no row at all (an unused slot lives in
 * `upload_slots`, a cut upload leaves at most a staging object `sweepStaging` removes), so a row
 * that names nothing is the only kind left to call abandoned.
 */
export const NAMES_NO_SOURCE = `m.staging_key IS NULL AND m.source_url IS NULL AND m.source <> 'queue'`;
/**
 * `deleting` rows no sweeper claimed (a client DELETE or a device destroy whose own deletion did not
 * finish) are left this long to the request that marked them before a sweep takes them over.
 */
export const UNCLAIMED_DELETING_GRACE_SECONDS = 30;
/** How far back the sweep looks for destroyed devices whose media arrived after the destroy. */
export const DESTROYED_DEVICE_WINDOW = "interval '7 days'";

/** Bound parameters of one statement: `p(value)` returns its placeholder. Only used values are sent. */
class Params {
  readonly values: unknown[] = [];
  p = (value: unknown): string => {
    this.values.push(value);
    return `$${this.values.length}`;
  };
}

const LIVE = `m.status NOT IN ('deleting', 'deleted')`;
const DEVICE_DESTROYED = `(m.device_id IS NOT NULL AND EXISTS (SELECT 1 FROM devices d WHERE d.app_id = m.app_id AND d.id = m.device_id AND d.status = 'destroyed'))`;
const REASON = `CASE WHEN ${DEVICE_DESTROYED} THEN 'device_destroyed' WHEN m.expires_at <= now() THEN 'expired' ELSE 'retention' END`;

/**
 * Why a row is due, one index-backed query each. One OR of all of them cannot use an index (the
 * device test alone forces a scan of every live row), so every claim would scan and sort the
 * table; separate arms each stop after LIMIT rows.
 */
interface Arm {
  name: string;
  from: string;
  where: (p: Params['p'], maxRetentionSeconds: number) => string;
  order?: string;
}

const ARMS: readonly Arm[] = [
  // Partial index media_due (expires_at) WHERE status NOT IN ('deleting', 'deleted').
  { name: 'expired', from: 'media m', where: () => 'm.expires_at <= now()', order: 'm.expires_at' },
  // Media that reached a device after its destroy (the destroy itself marks the device's media).
  {
    name: 'device_destroyed',
    from: 'devices d JOIN media m ON m.app_id = d.app_id AND m.device_id = d.id',
    where: () => `d.status = 'destroyed' AND d.destroyed_at >= now() - ${DESTROYED_DEVICE_WINDOW}`,
  },
  // Partial index media_live_created: finds rows created before the cap was lowered.
  { name: 'retention', from: 'media m', where: (p, cap) => `m.created_at <= now() - make_interval(secs => ${p(cap)})`, order: 'm.created_at' },
  // Index media_status_updated (status, updated_at).
  { name: 'failed', from: 'media m', where: () => `m.status = 'failed' AND m.updated_at <= now() - ${ABANDONED_AFTER}`, order: 'm.updated_at' },
  {
    name: 'abandoned',
    from: 'media m',
    where: () => `m.status IN ('queued', 'processing') AND m.updated_at <= now() - ${ABANDONED_AFTER} AND ${NAMES_NO_SOURCE}`,
    order: 'm.updated_at',
  },
];

function scopeSql(p: Params['p'], scope: SweepScope): string {
  const parts: string[] = [];
  if (scope.appId !== undefined) parts.push(`m.app_id = ${p(scope.appId)}`);
  if (scope.deviceId !== undefined) parts.push(`m.device_id = ${p(scope.deviceId)}`);
  return parts.length ? parts.join(' AND ') : 'true';
}

function armSelect(arm: Arm, columns: string, p: Params['p'], cap: number, scope: SweepScope): string {
  return `SELECT ${columns} FROM ${arm.from} WHERE ${LIVE} AND ${arm.where(p, cap)} AND ${scopeSql(p, scope)}`;
}

/**
 * Claims up to `limit` due rows for lease `token`: each arm is one short statement (its own
 * transaction), so no lock outlives the statement that took it and concurrent sweepers skip each
 * other's rows instead of waiting. The rows answer 404 from here on.
 */
export async function claimDue(db: Queryable, token: number, limit: number, maxRetentionSeconds: number, scope: SweepScope = {}): Promise<ClaimedRow[]> {
  const out: ClaimedRow[] = [];
  for (const arm of ARMS) {
    if (out.length >= limit) break;
    const q = new Params();
    const ids = `${armSelect(arm, 'm.id', q.p, maxRetentionSeconds, scope)} ${arm.order ? `ORDER BY ${arm.order}` : ''} LIMIT ${q.p(limit - out.length)} FOR UPDATE OF m SKIP LOCKED`;
    // ANY(ARRAY(…)) keeps the update a primary-key lookup of the locked ids whatever the batch size;
    // as a join the planner turns to a scan of the whole table once a batch is large.
    const sql = `UPDATE media m SET status = 'deleting', delete_reason = ${REASON}, sweep_claim = ${q.p(token)}, updated_at = now()
      WHERE m.id = ANY(ARRAY(${ids})) AND ${LIVE}
      RETURNING ${CLAIMED}, m.delete_reason AS reason`;
    const { rows } = await db.query<ClaimedRow>(sql, q.values);
    out.push(...rows);
  }
  return out;
}

/** `deleting` rows nobody is working on: their sweeper died, or the request that marked them gave up. */
function abandonedDeleting(p: Params['p']): string {
  return `m.status = 'deleting' AND CASE
    WHEN m.sweep_claim IS NULL THEN m.updated_at <= now() - make_interval(secs => ${p(UNCLAIMED_DELETING_GRACE_SECONDS)})
    ELSE m.sweep_claim NOT IN (${LIVE_TOKENS_SQL}) END`;
}

/** Takes over abandoned `deleting` rows for lease `token`; their reason is the one they were marked with. */
export async function claimAbandonedDeleting(db: Queryable, token: number, limit: number, scope: SweepScope = {}): Promise<ClaimedRow[]> {
  const q = new Params();
  const ids = `SELECT m.id FROM media m WHERE ${abandonedDeleting(q.p)} AND ${scopeSql(q.p, scope)} ORDER BY m.updated_at LIMIT ${q.p(limit)} FOR UPDATE OF m SKIP LOCKED`;
  const sql = `UPDATE media m SET sweep_claim = ${q.p(token)}, updated_at = now()
     WHERE m.id = ANY(ARRAY(${ids})) AND m.status = 'deleting'
     RETURNING ${CLAIMED}, COALESCE(m.delete_reason, 'expired') AS reason`;
  const { rows } = await db.query<ClaimedRow>(sql, q.values);
  return rows;
}

/** Every row a sweep would delete, with its reason, each once (an expired failed upload is due twice). */
function allDueSql(p: Params['p'], cap: number, scope: SweepScope): string {
  const arms = ARMS.map((arm, i) => `UNION ALL ${armSelect(arm, `m.id, ${REASON} AS reason, ${i + 1} AS pri`, p, cap, scope)}`);
  return `SELECT DISTINCT ON (u.id) u.id, u.reason FROM (
      SELECT m.id, COALESCE(m.delete_reason, 'expired') AS reason, 0 AS pri FROM media m WHERE m.status = 'deleting' AND ${scopeSql(p, scope)}
      ${arms.join('\n      ')}
    ) u ORDER BY u.id, u.pri`;
}

/** Due rows not yet deleted (including those being deleted): the sweep backlog. */
export async function countBacklog(db: Queryable, maxRetentionSeconds: number, scope: SweepScope = {}): Promise<number> {
  const q = new Params();
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${allDueSql(q.p, maxRetentionSeconds, scope)}) due`, q.values);
  return rows[0]!.n;
}

export interface DuePreview {
  total: number;
  bytes: number;
  byReason: Record<string, number>;
  items: Array<{ id: string; appId: string; reason: DeleteReason; bytes: number; status: string; expiresAt: string }>;
}

/** What a sweep would delete now, claiming nothing (`sweep --dry-run`). */
export async function previewDue(db: Queryable, maxRetentionSeconds: number, scope: SweepScope, itemLimit: number): Promise<DuePreview> {
  const a = new Params();
  const agg = await db.query<{ reason: DeleteReason; n: number; bytes: number }>(
    `SELECT due.reason, count(*)::int AS n, COALESCE(sum(m.stored_bytes), 0)::bigint AS bytes
     FROM (${allDueSql(a.p, maxRetentionSeconds, scope)}) due JOIN media m ON m.id = due.id GROUP BY due.reason`,
    a.values,
  );
  const b = new Params();
  const items = await db.query<{ id: string; app_id: string; reason: DeleteReason; stored_bytes: number | null; status: string; expires_at: Date }>(
    `SELECT m.id, m.app_id, due.reason, m.stored_bytes, m.status, m.expires_at
     FROM (${allDueSql(b.p, maxRetentionSeconds, scope)}) due JOIN media m ON m.id = due.id
     ORDER BY m.expires_at, m.id LIMIT ${b.p(Math.max(0, Math.floor(itemLimit)))}`,
    b.values,
  );
  const byReason: Record<string, number> = {};
  let total = 0;
  let bytes = 0;
  for (const r of agg.rows) {
    byReason[r.reason] = r.n;
    total += r.n;
    bytes += Number(r.bytes);
  }
  return {
    total,
    bytes,
    byReason,
    items: items.rows.map((r) => ({
      id: r.id,
      appId: r.app_id,
      reason: r.reason,
      bytes: r.stored_bytes ?? 0,
      status: r.status,
      expiresAt: r.expires_at.toISOString(),
    })),
  };
}

/**
 * Moves a media into a folder (or out of any, with null) and/or renames it; the folder must be the
 * app's own (checked in the same statement). Null when there is no such visible media or folder.
 */
export async function updateMediaFields(db: Queryable, appId: string, id: string, f: { folderId?: string | null; name?: string | null }): Promise<MediaRow | null> {
  const { rows } = await db.query<MediaRow>(
    `UPDATE media SET
       folder_id = CASE WHEN $3 THEN $4 ELSE folder_id END,
       name = CASE WHEN $5 THEN $6 ELSE name END,
       updated_at = now()
     WHERE app_id = $1 AND id = $2 AND status NOT IN ('deleting', 'deleted')
       AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM folders WHERE app_id = $1 AND id = $4))
     RETURNING media.*, ${refSummaryColumnsSql('media')}`,
    [appId, id, f.folderId !== undefined, f.folderId ?? null, f.name !== undefined, f.name ?? null],
  );
  return rows[0] ?? null;
}
