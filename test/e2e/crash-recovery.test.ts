/**
 * Crashes and outages, with real processes: a worker SIGKILLed mid-job, and Redis (a test's own
 * redis-server on its own port) stopped during an upload and losing its data.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createLogger } from '../../src/log.js';
import { startRoles } from '../../src/roles.js';
import { loadConfig } from '../../src/config/index.js';
import { runMediaflow } from '../helpers/child.js';
import { smallJpeg } from '../helpers/media.js';
import { walk } from '../helpers/files.js';
import { multipart, startService, waitFor, waitSettled, type TestService } from '../helpers/service.js';


async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** A WebM clip whose transcode to MP4 takes a few seconds: long enough to kill a worker mid-job. */
function makeWebm(dir: string): string {
  const out = path.join(dir, 'clip.webm');
  execFileSync('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=960x540:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440',
    '-t', '12', '-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '1M', '-c:a', 'libopus', '-shortest', '-y', out]);
  return out;
}

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

describe('a worker killed mid-job', () => {
  it('is taken over after restart: ready exactly once, no staging left', async () => {
    const svc: TestService = await startService({ role: 'api' });
    cleanups.push(() => svc.stop());
    const app = await svc.newApp();
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'mf-crash-'));
    cleanups.push(() => rm(tmp, { recursive: true, force: true }));
    const clip = makeWebm(tmp);
    const { readFile } = await import('node:fs/promises');
    const bytes = await readFile(clip);

    const worker1 = runMediaflow(['start', '--role', 'worker'], { ...svc.env, WORKER_CONCURRENCY: '1' });
    cleanups.push(async () => worker1.proc.kill('SIGKILL'));
    const res = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({ kind: 'video' }, { bytes, name: 'clip.webm', type: 'video/webm' }) });
    expect(res.status).toBe(202);
    const id = ((await res.json()) as any).data.id;
    await waitFor(async () => ((await svc.running.rt.pool.query('SELECT status FROM media WHERE id = $1', [id])).rows[0]?.status === 'processing'), 30_000, 50);
    await new Promise((r) => setTimeout(r, 300));
    worker1.proc.kill('SIGKILL');
    expect(await worker1.exited).toBe('SIGKILL');
    const mid = (await svc.running.rt.pool.query('SELECT status FROM media WHERE id = $1', [id])).rows[0];
    expect(mid.status).toBe('processing');

    const worker2 = runMediaflow(['start', '--role', 'worker'], { ...svc.env, WORKER_CONCURRENCY: '1' });
    cleanups.push(async () => worker2.proc.kill('SIGKILL'));
    const m = await waitSettled(svc, app.apiKey, id, 90_000);
    expect(m.status, worker2.output().slice(-2000)).toBe('ready');
    expect(m.mimeType).toBe('video/mp4');
    const row = (await svc.running.rt.pool.query('SELECT attempts, ready_at FROM media WHERE id = $1', [id])).rows[0];
    expect(row.attempts).toBeGreaterThanOrEqual(2);
    const staging = (await walk(svc.config.DATA_DIR)).filter((f) => f.includes(`${path.sep}staging${path.sep}`));
    expect(staging).toEqual([]);
    // Still ready, once: a later duplicate delivery changes nothing.
    await new Promise((r) => setTimeout(r, 1000));
    const again = (await svc.running.rt.pool.query('SELECT status, ready_at FROM media WHERE id = $1', [id])).rows[0];
    expect(again.status).toBe('ready');
    expect(again.ready_at.getTime()).toBe(row.ready_at.getTime());
    worker2.proc.kill('SIGTERM');
    expect(await worker2.exited).toBe(0);
  }, 150_000);
});

describe('Redis stopped during an upload', () => {
  it('answers 503 fast, keeps nothing half-written, and the reconciler re-enqueues what the queue lost', async () => {
    const port = await freePort();
    const dir = await mkdtemp(path.join(os.tmpdir(), 'mf-redis-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const startRedis = (): ChildProcess =>
      spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    let redis = startRedis();
    cleanups.push(async () => redis.kill('SIGKILL'));
    const redisUrl = `redis://127.0.0.1:${port}`;
    await waitFor(async () => {
      const r = new Redis(redisUrl, { maxRetriesPerRequest: 0, lazyConnect: true, retryStrategy: () => null });
      r.on('error', () => undefined);
      try {
        await r.connect();
        return (await r.ping()) === 'PONG';
      } finally {
        r.disconnect();
      }
    });
    const svc = await startService({ role: 'api', env: { REDIS_URL: redisUrl } });
    cleanups.push(() => svc.stop());
    const app = await svc.newApp();
    const jpeg = await smallJpeg();
    const countRows = async () => (await svc.running.rt.pool.query('SELECT count(*)::int AS n FROM media')).rows[0].n as number;

    redis.kill("SIGKILL");
    await new Promise((r) => redis.once('exit', r));
    const t0 = Date.now();
    const res = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({}, { bytes: jpeg, name: 'a.jpg', type: 'image/jpeg' }) });
    const elapsed = Date.now() - t0;
    expect(res.status).toBe(503);
    expect(((await res.json()) as any).error.code).toBe('QUEUE_UNAVAILABLE');
    expect(elapsed).toBeLessThan(2000);
    expect(await countRows()).toBe(0);
    expect((await walk(svc.config.DATA_DIR)).filter((f) => f.includes(`${path.sep}staging${path.sep}`))).toEqual([]);
    expect((await svc.call('/readyz')).status).toBe(503);

    // Redis comes back empty; an upload is accepted, then Redis loses it (a restart without persistence).
    redis = startRedis();
    await waitFor(async () => (await svc.call('/readyz')).status === 200, 20_000, 200);
    const ok = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({}, { bytes: jpeg, name: 'b.jpg', type: 'image/jpeg' }) });
    expect(ok.status).toBe(202);
    const id = ((await ok.json()) as any).data.id;
    const flusher = new Redis(redisUrl);
    await flusher.flushall();
    flusher.disconnect();
    // A worker now starts: no job exists, the row says queued; the reconciler must notice.
    const cfg = loadConfig(svc.env);
    const worker = await startRoles({ ...cfg, REDIS_URL: redisUrl }, createLogger({ level: 'silent' }), 'worker');
    cleanups.push(() => worker.stop());
    const m = await waitSettled(svc, app.apiKey, id, 30_000);
    expect(m.status).toBe('ready');
  }, 90_000);
});
