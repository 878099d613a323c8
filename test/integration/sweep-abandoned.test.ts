/**
 * The abandoned-upload rule with every worker down, against real PostgreSQL, Redis and the fs store:
 * accepted media (its staging object, a URL, a producer's job) waits however long it must; only a
 * row that names no source at all is swept as abandoned. The sweeper role runs the reconciler, so
 * media whose job the queue lost is handed back to the queue, not left to rot. No worker runs here.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import * as mediaRepo from '../../src/db/repos/media.js';
import { newMediaId, newMediaPath, stagingKey, storageKey } from '../../src/domain/ids.js';
import type { MediaSource } from '../../src/domain/kinds.js';
import { sweep } from '../../src/retention/sweep.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { insertApp, seedReadyMedia, sweepHarness } from '../helpers/retention-seed.js';
import { startService, waitFor, type TestService } from '../helpers/service.js';

/** A row as the API or the worker writes it, then left alone for two hours (workers down). */
async function seedWaiting(
  pool: Pool,
  store: BlobStore,
  o: { appId: string; source: MediaSource; staging?: boolean; sourceUrl?: string; status?: 'queued' | 'processing' },
): Promise<mediaRepo.MediaRow> {
  const id = newMediaId();
  await mediaRepo.insertMedia(pool, {
    id,
    appId: o.appId,
    deviceId: null,
    folderId: null,
    kind: 'image',
    source: o.source,
    sourceUrl: o.sourceUrl ?? null,
    declaredMime: null,
    originalName: null,
    name: null,
    description: null,
    inputBytes: null,
    mediaPath: newMediaPath(o.appId),
    storageKey: storageKey(o.appId, id),
    stagingKey: o.staging ? stagingKey(o.appId, id) : null,
    ttlSeconds: 30 * 86400,
  });
  if (o.staging) await store.put(stagingKey(o.appId, id), Readable.from([randomBytes(64)]));
  const { rows } = await pool.query<mediaRepo.MediaRow>(
    `UPDATE media SET status = $2, created_at = now() - interval '2 hours', updated_at = now() - interval '2 hours' WHERE id = $1 RETURNING *`,
    [id, o.status ?? 'queued'],
  );
  return rows[0]!;
}

const statusOf = async (pool: Pool, id: string) => (await pool.query<{ status: string }>('SELECT status FROM media WHERE id = $1', [id])).rows[0]?.status;

describe('a sweep with no worker running', () => {
  let h: Awaited<ReturnType<typeof sweepHarness>>;
  beforeAll(async () => {
    h = await sweepHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('keeps accepted media queued for two hours (staging, URL, producer job) and sweeps only a row that names no source', async () => {
    const { pool, store } = h;
    const appId = await insertApp(pool);
    const uploaded = await seedWaiting(pool, store, { appId, source: 'upload', staging: true });
    const slotPut = await seedWaiting(pool, store, { appId, source: 'slot', staging: true });
    const midRun = await seedWaiting(pool, store, { appId, source: 'base64', staging: true, status: 'processing' });
    const byUrl = await seedWaiting(pool, store, { appId, source: 'url', sourceUrl: 'https://cdn.example.com/a.jpg' });
    const produced = await seedWaiting(pool, store, { appId, source: 'queue' });
    const nothing = await seedWaiting(pool, store, { appId, source: 'upload' });

    const res = await sweep(h.deps, { batchSize: 100, maxRetentionSeconds: 90 * 86400 });
    expect(res.items.map((i) => i.id)).toEqual([nothing.id]);
    expect(await statusOf(pool, nothing.id)).toBe('deleted');
    for (const m of [uploaded, slotPut, byUrl, produced]) expect(await statusOf(pool, m.id)).toBe('queued');
    expect(await statusOf(pool, midRun.id)).toBe('processing');
    for (const m of [uploaded, slotPut, midRun]) expect(await store.exists(stagingKey(appId, m.id))).toBe(true);
    // Expiry still applies to accepted media: retention is counted from the upload, not from processing.
    await pool.query(`UPDATE media SET expires_at = now() - interval '1 second' WHERE id = $1`, [uploaded.id]);
    expect((await sweep(h.deps, { batchSize: 100, maxRetentionSeconds: 90 * 86400 })).byReason).toEqual({ expired: 1 });
    expect(await store.exists(stagingKey(appId, uploaded.id))).toBe(false);
  });
});

describe('the sweeper role', () => {
  let svc: TestService;
  beforeAll(async () => {
    svc = await startService({ role: 'sweeper', env: { SWEEP_CRON: '* * * * * *' } });
  });
  afterAll(async () => {
    await svc?.stop();
  });

  it('re-enqueues accepted media whose job the queue lost, and keeps it and its staging object while it waits', async () => {
    const { pool, store, queues } = svc.running.rt;
    const appId = await insertApp(pool);
    const lost = await seedWaiting(pool, store, { appId, source: 'upload', staging: true });
    const expired = await seedReadyMedia(pool, store, { appId, ttlSeconds: -10 });
    const ingest = queues.get('ingest');
    expect(await ingest.getJobState(lost.id)).toBe('unknown');

    await waitFor(async () => (await ingest.getJobState(lost.id)) === 'waiting', 20_000);
    const job = await ingest.getJob(lost.id);
    expect(job?.data).toMatchObject({ v: 1, mediaId: lost.id, appId, source: { type: 'storage', key: stagingKey(appId, lost.id) } });
    // The scheduled sweeps (every second) ran meanwhile: expired media went, the accepted one stays.
    await waitFor(async () => (await statusOf(pool, expired.id)) === 'deleted', 20_000);
    expect(await statusOf(pool, lost.id)).toBe('queued');
    expect(await store.exists(stagingKey(appId, lost.id))).toBe(true);
  });
});
