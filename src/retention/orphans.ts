import * as mediaRepo from '../db/repos/media.js';
import type { Pool, PoolClient } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { Queues } from '../queue/queues.js';
import type { BlobStore } from '../storage/blob-store.js';
import { emitMediaEvent } from '../webhooks/emit.js';
import { STAGING_KEY } from './staging.js';

export interface OrphanDeps {
  pool: Pool;
  store: BlobStore;
  queues: Queues;
  log: Logger;
}

export interface OrphanOptions {
  /** Delete orphan objects and mark `ready` rows whose object is gone `failed`. Off: report only. */
  fix?: boolean;
  /**
   * Objects younger than this are never called orphans: an upload stages its object before its
   * row exists, and a worker writes objects before the row says `ready`. Default one hour.
   * Objects of a `queued`/`processing` row are never orphans, whatever their age. Those of a run
   * that was taken over are, once the row settled: that run can no longer commit (its claim token
   * is stale), so nothing will ever point at them.
   */
  minAgeSeconds?: number;
  /** Items listed per section of the report (counts are always complete). Default 1000. */
  limit?: number;
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

export interface OrphanObject {
  key: string;
  size: number;
  lastModified: string;
  appId: string | null;
  mediaId: string | null;
  why: OrphanWhy;
}

export interface RowWithoutObject {
  id: string;
  appId: string;
  storageKey: string;
  /** The stored object itself is gone (not only a variant): the media cannot be served. */
  objectMissing: boolean;
  missingVariants: string[];
}

export interface OrphanReport {
  scannedAt: string;
  scanned: { objects: number; readyRows: number };
  objectsWithoutRow: { count: number; bytes: number; items: OrphanObject[] };
  rowsWithoutObject: { count: number; items: RowWithoutObject[] };
  fixed: null | { objectsDeleted: number; objectsFailed: number; rowsMarkedFailed: number; rowsSkipped: number };
}

/**
 * `objects/<appId>/<mediaId>[.<runId>][.<variant>].bin`, as `runStorageKey`/`runVariantKey` build
 * them (and, without the run, the keys of media stored before runs had their own keys).
 */
const OBJECT_KEY = /^objects\/([A-Za-z0-9_-]+)\/([A-Za-z0-9_-]+)(?:\.[A-Za-z0-9_-]+){0,2}\.bin$/;
const INSERT_CHUNK = 1000;
const FIX_PAGE = 1000;

/**
 * Reconciles the store with the database: objects no row accounts for, and `ready` rows whose
 * objects are gone. The listing goes into a temporary table so the comparison is a join in
 * PostgreSQL, whatever the number of objects: memory stays flat and no lock on `media` is taken.
 * Rows made ready after the scan started are not judged (their object may postdate the listing).
 */
export async function reconcileOrphans(deps: OrphanDeps, opts: OrphanOptions = {}): Promise<OrphanReport> {
  const minAge = opts.minAgeSeconds ?? 3600;
  const limit = opts.limit ?? 1000;
  const client = await deps.pool.connect();
  let broken: Error | undefined;
  // Held through a listing that may take minutes: a dropped connection must fail the next query,
  // not crash the process with an unheard 'error' event.
  const onError = (err: Error): void => {
    broken = err;
  };
  client.on('error', onError);
  try {
    await client.query('DROP TABLE IF EXISTS orphan_scan');
    await client.query(
      'CREATE TEMP TABLE orphan_scan (key text PRIMARY KEY, size bigint NOT NULL, last_modified timestamptz NOT NULL, app_id text, media_id text)',
    );
    const { rows: clock } = await client.query<{ now: Date }>('SELECT now() AS now');
    const scanStart = clock[0]!.now;
    const scannedObjects = await loadListing(client, deps.store);
    await client.query('ANALYZE orphan_scan');

    const orphanWhere = `s.last_modified <= $1::timestamptz - make_interval(secs => $2)
      AND (s.media_id IS NULL OR m.id IS NULL OR m.status IN ('deleted', 'failed')
           OR (m.status = 'ready' AND s.key <> m.storage_key AND NOT m.variants @> jsonb_build_array(jsonb_build_object('key', s.key))))`;
    const orphanFrom = 'orphan_scan s LEFT JOIN media m ON m.id = s.media_id AND m.app_id = s.app_id';
    const whySql = `CASE WHEN s.media_id IS NULL THEN 'unrecognised' WHEN m.id IS NULL THEN 'no_row'
      WHEN m.status = 'deleted' THEN 'row_deleted' WHEN m.status = 'failed' THEN 'row_failed' ELSE 'unreferenced' END`;
    const orphanTotals = await client.query<{ n: number; bytes: number }>(
      `SELECT count(*)::int AS n, COALESCE(sum(s.size), 0)::bigint AS bytes FROM ${orphanFrom} WHERE ${orphanWhere}`,
      [scanStart, minAge],
    );
    const orphanItems = await client.query<{ key: string; size: number; last_modified: Date; app_id: string | null; media_id: string | null; why: OrphanWhy }>(
      `SELECT s.key, s.size, s.last_modified, s.app_id, s.media_id, ${whySql} AS why FROM ${orphanFrom} WHERE ${orphanWhere} ORDER BY s.key LIMIT $3`,
      [scanStart, minAge, limit],
    );

    const lostWhere = `m.status = 'ready' AND m.ready_at < $1::timestamptz`;
    const lostSelect = `SELECT m.id, m.app_id, m.storage_key,
        NOT EXISTS (SELECT 1 FROM orphan_scan s WHERE s.key = m.storage_key) AS object_missing,
        ARRAY(SELECT v->>'key' FROM jsonb_array_elements(m.variants) v WHERE NOT EXISTS (SELECT 1 FROM orphan_scan s WHERE s.key = v->>'key')) AS missing_variants
      FROM media m WHERE ${lostWhere}`;
    type LostRow = { id: string; app_id: string; storage_key: string; object_missing: boolean; missing_variants: string[] };
    const lostFilter = 'WHERE x.object_missing OR cardinality(x.missing_variants) > 0';
    const readyCount = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM media m WHERE ${lostWhere}`, [scanStart]);
    const lostCount = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${lostSelect}) x ${lostFilter}`, [scanStart]);
    const lostItems = await client.query<LostRow>(`SELECT * FROM (${lostSelect}) x ${lostFilter} ORDER BY x.id LIMIT $2`, [scanStart, limit]);

    const report: OrphanReport = {
      scannedAt: scanStart.toISOString(),
      scanned: { objects: scannedObjects, readyRows: readyCount.rows[0]!.n },
      objectsWithoutRow: {
        count: orphanTotals.rows[0]!.n,
        bytes: Number(orphanTotals.rows[0]!.bytes),
        items: orphanItems.rows.map((r) => ({
          key: r.key,
          size: Number(r.size),
          lastModified: r.last_modified.toISOString(),
          appId: r.app_id,
          mediaId: r.media_id,
          why: r.why,
        })),
      },
      rowsWithoutObject: {
        count: lostCount.rows[0]!.n,
        items: lostItems.rows.map((r) => ({ id: r.id, appId: r.app_id, storageKey: r.storage_key, objectMissing: r.object_missing, missingVariants: r.missing_variants })),
      },
      fixed: null,
    };
    if (!opts.fix) return report;

    const fixed = { objectsDeleted: 0, objectsFailed: 0, rowsMarkedFailed: 0, rowsSkipped: 0 };
    // Orphan objects, a page at a time in key order. `unrecognised` keys are not ours to delete.
    let after = '';
    for (;;) {
      const page = await client.query<{ key: string }>(
        `SELECT s.key FROM ${orphanFrom} WHERE ${orphanWhere} AND s.media_id IS NOT NULL AND s.key > $3 ORDER BY s.key LIMIT ${FIX_PAGE}`,
        [scanStart, minAge, after],
      );
      if (page.rows.length === 0) break;
      after = page.rows[page.rows.length - 1]!.key;
      const keys = page.rows.map((r) => r.key);
      try {
        await deps.store.delete(keys);
        fixed.objectsDeleted += keys.length;
      } catch (err) {
        const failedKeys = (err as { failedKeys?: readonly string[] }).failedKeys;
        const failed = failedKeys ? failedKeys.length : keys.length;
        fixed.objectsFailed += failed;
        fixed.objectsDeleted += keys.length - failed;
        deps.log.warn({ err, count: failed }, 'orphans: could not delete some orphan objects');
      }
    }
    // Ready rows whose stored object is gone. Variant-only losses are reported, not acted on: the
    // media itself is still served.
    let afterId = '';
    for (;;) {
      const page = await client.query<LostRow>(
        `SELECT * FROM (${lostSelect}) x WHERE x.object_missing AND x.id > $2 ORDER BY x.id LIMIT ${FIX_PAGE}`,
        [scanStart, afterId],
      );
      if (page.rows.length === 0) break;
      afterId = page.rows[page.rows.length - 1]!.id;
      for (const r of page.rows) {
        // The listing is minutes old by now: ask the store again before judging the row.
        if (await deps.store.exists(r.storage_key)) {
          fixed.rowsSkipped++;
          continue;
        }
        const failed = await mediaRepo.markObjectLost(deps.pool, r.id, 'the stored object is missing from storage; upload the media again');
        if (!failed) {
          fixed.rowsSkipped++;
          continue;
        }
        fixed.rowsMarkedFailed++;
        deps.log.error({ mediaId: r.id, key: r.storage_key }, 'orphans: ready media had no stored object; marked failed');
        await emitMediaEvent(deps, failed, 'media.failed').catch((err) => deps.log.error({ err, mediaId: r.id }, 'could not emit media.failed'));
      }
    }
    report.fixed = fixed;
    return report;
  } catch (err) {
    broken = err as Error;
    throw err;
  } finally {
    await client.query('DROP TABLE IF EXISTS orphan_scan').catch(() => undefined);
    client.off('error', onError);
    client.release(broken);
  }
}

/** Streams `objects/` and `staging/` into `orphan_scan`; returns how many objects were listed. */
async function loadListing(client: PoolClient, store: BlobStore): Promise<number> {
  let n = 0;
  let chunk: Array<{ key: string; size: number; lastModified: Date; appId: string | null; mediaId: string | null }> = [];
  const flush = async (): Promise<void> => {
    if (chunk.length === 0) return;
    await client.query(
      `INSERT INTO orphan_scan (key, size, last_modified, app_id, media_id)
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[]) ON CONFLICT (key) DO NOTHING`,
      [chunk.map((o) => o.key), chunk.map((o) => o.size), chunk.map((o) => o.lastModified), chunk.map((o) => o.appId), chunk.map((o) => o.mediaId)],
    );
    chunk = [];
  };
  for (const prefix of ['objects/', 'staging/']) {
    for await (const obj of store.list(prefix)) {
      const m = (prefix === 'objects/' ? OBJECT_KEY : STAGING_KEY).exec(obj.key);
      chunk.push({ key: obj.key, size: obj.size, lastModified: obj.lastModified, appId: m?.[1] ?? null, mediaId: m?.[2] ?? null });
      n++;
      if (chunk.length >= INSERT_CHUNK) await flush();
    }
  }
  await flush();
  return n;
}
