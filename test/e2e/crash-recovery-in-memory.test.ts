/**
 * A worker SIGKILLed in the middle of a small image job, which it holds in memory end to end (no
 * scratch file): the job is taken over after a restart and the media is ready exactly once, and
 * the killed run left no plaintext behind, on disk or in the store. Real processes, Redis,
 * PostgreSQL and the fs store, as in crash-recovery.test.ts.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { runMediaflow } from '../helpers/child.js';
import { walk } from '../helpers/files.js';
import { multipart, startService, waitFor, waitSettled, type TestService } from '../helpers/service.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

/**
 * A 200 KB JPEG of 35 megapixels (one flat colour compresses to nothing): small enough to be held
 * in memory, and its decode and downscale to 4096 take long enough to kill a worker in the middle.
 */
function bigFlatJpeg(): Promise<Buffer> {
  return sharp({ create: { width: 7000, height: 5000, channels: 3, background: { r: 120, g: 80, b: 200 } } }).jpeg({ quality: 90 }).toBuffer();
}

/** Jobs' scratch directories (`mediaflow-<mediaId>-…`); tsx keeps its cache beside them. */
const scratchDirs = async (dir: string) => (await readdir(dir)).filter((n) => n.startsWith('mediaflow-'));

describe('a worker killed mid-job on a small image held in memory', () => {
  it('is taken over after restart: ready exactly once, one webhook event, no plaintext left behind', async () => {
    const svc: TestService = await startService({ role: 'api' });
    cleanups.push(() => svc.stop());
    const app = await svc.newApp({ webhookUrl: 'https://hooks.example.com/mediaflow' });
    // The workers' os.tmpdir(): where a job's scratch files would be, and where a killed run's would stay.
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'mf-crash-mem-'));
    cleanups.push(() => rm(tmp, { recursive: true, force: true }));
    const env = { ...svc.env, WORKER_CONCURRENCY: '1', TMPDIR: tmp, LOG_LEVEL: 'info' };
    const bytes = await bigFlatJpeg();
    expect(bytes.length).toBeLessThan(1_000_000);
    const pool = svc.running.rt.pool;
    const rowOf = async (id: string) => (await pool.query('SELECT status, attempts, ready_at, storage_key FROM media WHERE id = $1', [id])).rows[0];

    const worker1 = runMediaflow(['start', '--role', 'worker'], env);
    cleanups.push(async () => worker1.proc.kill('SIGKILL'));
    const res = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({ kind: 'image' }, { bytes, name: 'big.jpg', type: 'image/jpeg' }) });
    expect(res.status).toBe(202);
    const id = ((await res.json()) as any).data.id as string;
    await waitFor(async () => (await rowOf(id))?.status === 'processing', 30_000, 5);
    // Inside the decode: well past the claim and the read of the staging object, before any store.
    await new Promise((r) => setTimeout(r, 150));
    worker1.proc.kill('SIGKILL');
    expect(await worker1.exited).toBe('SIGKILL');
    expect((await rowOf(id)).status).toBe('processing');
    expect(worker1.output()).not.toContain('"media ready"');
    // The killed run never reached its `finally`: had it made a scratch directory, it would be here.
    expect(await scratchDirs(tmp)).toEqual([]);

    const worker2 = runMediaflow(['start', '--role', 'worker'], env);
    cleanups.push(async () => worker2.proc.kill('SIGKILL'));
    const m = await waitSettled(svc, app.apiKey, id, 90_000);
    expect(m.status, worker2.output().slice(-2000)).toBe('ready');
    expect(m).toMatchObject({ kind: 'image', mimeType: 'image/jpeg', width: 4096, height: 2926 });
    // The row is committed a moment before the worker's log line reaches this process.
    const readyLines = () => worker2.output().split('\n').filter((l) => l.includes('"media ready"') && l.includes(id));
    await waitFor(async () => readyLines().length > 0, 10_000, 20);
    const ready = readyLines().map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(ready).toHaveLength(1);
    expect(ready[0]!.inMemory).toBe(true);

    const row = await rowOf(id);
    expect(row.attempts).toBeGreaterThanOrEqual(2);
    // One stored object, the one the row points at, and no staging object.
    const files = await walk(svc.config.DATA_DIR);
    expect(files.filter((f) => f.includes(`${path.sep}staging${path.sep}`))).toEqual([]);
    expect(files.filter((f) => path.basename(f).startsWith(`${id}.`)).map((f) => path.relative(path.join(svc.config.DATA_DIR, 'store'), f).split(path.sep).join('/'))).toEqual([row.storage_key]);
    expect(await scratchDirs(tmp)).toEqual([]);
    const events = (await pool.query<{ event: string }>('SELECT event FROM webhook_deliveries WHERE media_id = $1', [id])).rows.map((r) => r.event);
    expect(events).toEqual(['media.ready']);

    // Still ready, once: a later duplicate delivery changes nothing.
    await new Promise((r) => setTimeout(r, 1000));
    const again = await rowOf(id);
    expect(again.status).toBe('ready');
    expect(again.ready_at.getTime()).toBe(row.ready_at.getTime());
    worker2.proc.kill('SIGTERM');
    expect(await worker2.exited).toBe(0);
  }, 150_000);
});
