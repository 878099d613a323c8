/**
 * The sweep's edges and the operator commands. Real: PostgreSQL (this file's own database), Redis
 * (webhook enqueue), the fs store over this file's own data dir, and `mediaflow sweep` /
 * `mediaflow orphans` run as child processes. Nothing is mocked; storage faults are real ones (a
 * directory where an object should be makes unlink fail).
 */
import { spawn } from 'node:child_process';
import { mkdir, utimes, writeFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fsStoreRoot } from '../../src/storage/create-store.js';
import type { Pool } from '../../src/db/pool.js';
import { stagingKey } from '../../src/domain/ids.js';
import { reconcileOrphans } from '../../src/retention/orphans.js';
import { sweep } from '../../src/retention/sweep.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { isolatedEnv } from '../helpers/env.js';
import { insertApp, seedReadyMedia, sweepHarness } from '../helpers/retention-seed.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAX_RETENTION = 90 * 24 * 3600;

let iso: Awaited<ReturnType<typeof isolatedEnv>>;
let pool: Pool;
let store: BlobStore;
let deps: Parameters<typeof sweep>[0];

let harness: Awaited<ReturnType<typeof sweepHarness>>;

beforeAll(async () => {
  harness = await sweepHarness();
  ({ iso, pool, store, deps } = harness);
});

afterAll(async () => {
  await harness?.close();
});

// Each test starts from an empty retention picture, so counts are exact.
beforeEach(async () => {
  await sweep(deps, { batchSize: 1000, maxRetentionSeconds: MAX_RETENTION });
  await pool.query(`UPDATE media SET status = 'deleted' WHERE status <> 'deleted'`);
});

const fileOf = (key: string) => path.join(fsStoreRoot(iso.config.DATA_DIR), ...key.split('/'));

/** Backdates an fs object, as if it had been written `seconds` ago. */
async function age(key: string, seconds: number): Promise<void> {
  const t = new Date(Date.now() - seconds * 1000);
  await utimes(fileOf(key), t, t);
}

async function putRaw(key: string, bytes = 32): Promise<void> {
  await store.put(key, Readable.from([Buffer.alloc(bytes, 1)]));
}

function mediaflow(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [path.join(ROOT, 'bin/mediaflow.js'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...iso.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    proc.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function statusOf(id: string): Promise<string> {
  const { rows } = await pool.query<{ status: string }>('SELECT status FROM media WHERE id = $1', [id]);
  return rows[0]!.status;
}

async function auditCount(): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events`);
  return rows[0]!.n;
}

describe('mediaflow sweep --dry-run --json', () => {
  it('prints what would go, with reasons and bytes, and deletes nothing', async () => {
    const appId = await insertApp(pool);
    const expired = [await seedReadyMedia(pool, store, { appId, ttlSeconds: -10 }), await seedReadyMedia(pool, store, { appId, ttlSeconds: -5, variants: ['thumb'] })];
    const live = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600 });
    const failed = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600 });
    await pool.query(`UPDATE media SET status = 'failed', updated_at = now() - interval '2 hours' WHERE id = $1`, [failed.id]);
    await putRaw('staging/app_gone/med_gone.bin');
    await age('staging/app_gone/med_gone.bin', 7200);
    const auditsBefore = await auditCount();

    const { code, stdout } = await mediaflow(['sweep', '--dry-run', '--json']);
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(out.dryRun).toBe(true);
    expect(out.deleted).toBe(3);
    expect(out.byReason).toEqual({ expired: 2, retention: 1 });
    expect(out.bytesFreed).toBe(expired[0]!.stored_bytes! + expired[1]!.stored_bytes! + failed.stored_bytes!);
    expect(out.items.map((i: any) => i.id).sort()).toEqual([...expired.map((m) => m.id), failed.id].sort());
    expect(out.items.find((i: any) => i.id === failed.id)).toMatchObject({ reason: 'retention', status: 'failed' });
    expect(out.staging).toEqual({ deleted: 1, bytes: 32, failed: 0 });
    expect(out.backlog).toBe(3);

    for (const m of [...expired, live]) {
      expect(await statusOf(m.id)).toBe('ready');
      expect(await store.exists(m.storage_key)).toBe(true);
    }
    expect(await store.exists(expired[1]!.variants[0]!.key)).toBe(true);
    expect(await store.exists('staging/app_gone/med_gone.bin')).toBe(true);
    expect(await auditCount()).toBe(auditsBefore);

    // The real command then deletes exactly that.
    const real = await mediaflow(['sweep', '--json']);
    expect(real.code).toBe(0);
    const done = JSON.parse(real.stdout);
    expect(done.deleted).toBe(3);
    expect(done.staging.deleted).toBe(1);
    expect(done.backlog).toBe(0);
    expect(await statusOf(live.id)).toBe('ready');
    for (const m of expired) expect(await store.exists(m.storage_key)).toBe(false);
  });
});

describe('staging objects', () => {
  it('deletes staging older than an hour whose row is missing or settled, keeps the rest', async () => {
    const appId = await insertApp(pool);
    const ready = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600 });
    const queued = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600 });
    await pool.query(`UPDATE media SET status = 'queued' WHERE id = $1`, [queued.id]);
    const keys = {
      noRowOld: stagingKey(appId, 'med_died_before_insert'),
      noRowFresh: stagingKey(appId, 'med_uploading_now'),
      readyOld: stagingKey(appId, ready.id),
      queuedOld: stagingKey(appId, queued.id),
      otherAppOld: stagingKey('app_other', ready.id),
    };
    for (const k of Object.values(keys)) await putRaw(k);
    for (const k of [keys.noRowOld, keys.readyOld, keys.queuedOld, keys.otherAppOld]) await age(k, 3700);

    const res = await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION });
    expect(res.deleted).toBe(0);
    expect(res.staging).toEqual({ deleted: 3, bytes: 96, failed: 0 });
    expect(await store.exists(keys.noRowOld)).toBe(false);
    expect(await store.exists(keys.readyOld)).toBe(false);
    expect(await store.exists(keys.otherAppOld)).toBe(false);
    expect(await store.exists(keys.noRowFresh)).toBe(true);
    expect(await store.exists(keys.queuedOld)).toBe(true);
    expect(await store.exists(ready.storage_key)).toBe(true);
  });
});

describe('failures', () => {
  it('a media whose object cannot be deleted stays deleting (404) and is finished by a later sweep; the rest of its batch is not held back', async () => {
    const appId = await insertApp(pool);
    const stuck = await seedReadyMedia(pool, store, { appId, ttlSeconds: -10 });
    const fine = [await seedReadyMedia(pool, store, { appId, ttlSeconds: -10 }), await seedReadyMedia(pool, store, { appId, ttlSeconds: -10 })];
    // A non-empty directory where the object file was: unlink fails with EISDIR, a real storage fault.
    await rm(fileOf(stuck.storage_key));
    await mkdir(fileOf(stuck.storage_key));
    await writeFile(path.join(fileOf(stuck.storage_key), 'x'), 'x');

    const first = await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION });
    expect(first.deleted).toBe(2);
    expect(first.failed).toBe(1);
    expect(first.backlog).toBe(1);
    expect(await statusOf(stuck.id)).toBe('deleting');
    for (const m of fine) expect(await statusOf(m.id)).toBe('deleted');

    // The next run retries it at once (its lease is gone), fails again, and does not loop.
    const again = await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION });
    expect(again).toMatchObject({ deleted: 0, failed: 1, batches: 1 });

    await rm(fileOf(stuck.storage_key), { recursive: true });
    const last = await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION });
    expect(last).toMatchObject({ deleted: 1, failed: 0, backlog: 0, byReason: { expired: 1 } });
    const { rows } = await pool.query('SELECT reason FROM audit_events WHERE media_id = $1', [stuck.id]);
    expect(rows).toEqual([{ reason: 'expired' }]);
  });

  it('a row with a malformed variant key fails alone; the batch around it is deleted', async () => {
    const appId = await insertApp(pool);
    const bad = await seedReadyMedia(pool, store, { appId, ttlSeconds: -10 });
    await pool.query(`UPDATE media SET variants = '[{"name":"x","key":"../../etc/passwd","mimeType":"image/jpeg","bytes":1}]' WHERE id = $1`, [bad.id]);
    const good = await seedReadyMedia(pool, store, { appId, ttlSeconds: -10 });
    const res = await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION });
    expect(res).toMatchObject({ deleted: 1, failed: 1 });
    expect(await statusOf(good.id)).toBe('deleted');
    expect(await statusOf(bad.id)).toBe('deleting');
    // Its own object is untouched: nothing of a row the store refused is half-deleted.
    expect(await store.exists(bad.storage_key)).toBe(true);
  });

  it('rows left deleting by a client DELETE that gave up are taken over after the grace period', async () => {
    const appId = await insertApp(pool);
    const m = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600 });
    await pool.query(`UPDATE media SET status = 'deleting', delete_reason = 'deleted', updated_at = now() WHERE id = $1`, [m.id]);
    // Within the grace period the request that marked it may still be deleting it.
    expect((await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION })).deleted).toBe(0);
    await pool.query(`UPDATE media SET updated_at = now() - interval '1 minute' WHERE id = $1`, [m.id]);
    const res = await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION });
    expect(res).toMatchObject({ deleted: 1, byReason: { deleted: 1 } });
    expect(await store.exists(m.storage_key)).toBe(false);
  });
});

describe('reasons and webhooks', () => {
  it('deletes past the retention cap, failed and abandoned uploads, each with its reason; media.deleted webhooks are recorded in the same transaction', async () => {
    const appId = await insertApp(pool, { webhookUrl: 'https://hooks.example.com/mf' });
    const capped = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600 });
    await pool.query(`UPDATE media SET created_at = now() - interval '100 days' WHERE id = $1`, [capped.id]);
    // Abandoned: stuck for two hours and naming no source (a row with its staging or URL is accepted work, kept).
    const abandoned = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600, staging: true });
    await pool.query(`UPDATE media SET status = 'processing', staging_key = NULL, updated_at = now() - interval '2 hours' WHERE id = $1`, [abandoned.id]);
    const recentFailure = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600 });
    await pool.query(`UPDATE media SET status = 'failed', updated_at = now() - interval '10 minutes' WHERE id = $1`, [recentFailure.id]);

    const res = await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION });
    expect(res.deleted).toBe(2);
    expect(res.byReason).toEqual({ retention: 2 });
    expect(await store.exists(stagingKey(appId, abandoned.id))).toBe(false);
    expect(await statusOf(recentFailure.id)).toBe('failed');

    const { rows } = await pool.query<{ id: string; media_id: string; body: any }>(
      `SELECT id, media_id, body FROM webhook_deliveries WHERE app_id = $1 AND event = 'media.deleted' ORDER BY media_id`,
      [appId],
    );
    expect(rows.map((r) => r.media_id).sort()).toEqual([capped.id, abandoned.id].sort());
    for (const r of rows) {
      expect(r.body).toMatchObject({ event: 'media.deleted', id: r.id, payload: { media_id: r.media_id, reason: 'retention' } });
      const job = await deps.queues.get('webhook').getJob(r.id);
      expect(job?.data).toEqual({ v: 1, deliveryId: r.id });
    }
  });
});

describe('orphan reconciliation', () => {
  it('reports objects with no row and ready rows with no object; mediaflow orphans --fix deletes the former and fails the latter', async () => {
    const appId = await insertApp(pool);
    const healthy = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600, variants: ['thumb'] });
    const lost = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600 });
    await store.delete([lost.storage_key]);
    const lostVariant = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600, variants: ['thumb'] });
    await store.delete([lostVariant.variants[0]!.key]);
    const deleted = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600 });
    await pool.query(`UPDATE media SET status = 'deleted' WHERE id = $1`, [deleted.id]);
    const inFlight = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600 });
    await pool.query(`UPDATE media SET status = 'processing' WHERE id = $1`, [inFlight.id]);

    const noRow = `objects/${appId}/med_neverinserted.bin`;
    const fresh = `objects/${appId}/med_justwritten.bin`;
    const unrecognised = 'objects/not-ours.txt';
    const leftoverStaging = stagingKey(appId, healthy.id);
    for (const k of [noRow, fresh, unrecognised, leftoverStaging]) await putRaw(k, 10);
    for (const k of [noRow, unrecognised, leftoverStaging, deleted.storage_key, healthy.storage_key, inFlight.storage_key]) await age(k, 7200);

    const report = await reconcileOrphans(deps);
    expect(report.fixed).toBeNull();
    expect(report.objectsWithoutRow.items.map((i) => [i.key, i.why])).toEqual(
      [
        [noRow, 'no_row'],
        [unrecognised, 'unrecognised'],
        [leftoverStaging, 'unreferenced'],
        [deleted.storage_key, 'row_deleted'],
      ].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
    );
    expect(report.objectsWithoutRow.count).toBe(4);
    expect(report.rowsWithoutObject.items).toEqual([
      { id: lost.id, appId, storageKey: lost.storage_key, objectMissing: true, missingVariants: [] },
      { id: lostVariant.id, appId, storageKey: lostVariant.storage_key, objectMissing: false, missingVariants: [lostVariant.variants[0]!.key] },
    ].sort((a, b) => (a.id < b.id ? -1 : 1)));

    // The CLI reports the same without --fix, and changes nothing.
    const dry = await mediaflow(['orphans', '--json']);
    expect(dry.code).toBe(0);
    const dryOut = JSON.parse(dry.stdout);
    expect(dryOut.objectsWithoutRow.count).toBe(4);
    expect(dryOut.rowsWithoutObject.count).toBe(2);
    expect(await store.exists(noRow)).toBe(true);

    const fix = await mediaflow(['orphans', '--fix', '--json']);
    expect(fix.code).toBe(0);
    expect(JSON.parse(fix.stdout).fixed).toEqual({ objectsDeleted: 3, objectsFailed: 0, rowsMarkedFailed: 1, rowsSkipped: 0 });
    for (const k of [noRow, leftoverStaging, deleted.storage_key]) expect(await store.exists(k)).toBe(false);
    // Not ours to judge, or too young to judge: kept.
    for (const k of [unrecognised, fresh, healthy.storage_key, healthy.variants[0]!.key, inFlight.storage_key]) expect(await store.exists(k)).toBe(true);
    const { rows } = await pool.query('SELECT status, error_code FROM media WHERE id = $1', [lost.id]);
    expect(rows[0]).toEqual({ status: 'failed', error_code: 'STORAGE_UNAVAILABLE' });
    expect(await statusOf(lostVariant.id)).toBe('ready');

    const after = await reconcileOrphans(deps);
    expect(after.objectsWithoutRow.items.map((i) => i.key)).toEqual([unrecognised]);
    expect(after.rowsWithoutObject.items.map((i) => i.id)).toEqual([lostVariant.id]);
  });
});
