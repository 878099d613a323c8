/**
 * Retention with the service running (`--role all`): real Redis, PostgreSQL, the fs store, sharp,
 * the BullMQ job scheduler firing `retention-sweep` every second, and device destroy over HTTP.
 * Rows are also seeded straight through the repository and the store. Nothing is mocked.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fsStoreRoot } from '../../src/storage/create-store.js';
import { sweep } from '../../src/retention/sweep.js';
import { smallJpeg } from '../helpers/media.js';
import { multipart, startService, waitFor, type TestService } from '../helpers/service.js';
import { seedReadyMedia } from '../helpers/retention-seed.js';

let svc: TestService;
let app: { appId: string; apiKey: string };

beforeAll(async () => {
  // Every second, so "gone within one sweep interval" is measured in seconds, not minutes.
  svc = await startService({ env: { SWEEP_CRON: '* * * * * *' } });
  app = await svc.newApp();
});

afterAll(async () => {
  await svc?.stop();
});

const fileOf = (key: string) => path.join(fsStoreRoot(svc.config.DATA_DIR), ...key.split('/'));
const exists = (file: string) => stat(file).then(() => true, () => false);

async function upload(fields: Record<string, string>, seed = 7): Promise<any> {
  const res = await svc.call('/v1/media?wait=20', { method: 'POST', key: app.apiKey, body: multipart(fields, { bytes: await smallJpeg(64, 48, seed), name: 'p.jpg', type: 'image/jpeg' }) });
  expect(res.status).toBe(200);
  const body = (await res.json()) as any;
  expect(body.data.status).toBe('ready');
  return body.data;
}

async function rowOf(id: string) {
  const { rows } = await svc.running.rt.pool.query<{ status: string; storage_key: string; delete_reason: string | null }>(
    'SELECT status, storage_key, delete_reason FROM media WHERE id = $1',
    [id],
  );
  return rows[0]!;
}

async function audits(id: string) {
  const { rows } = await svc.running.rt.pool.query<{ reason: string; bytes: number }>(`SELECT reason, bytes FROM audit_events WHERE media_id = $1 AND event = 'media.deleted'`, [id]);
  return rows;
}

describe('expiry', () => {
  it('ttlSeconds=2: ready, then 404 with its object gone within one sweep interval after expiry', async () => {
    const m = await upload({ ttlSeconds: '2' });
    const expiresAt = Date.parse(m.expiresAt);
    expect(expiresAt - Date.parse(m.createdAt)).toBe(2000);
    const file = fileOf((await rowOf(m.id)).storage_key);
    expect(await exists(file)).toBe(true);
    expect((await svc.call(`/v1/media/${m.id}/content`, { key: app.apiKey })).status).toBe(200);

    // Gone (404, object deleted, row deleted) no later than one interval (1 s) past expiry, plus slack for a loaded machine.
    const goneAt = await waitFor(
      async () => ((await svc.call(`/v1/media/${m.id}`, { key: app.apiKey })).status === 404 && !(await exists(file)) && (await rowOf(m.id)).status === 'deleted' ? Date.now() : null),
      10_000,
      50,
    );
    expect(goneAt - expiresAt).toBeLessThan(1000 + 4000);
    expect((await svc.call(`/v1/media/${m.id}/content`, { key: app.apiKey })).status).toBe(404);
    expect((await svc.call(`/media?path=${encodeURIComponent(m.mediaPath)}`, { key: app.apiKey })).status).toBe(404);
    expect(await audits(m.id)).toEqual([{ reason: 'expired', bytes: expect.any(Number) }]);
  });

  it('leaves media expiring in one hour untouched by 100 sweeps', async () => {
    const uploaded = await upload({ ttlSeconds: '3600' }, 9);
    const seeded = await seedReadyMedia(svc.running.rt.pool, svc.running.rt.store, { appId: app.appId, ttlSeconds: 3600, variants: ['thumb'] });
    const before = await stat(fileOf(seeded.storage_key));
    for (let i = 0; i < 100; i++) {
      const res = await sweep(svc.running.rt, { batchSize: 500, maxRetentionSeconds: svc.config.MAX_RETENTION_SECONDS });
      expect(res.items.map((x) => x.id)).not.toContain(seeded.id);
      expect(res.items.map((x) => x.id)).not.toContain(uploaded.id);
    }
    for (const id of [uploaded.id, seeded.id]) {
      expect((await rowOf(id)).status).toBe('ready');
      expect(await audits(id)).toEqual([]);
    }
    const after = await stat(fileOf(seeded.storage_key));
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(await exists(fileOf(seeded.variants[0]!.key))).toBe(true);
    const content = await svc.call(`/v1/media/${uploaded.id}/content`, { key: app.apiKey });
    expect(content.status).toBe(200);
    expect(Buffer.from(await content.arrayBuffer()).length).toBe(uploaded.sizeBytes);
  });
});

describe('device destroy', () => {
  it('DELETE /v1/devices/:id: its media answer 404 at once, then bytes and rows are purged, audited device_destroyed', async () => {
    const dev = await svc.call('/v1/devices', { method: 'POST', key: app.apiKey, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'phone-1' }) });
    expect(dev.status).toBe(201);
    const keep = await svc.call('/v1/devices', { method: 'POST', key: app.apiKey, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'phone-2' }) });
    expect(keep.status).toBe(201);
    const mine: any[] = [];
    for (let i = 0; i < 3; i++) mine.push(await upload({ deviceId: 'phone-1' }, 20 + i));
    const other = await upload({ deviceId: 'phone-2' }, 30);
    const files = await Promise.all(mine.map(async (m) => fileOf((await rowOf(m.id)).storage_key)));
    for (const f of files) expect(await exists(f)).toBe(true);

    const del = await svc.call('/v1/devices/phone-1', { method: 'DELETE', key: app.apiKey });
    expect(del.status).toBe(204);
    for (const m of mine) {
      expect((await svc.call(`/v1/media/${m.id}`, { key: app.apiKey })).status).toBe(404);
      expect((await svc.call(`/v1/media/${m.id}/content`, { key: app.apiKey })).status).toBe(404);
      expect((await fetch(m.url)).status).toBe(404);
    }
    expect((await svc.call('/v1/devices/phone-1', { key: app.apiKey })).status).toBe(404);

    await waitFor(async () => (await Promise.all(mine.map((m) => rowOf(m.id)))).every((r) => r.status === 'deleted'), 10_000, 50);
    for (const f of files) expect(await exists(f)).toBe(false);
    for (const m of mine) expect(await audits(m.id)).toEqual([{ reason: 'device_destroyed', bytes: expect.any(Number) }]);
    expect((await rowOf(other.id)).status).toBe('ready');
    expect((await svc.call(`/v1/media/${other.id}/content`, { key: app.apiKey })).status).toBe(200);
  });

  it('an upload that raced the destroy (row written for a destroyed device) is purged by the sweep', async () => {
    const pool = svc.running.rt.pool;
    await pool.query(`INSERT INTO devices (app_id, id, status, destroyed_at) VALUES ($1, 'phone-late', 'destroyed', now())`, [app.appId]);
    const late = await seedReadyMedia(pool, svc.running.rt.store, { appId: app.appId, ttlSeconds: 3600, deviceId: 'phone-late' });
    await waitFor(async () => (await rowOf(late.id)).status === 'deleted', 10_000, 50);
    expect(await exists(fileOf(late.storage_key))).toBe(false);
    expect(await audits(late.id)).toEqual([{ reason: 'device_destroyed', bytes: expect.any(Number) }]);
  });
});

describe('metrics', () => {
  it('exports deletions by reason, bytes freed, sweep duration and the backlog', async () => {
    await sweep(svc.running.rt, { batchSize: 500, maxRetentionSeconds: svc.config.MAX_RETENTION_SECONDS });
    const res = await svc.call('/metrics');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(/^mediaflow_sweeper_deletions_total\{reason="expired"\} [1-9]/m);
    expect(text).toMatch(/^mediaflow_sweeper_deletions_total\{reason="device_destroyed"\} [1-9]/m);
    expect(text).toMatch(/^mediaflow_sweeper_bytes_freed_total [1-9]/m);
    expect(text).toMatch(/^mediaflow_sweep_seconds_count [1-9]/m);
    expect(text).toMatch(/^mediaflow_sweep_backlog 0$/m);

    // Due rows the sweep cannot reach yet show up in the backlog.
    const pool = svc.running.rt.pool;
    const due = await seedReadyMedia(pool, svc.running.rt.store, { appId: app.appId, ttlSeconds: 3600 });
    await pool.query(`UPDATE media SET status = 'deleting', delete_reason = 'deleted', updated_at = now() WHERE id = $1`, [due.id]);
    const res2 = await sweep(svc.running.rt, { batchSize: 500, maxRetentionSeconds: svc.config.MAX_RETENTION_SECONDS });
    expect(res2.backlog).toBeGreaterThanOrEqual(1);
    expect(await (await svc.call('/metrics')).text()).toMatch(/^mediaflow_sweep_backlog [1-9]/m);
  });
});
