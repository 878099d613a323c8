/**
 * Seeding for the retention tests and the sweep benchmark: apps, media rows and their objects,
 * written straight into a real database and a real store.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Pool } from '../../src/db/pool.js';
import * as mediaRepo from '../../src/db/repos/media.js';
import { newAppId, newMediaId, newMediaPath, stagingKey, storageKey, variantKey } from '../../src/domain/ids.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { fsStoreRoot } from '../../src/storage/create-store.js';

export async function insertApp(pool: Pool, opts: { webhookUrl?: string } = {}): Promise<string> {
  const id = newAppId();
  await pool.query('INSERT INTO apps (id, name, webhook_url, webhook_secret) VALUES ($1, $2, $3, $4)', [id, 'seed', opts.webhookUrl ?? null, 'whsec_seed']);
  return id;
}

export async function insertDevice(pool: Pool, appId: string, id: string, status: 'active' | 'destroyed' = 'active'): Promise<void> {
  await pool.query(
    `INSERT INTO devices (app_id, id, status, destroyed_at) VALUES ($1, $2, $3, CASE WHEN $3 = 'destroyed' THEN now() END)`,
    [appId, id, status],
  );
}

/**
 * One media row through the repository (as the API writes it), moved to `ready` with a stored object
 * (and optional variants) put through the store. `ttlSeconds` may be negative: already expired.
 */
export async function seedReadyMedia(
  pool: Pool,
  store: BlobStore,
  o: { appId: string; ttlSeconds: number; deviceId?: string | null; variants?: string[]; staging?: boolean; bytes?: number },
): Promise<mediaRepo.MediaRow> {
  const id = newMediaId();
  const row = await mediaRepo.insertMedia(pool, {
    id,
    appId: o.appId,
    deviceId: o.deviceId ?? null,
    folderId: null,
    kind: 'image',
    source: 'upload',
    declaredMime: 'image/jpeg',
    originalName: 'seed.jpg',
    name: null,
    description: null,
    inputBytes: o.bytes ?? 100,
    mediaPath: newMediaPath(o.deviceId ?? o.appId),
    storageKey: storageKey(o.appId, id),
    stagingKey: o.staging ? stagingKey(o.appId, id) : null,
    ttlSeconds: o.ttlSeconds,
  });
  const body = randomBytes(o.bytes ?? 100);
  await store.put(row.storage_key, Readable.from([body]));
  const variants = [];
  for (const v of o.variants ?? []) {
    const key = variantKey(o.appId, id, v);
    await store.put(key, Readable.from([body.subarray(0, 10)]));
    variants.push({ name: v, key, mimeType: 'image/jpeg', bytes: 10 });
  }
  if (o.staging) await store.put(stagingKey(o.appId, id), Readable.from([body]));
  const { rows } = await pool.query<mediaRepo.MediaRow>(
    `UPDATE media SET status = 'ready', mime_type = 'image/jpeg', size_bytes = $2, stored_bytes = $2, checksum = 'seed', variants = $3,
       ready_at = now(), updated_at = now() WHERE id = $1 RETURNING *`,
    [id, body.length, JSON.stringify(variants)],
  );
  return rows[0]!;
}

/**
 * `count` ready media rows in one statement (generate_series), ids `<idPrefix><n>`; `expiresIn`
 * seconds from now by the database clock (negative: already due).
 */
export async function bulkInsertMedia(
  pool: Pool,
  o: { appId: string; count: number; expiresIn: number; idPrefix?: string; storedBytes?: number; status?: string },
): Promise<string[]> {
  const prefix = o.idPrefix ?? `med_b${randomBytes(3).toString('hex')}_`;
  await pool.query(
    `INSERT INTO media (id, app_id, kind, status, source, media_path, storage_key, stored_bytes, size_bytes, mime_type, expires_at, ready_at, created_at, updated_at)
     SELECT $2 || n, $1, 'image', $6, 'upload',
            'media/' || $1 || '/' || gen_random_uuid() || '-' || upper(substr(md5(n::text || random()::text), 1, 16)) || '.bin',
            'objects/' || $1 || '/' || $2 || n || '.bin', $5, $5, 'image/jpeg',
            now() + make_interval(secs => $4), now() - interval '1 minute', now() - interval '1 minute', now() - interval '1 minute'
     FROM generate_series(1, $3) AS n`,
    [o.appId, prefix, o.count, o.expiresIn, o.storedBytes ?? 64, o.status ?? 'ready'],
  );
  return Array.from({ length: o.count }, (_, i) => `${prefix}${i + 1}`);
}

/**
 * Tiny objects for bulk-seeded rows. On `fs` they are written into the driver's layout directly
 * (`<DATA_DIR>/<key>`): the driver's fsync per put costs ~1 ms here, which would dominate seeding
 * 10,000+ objects. Other drivers go through `store.put`, `concurrency` at a time.
 */
export async function seedObjects(store: BlobStore, keys: readonly string[], o: { dataDir?: string; bytes?: number; concurrency?: number } = {}): Promise<void> {
  const body = Buffer.alloc(o.bytes ?? 64, 7);
  let next = 0;
  const dirs = new Set<string>();
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const key = keys[next++]!;
      if (store.driver === 'fs' && o.dataDir) {
        const file = path.join(fsStoreRoot(o.dataDir), ...key.split('/'));
        const dir = path.dirname(file);
        if (!dirs.has(dir)) {
          await mkdir(dir, { recursive: true });
          dirs.add(dir);
        }
        await writeFile(file, body);
      } else {
        await store.put(key, Readable.from([body]));
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency ?? 32 }, worker));
}

/** Storage keys of rows, for checking their objects. */
export const keysOf = (appId: string, ids: readonly string[]): string[] => ids.map((id) => storageKey(appId, id));

/**
 * What a sweep needs, over this test file's own database, data dir and queue prefix, without a
 * running service: the pool, the fs store, producer queues and a silent logger.
 */
export async function sweepHarness() {
  const { createPool } = await import('../../src/db/pool.js');
  const { createFsStore } = await import('../../src/storage/fs-store.js');
  const { createRedis } = await import('../../src/queue/connection.js');
  const { Queues } = await import('../../src/queue/queues.js');
  const { silentLogger } = await import('../../src/log.js');
  const { isolatedEnv } = await import('./env.js');
  const iso = await isolatedEnv();
  const pool = createPool(iso.config.DATABASE_URL);
  const store = createFsStore({ root: fsStoreRoot(iso.config.DATA_DIR) });
  const redis = createRedis(iso.config.REDIS_URL, 'producer');
  const deps = { pool, store, queues: new Queues(redis, iso.config.QUEUE_PREFIX), log: silentLogger };
  return {
    iso,
    pool,
    store,
    deps,
    async close() {
      await deps.queues.close();
      redis.disconnect();
      await pool.end();
      await iso.cleanup();
    },
  };
}
