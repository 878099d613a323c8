/**
 * Graceful shutdown of `mediaflow start --role all`, as its own process, signalled for real:
 * 10 multipart uploads are mid-body and one media job is mid-fetch when SIGTERM arrives.
 * Real: the process, Redis, PostgreSQL, the fs store, sharp, a local HTTP origin for the URL job.
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/cli/admin.js';
import { silentLogger } from '../../src/log.js';
import { createRuntime } from '../../src/runtime.js';
import { isolatedEnv } from '../helpers/env.js';
import { noiseJpeg } from '../helpers/media.js';
import { waitFor } from '../helpers/service.js';
import { startServiceProcess, streamingUpload, type ServiceProcess } from '../helpers/service-process.js';
import { walk } from '../helpers/files.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});


/**
 * An origin that, the first time, sends headers and half the image and then holds the body open
 * (a job stuck mid-fetch); later requests get the whole image.
 */
async function slowOrigin(bytes: Buffer): Promise<{ url: string; requests: number; firstHeld: Promise<void>; close(): Promise<void> }> {
  let requests = 0;
  let held: ServerResponse | undefined;
  let resolveHeld!: () => void;
  const firstHeld = new Promise<void>((r) => (resolveHeld = r));
  const server: Server = createServer((_req, res) => {
    requests++;
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': bytes.length });
    if (requests === 1) {
      res.write(bytes.subarray(0, bytes.length >> 1));
      held = res;
      resolveHeld();
      return;
    }
    res.end(bytes);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/photo.jpg`,
    get requests() {
      return requests;
    },
    firstHeld,
    close: () =>
      new Promise<void>((r) => {
        held?.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

describe('SIGTERM to --role all with 10 uploads in flight and a job running', () => {
  it('exits 0 within 30 s; after a restart every accepted upload is ready, nothing is stuck, nothing half-written', async () => {
    const iso = await isolatedEnv({
      LOG_LEVEL: 'info',
      ALLOW_PRIVATE_URLS: 'true',
      // A short budget so the grace runs out while the URL job still waits on its origin: that job
      // must be aborted back to the queue, not dropped. The uploads finish well inside it.
      SHUTDOWN_TIMEOUT_SECONDS: '6',
      UPLOAD_CONCURRENCY_PER_KEY: '16',
      WORKER_CONCURRENCY: '2',
    });
    cleanups.push(() => iso.cleanup());
    const rt = await createRuntime(iso.config, silentLogger);
    const { apiKey } = await createApp(rt, { name: 'shutdown' }).finally(() => rt.close());
    const db = new pg.Client({ connectionString: iso.config.DATABASE_URL });
    await db.connect();
    cleanups.push(() => db.end());

    const images = await Promise.all(Array.from({ length: 10 }, (_, i) => noiseJpeg(300_000, 100 + i)));
    const origin = await slowOrigin(await noiseJpeg(200_000, 99));
    cleanups.push(() => origin.close());

    const first: ServiceProcess = await startServiceProcess(iso.env);
    cleanups.push(async () => first.proc.kill('SIGKILL'));

    // A job mid-fetch: the origin holds its body open.
    const byUrl = await fetch(`${first.url}/v1/media`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ url: origin.url }) });
    expect(byUrl.status).toBe(202);
    const urlMediaId = ((await byUrl.json()) as any).data.id as string;
    await origin.firstHeld;
    await waitFor(async () => (await db.query('SELECT status FROM media WHERE id = $1', [urlMediaId])).rows[0]?.status === 'processing', 10_000, 50);

    // Ten uploads with headers sent and half of each body on the wire.
    const uploads = images.map((bytes, i) => {
      const u = streamingUpload(`${first.url}/v1/media`, { key: apiKey, filename: `photo-${i}.jpg`, type: 'image/jpeg' });
      u.send(bytes.subarray(0, bytes.length >> 1));
      return { u, bytes };
    });
    // And one client that stalls mid-body and never finishes: the end of the grace must cut it.
    const stalled = streamingUpload(`${first.url}/v1/media`, { key: apiKey, filename: 'stalled.jpg', type: 'image/jpeg' });
    stalled.send(images[0]!.subarray(0, 100_000));
    const stalledAnswer = stalled.response.then((r) => r.status, () => 0);
    // Until all of them have sniffed and started staging (each holds an upload lease from then on).
    await waitFor(async () => first.logLines().filter((l) => l.msg === 'incoming request' && l.req?.method === 'POST').length >= 12, 10_000, 50);
    await new Promise((r) => setTimeout(r, 300));

    const t0 = Date.now();
    first.proc.kill('SIGTERM');
    // The clients keep sending: the server is closing but must finish what it accepted.
    for (const { u, bytes } of uploads) {
      u.send(bytes.subarray(bytes.length >> 1));
      u.end();
    }
    const answers = await Promise.all(
      uploads.map(async ({ u }) => {
        try {
          const r = await u.response;
          return { status: r.status, body: (await r.json()) as any };
        } catch (err) {
          return { status: 0, error: String(err) };
        }
      }),
    );
    const exit = await first.exited;
    stalled.abort();
    const ms = Date.now() - t0;
    expect(exit, first.output().slice(-3000)).toEqual({ code: 0, signal: null });
    expect(ms).toBeLessThan(30_000);

    // Every client got an answer it can act on: 202 with an id, or an error it saw.
    const accepted = answers.filter((a) => a.status === 202).map((a) => a.body.data.id as string);
    for (const a of answers) expect([202, 0, 503]).toContain(a.status);
    expect(accepted.length).toBeGreaterThan(0);
    // The stalled upload was cut: its client saw the connection end (or a 503), never a 202.
    expect([0, 503]).toContain(await stalledAnswer);
    const logs = first.logLines();
    expect(logs.some((l) => l.msg === 'shutting down gracefully')).toBe(true);
    expect(logs.some((l) => l.msg === 'stopped')).toBe(true);

    // Nothing half-written: a row for exactly the answered uploads (plus the URL job), none processing.
    const rows = (await db.query<{ id: string; status: string }>('SELECT id, status FROM media ORDER BY id')).rows;
    expect(rows.map((r) => r.id).sort()).toEqual([...accepted, urlMediaId].sort());
    expect(rows.filter((r) => r.status === 'processing')).toEqual([]);
    // The URL job was aborted at the end of the grace and handed back, not dropped.
    expect(rows.find((r) => r.id === urlMediaId)?.status).toBe('queued');
    // One staging object per accepted upload (they wait for a worker); none for the cut one.
    const staging = (await walk(iso.config.DATA_DIR)).filter((f) => f.includes(`${path.sep}staging${path.sep}`));
    expect(staging).toHaveLength(accepted.length);

    const second = await startServiceProcess(iso.env);
    cleanups.push(async () => second.proc.kill('SIGKILL'));
    const settled = await waitFor(async () => {
      const { rows: now } = await db.query<{ id: string; status: string; attempts: number }>('SELECT id, status, attempts FROM media');
      return now.every((r) => r.status === 'ready' || r.status === 'failed') ? now : null;
    }, 40_000, 200);
    expect(settled.filter((r) => r.status !== 'ready'), second.output().slice(-3000)).toEqual([]);
    expect(settled.find((r) => r.id === urlMediaId)!.attempts).toBeGreaterThanOrEqual(2);
    expect(origin.requests).toBeGreaterThanOrEqual(2);
    // No staging object outlives its media.
    expect((await walk(iso.config.DATA_DIR)).filter((f) => f.includes(`${path.sep}staging${path.sep}`))).toEqual([]);

    const stop2 = await second.stop('SIGTERM');
    expect(stop2.code).toBe(0);
    expect(stop2.ms).toBeLessThan(30_000);
  });
});
