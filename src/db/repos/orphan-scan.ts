import type { Queryable } from '../pool.js';

/**
 * `orphan_scan`: a temporary table (one per session) holding a listing of the store, so comparing
 * it with `media` is a join in PostgreSQL whatever the number of objects. Every function here runs
 * on the one connection that created the table.
 */

export interface ScannedObject {
  key: string;
  size: number;
  lastModified: Date;
  appId: string | null;
  mediaId: string | null;
}

export type OrphanWhy =
  /** No media row with this id in this app (the upload died before its insert, or the app was deleted). */
  | 'no_row'
  /** The row is deleted: its bytes should have gone with it. */
  | 'row_deleted'
  /** The row failed: nothing of it is served. */
  | 'row_failed'
  /** The row is ready but does not reference this key (a staging object or a stale variant). */
  | 'unreferenced'
  /** Not a key this service builds: reported, never deleted. */
  | 'unrecognised';

export interface OrphanObjectRow {
  key: string;
  size: number;
  last_modified: Date;
  app_id: string | null;
  media_id: string | null;
  why: OrphanWhy;
}

/** A ready row and which of its objects the listing lacks. */
export interface RowWithoutObjectRow {
  id: string;
  app_id: string;
  storage_key: string;
  object_missing: boolean;
  missing_variants: string[];
}

/** Creates an empty `orphan_scan` on this session; returns the database clock when the scan starts. */
export async function startOrphanScan(session: Queryable): Promise<Date> {
  await session.query('DROP TABLE IF EXISTS orphan_scan');
  await session.query(
    'CREATE TEMP TABLE orphan_scan (key text PRIMARY KEY, size bigint NOT NULL, last_modified timestamptz NOT NULL, app_id text, media_id text)',
  );
  const { rows } = await session.query<{ now: Date }>('SELECT now() AS now');
  return rows[0]!.now;
}

export async function insertScannedObjects(session: Queryable, objects: readonly ScannedObject[]): Promise<void> {
  await session.query(
    `INSERT INTO orphan_scan (key, size, last_modified, app_id, media_id)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[]) ON CONFLICT (key) DO NOTHING`,
    [objects.map((o) => o.key), objects.map((o) => o.size), objects.map((o) => o.lastModified), objects.map((o) => o.appId), objects.map((o) => o.mediaId)],
  );
}

/** Statistics for the joins that follow: a temporary table is never analyzed by autovacuum. */
export async function analyzeOrphanScan(session: Queryable): Promise<void> {
  await session.query('ANALYZE orphan_scan');
}

export async function dropOrphanScan(session: Queryable): Promise<void> {
  await session.query('DROP TABLE IF EXISTS orphan_scan');
}

// Objects at least `minAge` old at scan start that no live row accounts for.
const ORPHAN_WHERE = `s.last_modified <= $1::timestamptz - make_interval(secs => $2)
      AND (s.media_id IS NULL OR m.id IS NULL OR m.status IN ('deleted', 'failed')
           OR (m.status = 'ready' AND s.key <> m.storage_key AND NOT m.variants @> jsonb_build_array(jsonb_build_object('key', s.key))))`;
const ORPHAN_FROM = 'orphan_scan s LEFT JOIN media m ON m.id = s.media_id AND m.app_id = s.app_id';
const WHY = `CASE WHEN s.media_id IS NULL THEN 'unrecognised' WHEN m.id IS NULL THEN 'no_row'
      WHEN m.status = 'deleted' THEN 'row_deleted' WHEN m.status = 'failed' THEN 'row_failed' ELSE 'unreferenced' END`;

export async function countOrphanObjects(session: Queryable, scanStart: Date, minAgeSeconds: number): Promise<{ n: number; bytes: number }> {
  const { rows } = await session.query<{ n: number; bytes: number }>(
    `SELECT count(*)::int AS n, COALESCE(sum(s.size), 0)::bigint AS bytes FROM ${ORPHAN_FROM} WHERE ${ORPHAN_WHERE}`,
    [scanStart, minAgeSeconds],
  );
  return rows[0]!;
}

/** The first `limit` orphan objects in key order, each with why it is one. */
export async function listOrphanObjects(session: Queryable, scanStart: Date, minAgeSeconds: number, limit: number): Promise<OrphanObjectRow[]> {
  const { rows } = await session.query<OrphanObjectRow>(
    `SELECT s.key, s.size, s.last_modified, s.app_id, s.media_id, ${WHY} AS why FROM ${ORPHAN_FROM} WHERE ${ORPHAN_WHERE} ORDER BY s.key LIMIT $3`,
    [scanStart, minAgeSeconds, limit],
  );
  return rows;
}

/**
 * The next page (after key `after`) of orphan objects whose keys this service built, hence may
 * delete: `unrecognised` keys are never listed here.
 */
export async function pageDeletableOrphanKeys(session: Queryable, scanStart: Date, minAgeSeconds: number, after: string, pageSize: number): Promise<string[]> {
  const { rows } = await session.query<{ key: string }>(
    `SELECT s.key FROM ${ORPHAN_FROM} WHERE ${ORPHAN_WHERE} AND s.media_id IS NOT NULL AND s.key > $3 ORDER BY s.key LIMIT $4`,
    [scanStart, minAgeSeconds, after, pageSize],
  );
  return rows.map((r) => r.key);
}

// Rows ready before the scan started (a later one may have objects the listing predates).
const JUDGED_READY = `m.status = 'ready' AND m.ready_at < $1::timestamptz`;
const ROWS_WITH_MISSING = `SELECT m.id, m.app_id, m.storage_key,
        NOT EXISTS (SELECT 1 FROM orphan_scan s WHERE s.key = m.storage_key) AS object_missing,
        ARRAY(SELECT v->>'key' FROM jsonb_array_elements(m.variants) v WHERE NOT EXISTS (SELECT 1 FROM orphan_scan s WHERE s.key = v->>'key')) AS missing_variants
      FROM media m WHERE ${JUDGED_READY}`;
const ANY_MISSING = 'WHERE x.object_missing OR cardinality(x.missing_variants) > 0';

/** How many rows the scan judges. */
export async function countJudgedReadyRows(session: Queryable, scanStart: Date): Promise<number> {
  const { rows } = await session.query<{ n: number }>(`SELECT count(*)::int AS n FROM media m WHERE ${JUDGED_READY}`, [scanStart]);
  return rows[0]!.n;
}

/** Judged rows missing their stored object or a variant. */
export async function countRowsWithoutObject(session: Queryable, scanStart: Date): Promise<number> {
  const { rows } = await session.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${ROWS_WITH_MISSING}) x ${ANY_MISSING}`, [scanStart]);
  return rows[0]!.n;
}

export async function listRowsWithoutObject(session: Queryable, scanStart: Date, limit: number): Promise<RowWithoutObjectRow[]> {
  const { rows } = await session.query<RowWithoutObjectRow>(`SELECT * FROM (${ROWS_WITH_MISSING}) x ${ANY_MISSING} ORDER BY x.id LIMIT $2`, [scanStart, limit]);
  return rows;
}

/** The next page (after id `afterId`) of judged rows whose stored object itself is missing. */
export async function pageRowsWithoutStoredObject(session: Queryable, scanStart: Date, afterId: string, pageSize: number): Promise<RowWithoutObjectRow[]> {
  const { rows } = await session.query<RowWithoutObjectRow>(
    `SELECT * FROM (${ROWS_WITH_MISSING}) x WHERE x.object_missing AND x.id > $2 ORDER BY x.id LIMIT $3`,
    [scanStart, afterId, pageSize],
  );
  return rows;
}
