/**
 * The reconciler against real Redis and PostgreSQL (an API-only service, so jobs stay waiting):
 * it re-enqueues what the queue lost, leaves alive jobs alone, and keeps media that only waits in a
 * long backlog from being swept as abandoned.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcile } from '../../src/jobs/reconcile.js';
import { sweep } from '../../src/retention/sweep.js';
import { smallJpeg } from '../helpers/media.js';
import { multipart, startService, type TestService } from '../helpers/service.js';

let svc: TestService;
let app: { appId: string; apiKey: string };

beforeAll(async () => {
  svc = await startService({ role: 'api' });
  app = await svc.newApp();
});
afterAll(async () => {
  await svc?.stop();
});

async function upload(): Promise<string> {
  const res = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({}, { bytes: await smallJpeg(), name: 'a.jpg', type: 'image/jpeg' }) });
  expect(res.status).toBe(202);
  return ((await res.json()) as any).data.id;
}

const ageRow = (id: string) => svc.running.rt.pool.query(`UPDATE media SET updated_at = now() - interval '2 hours' WHERE id = $1`, [id]);
const rowOf = async (id: string) => (await svc.running.rt.pool.query('SELECT status, updated_at FROM media WHERE id = $1', [id])).rows[0];

describe('reconciler', () => {
  it('refreshes media whose job is still waiting, so a sweep does not take it for abandoned', async () => {
    const id = await upload();
    await ageRow(id);
    expect(await svc.running.rt.queues.get('ingest').getJobState(id)).toBe('waiting');
    expect(await reconcile(svc.running.rt)).toBe(0);
    const row = await rowOf(id);
    expect(row.status).toBe('queued');
    expect(Date.now() - row.updated_at.getTime()).toBeLessThan(60_000);
    await sweep(svc.running.rt, { batchSize: 100, maxRetentionSeconds: svc.config.MAX_RETENTION_SECONDS });
    expect((await rowOf(id)).status).toBe('queued');
  });

  it('re-enqueues a queued media whose job the queue lost', async () => {
    const id = await upload();
    await svc.running.rt.queues.get('ingest').remove(id);
    await ageRow(id);
    expect(await svc.running.rt.queues.get('ingest').getJobState(id)).toBe('unknown');
    expect(await reconcile(svc.running.rt)).toBeGreaterThanOrEqual(1);
    expect(await svc.running.rt.queues.get('ingest').getJobState(id)).toBe('waiting');
    const job = await svc.running.rt.queues.get('ingest').getJob(id);
    expect(job?.data).toMatchObject({ v: 1, mediaId: id, appId: app.appId, source: { type: 'storage' } });
  });
});
