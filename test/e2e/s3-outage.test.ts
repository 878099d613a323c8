/**
 * The S3 server stopped mid-run. Real: Redis, PostgreSQL, s3rver in this process (stopped and
 * restarted on the same port over the same data: a real outage, connections refused), the API and
 * a worker as separate roles. Uploads that cannot be staged answer 502 and leave nothing; uploads
 * accepted before the outage are retried by the worker and all become ready once S3 returns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { startRoles, type Running } from '../../src/roles.js';
import { sha256, smallJpeg } from '../helpers/media.js';
import { s3Env, s3Inspector } from '../helpers/core-flows.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { multipart, startService, waitFor, type TestService } from '../helpers/service.js';

let s3: S3TestServer;
let api: TestService;
let worker: Running | undefined;
let app: { appId: string; apiKey: string };

beforeAll(async () => {
  s3 = await startS3Server({ inProcess: true });
  // API only: accepted uploads wait in the queue until this test starts a worker, mid-outage.
  api = await startService({ role: 'api', env: { ...s3Env(s3), SWEEP_CRON: '0 0 1 1 *' } });
  app = await api.newApp();
});

afterAll(async () => {
  await worker?.stop();
  await api?.stop();
  await s3?.dispose();
});

async function upload(seed: number) {
  const bytes = await smallJpeg(64, 48, seed);
  const res = await api.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({}, { bytes, name: `p${seed}.jpg`, type: 'image/jpeg' }) });
  return { res, body: (await res.json()) as any, bytes };
}

describe('S3 outage', () => {
  it('uploads during the outage answer 502 STORAGE_UNAVAILABLE and leave nothing; accepted media are retried and all become ready; no staging object is left', async () => {
    const accepted: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { res, body } = await upload(100 + i);
      expect(res.status).toBe(202);
      accepted.push(body.data.id);
    }
    const rowsBefore = (await api.running.rt.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM media')).rows[0]!.n;

    await s3.stop();
    expect((await api.call('/readyz')).status).toBe(503);
    for (let i = 0; i < 2; i++) {
      const { res, body } = await upload(200 + i);
      expect(res.status).toBe(502);
      expect(body.error.code).toBe('STORAGE_UNAVAILABLE');
    }
    expect((await api.running.rt.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM media')).rows[0]!.n).toBe(rowsBefore);

    // The worker starts while S3 is still down: every accepted job fails transiently, twice (a retry after backoff included).
    worker = await startRoles(api.config, createLogger({ level: api.config.LOG_LEVEL }), 'worker');
    const ingest = api.running.rt.queues.get('ingest');
    await waitFor(async () => {
      const jobs = await Promise.all(accepted.map((id) => ingest.getJob(id)));
      return jobs.every((j) => (j?.attemptsMade ?? 0) >= 2);
    }, 20_000, 100);
    const { rows: midway } = await api.running.rt.pool.query<{ status: string }>('SELECT status FROM media WHERE id = ANY($1)', [accepted]);
    expect(midway.every((r) => r.status === 'queued' || r.status === 'processing')).toBe(true);

    await s3.restart!();
    const ready = await waitFor(async () => {
      const all = await Promise.all(accepted.map(async (id) => ((await (await api.call(`/v1/media/${id}`, { key: app.apiKey })).json()) as any).data));
      return all.every((m) => m.status === 'ready') ? all : null;
    }, 45_000, 200);
    for (const m of ready) {
      const content = await api.call(`/v1/media/${m.id}/content`, { key: app.apiKey });
      expect(content.status).toBe(200);
      expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(m.checksum.value);
    }
    const inspector = s3Inspector(s3, api.running.rt.store);
    try {
      const keys = await inspector.allKeys();
      expect(keys.filter((k) => k.startsWith('staging/') || k.startsWith('upload:'))).toEqual([]);
      // One object per media, the one its row points at: no retry left another run's object behind.
      const { rows: stored } = await api.running.rt.pool.query<{ storage_key: string }>('SELECT storage_key FROM media WHERE id = ANY($1)', [accepted]);
      expect(stored.every((r) => r.storage_key.startsWith(`objects/${app.appId}/`))).toBe(true);
      expect(keys.filter((k) => k.startsWith('objects/')).sort()).toEqual(stored.map((r) => r.storage_key).sort());
    } finally {
      inspector.close();
    }
    expect((await api.call('/readyz')).status).toBe(200);
  });
});
