import * as mediaRepo from '../db/repos/media.js';
import * as scanRepo from '../db/repos/orphan-scan.js';
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

export interface OrphanObject {
  key: string;
  size: number;
  lastModified: string;
  appId: string | null;
  mediaId: string | null;
  why: scanRepo.OrphanWhy;
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
    const scanStart = await scanRepo.startOrphanScan(client);
    const scannedObjects = await loadListing(client, deps.store);
    await scanRepo.analyzeOrphanScan(client);

    const orphanTotals = await scanRepo.countOrphanObjects(client, scanStart, minAge);
    const orphanItems = await scanRepo.listOrphanObjects(client, scanStart, minAge, limit);
    const readyRows = await scanRepo.countJudgedReadyRows(client, scanStart);
    const lostCount = await scanRepo.countRowsWithoutObject(client, scanStart);
    const lostItems = await scanRepo.listRowsWithoutObject(client, scanStart, limit);

    const report: OrphanReport = {
      scannedAt: scanStart.toISOString(),
      scanned: { objects: scannedObjects, readyRows },
      objectsWithoutRow: {
        count: orphanTotals.n,
        bytes: Number(orphanTotals.bytes),
        items: orphanItems.map((r) => ({
          key: r.key,
          size: Number(r.size),
          lastModified: r.last_modified.toISOString(),
          appId: r.app_id,
          mediaId: r.media_id,
          why: r.why,
        })),
      },
      rowsWithoutObject: {
        count: lostCount,
        items: lostItems.map((r) => ({ id: r.id, appId: r.app_id, storageKey: r.storage_key, objectMissing: r.object_missing, missingVariants: r.missing_variants })),
      },
      fixed: null,
    };
    if (!opts.fix) return report;

    const fixed = { objectsDeleted: 0, objectsFailed: 0, rowsMarkedFailed: 0, rowsSkipped: 0 };
    // Orphan objects, a page at a time in key order. `unrecognised` keys are not ours to delete.
    let after = '';
    for (;;) {
      const keys = await scanRepo.pageDeletableOrphanKeys(client, scanStart, minAge, after, FIX_PAGE);
      if (keys.length === 0) break;
      after = keys[keys.length - 1]!;
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
      const page = await scanRepo.pageRowsWithoutStoredObject(client, scanStart, afterId, FIX_PAGE);
      if (page.length === 0) break;
      afterId = page[page.length - 1]!.id;
      for (const r of page) {
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
    await scanRepo.dropOrphanScan(client).catch(() => undefined);
    client.off('error', onError);
    client.release(broken);
  }
}

/** Streams `objects/` and `staging/` into `orphan_scan`; returns how many objects were listed. */
async function loadListing(client: PoolClient, store: BlobStore): Promise<number> {
  let n = 0;
  let chunk: scanRepo.ScannedObject[] = [];
  const flush = async (): Promise<void> => {
    if (chunk.length === 0) return;
    await scanRepo.insertScannedObjects(client, chunk);
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
