/**
 * The core path with STORAGE_DRIVER=s3: the same flows as core-path.test.ts (shared in
 * test/helpers/core-flows.ts), the service over HTTP against real Redis and PostgreSQL and an S3
 * server (s3rver in this process, or S3_ENDPOINT), plus retention on S3: expiry sweeps and a
 * DeleteObjects 200 that carries per-key errors. Nothing is mocked on the client side.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweep } from '../../src/retention/sweep.js';
import { defineCoreFlows, s3Env, s3Inspector } from '../helpers/core-flows.js';
import { insertApp, seedReadyMedia } from '../helpers/retention-seed.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { startService, type TestService } from '../helpers/service.js';

let s3: S3TestServer;
let svc: TestService;
let inspector: ReturnType<typeof s3Inspector>;

beforeAll(async () => {
  s3 = await startS3Server();
  // The scheduler is effectively off: the retention tests below drive sweeps themselves.
  svc = await startService({ env: { ...s3Env(s3), SWEEP_CRON: '0 0 1 1 *' } });
  expect(svc.running.rt.store.driver).toBe('s3');
  inspector = s3Inspector(s3, svc.running.rt.store);
});

afterAll(async () => {
  inspector?.close();
  await svc?.stop();
  await s3?.dispose();
});

defineCoreFlows('s3', () => ({ svc, inspector }));

describe('retention on s3', () => {
  let pool: TestService['running']['rt']['pool'];
  beforeAll(() => {
    pool = svc.running.rt.pool;
  });
  afterAll(() => s3.failDeletesOf?.(null));

  it('a sweep deletes expired media (object, variants, staging) from the bucket and leaves the rest', async () => {
    const store = svc.running.rt.store;
    const appId = await insertApp(pool);
    const due = [];
    for (let i = 0; i < 5; i++) due.push(await seedReadyMedia(pool, store, { appId, ttlSeconds: -10, variants: ['thumb'], staging: i === 0 }));
    const live = await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600 });
    const res = await sweep(svc.running.rt, { batchSize: 100, maxRetentionSeconds: svc.config.MAX_RETENTION_SECONDS });
    expect(res).toMatchObject({ deleted: 5, failed: 0, byReason: { expired: 5 } });
    const keys = await inspector.allKeys();
    expect(keys.filter((k) => k.startsWith(`objects/${appId}/`) || k.startsWith(`staging/${appId}/`))).toEqual([live.storage_key]);
  });

  it.skipIf(!!process.env.S3_ENDPOINT)('a DeleteObjects 200 carrying an error for one key keeps that media deleting until a later sweep succeeds', async () => {
    const store = svc.running.rt.store;
    const appId = await insertApp(pool);
    const stuck = await seedReadyMedia(pool, store, { appId, ttlSeconds: -10 });
    const fine = await seedReadyMedia(pool, store, { appId, ttlSeconds: -10 });
    s3.failDeletesOf!((key) => key === stuck.storage_key);
    const first = await sweep(svc.running.rt, { batchSize: 100, maxRetentionSeconds: svc.config.MAX_RETENTION_SECONDS });
    expect(first).toMatchObject({ deleted: 1, failed: 1 });
    const { rows } = await pool.query<{ id: string; status: string }>('SELECT id, status FROM media WHERE id = ANY($1) ORDER BY id', [[stuck.id, fine.id]]);
    expect(Object.fromEntries(rows.map((r) => [r.id, r.status]))).toEqual({ [stuck.id]: 'deleting', [fine.id]: 'deleted' });
    expect(await store.exists(stuck.storage_key)).toBe(true);

    s3.failDeletesOf!(null);
    const next = await sweep(svc.running.rt, { batchSize: 100, maxRetentionSeconds: svc.config.MAX_RETENTION_SECONDS });
    expect(next).toMatchObject({ deleted: 1, failed: 0 });
    expect(await store.exists(stuck.storage_key)).toBe(false);
    const audits = await pool.query('SELECT media_id FROM audit_events WHERE media_id = ANY($1)', [[stuck.id, fine.id]]);
    expect(audits.rows).toHaveLength(2);
  });
});
