/**
 * Phone media in, deliverable media out, through the running service (real API, worker, sharp,
 * ffmpeg, Redis, PostgreSQL, fs store): inputs larger than what is delivered are taken in and made
 * to fit, 413 is answered at upload only past a kind's input cap, TIFFs whose directory follows the
 * pixels are recognised, and a media being processed shows its progress.
 *
 * Generated media lives in a temp dir (and the fixture caches in os.tmpdir()). The 24 MP photo comes
 * from test/fixtures/noisy-images.ts and the 40 s 1080p phone clip from test/fixtures/generate.ts.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mediaRepo from '../../src/db/repos/media.js';
import { ingest } from '../../src/cli/ingest.js';
import { fixture } from '../fixtures/generate.js';
import { phonePhoto24mp } from '../fixtures/noisy-images.js';
import { makeTiffByFfmpeg, makeTiffBySharp } from '../fixtures/sniff-media.js';
import { sha256, smallJpeg, smallPng } from '../helpers/media.js';
import { multipart, startService, waitFor, waitSettled, type TestService } from '../helpers/service.js';

let svc: TestService;
let app: { appId: string; apiKey: string };
let tmp: string;

beforeAll(async () => {
  svc = await startService();
  app = await svc.newApp();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'mf-phone-'));
});
afterAll(async () => {
  await svc?.stop();
  await rm(tmp, { recursive: true, force: true });
});

async function upload(bytes: Uint8Array, kind: string | null, type: string, name: string) {
  const res = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart(kind ? { kind } : {}, { bytes, name, type }) });
  return { status: res.status, body: (await res.json()) as any };
}

async function content(id: string): Promise<Buffer> {
  const res = await svc.call(`/v1/media/${id}/content`, { key: app.apiKey });
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

describe('photos', () => {
  it('an 8 MB 24 MP JPEG is taken in (202, not 413) and delivered as a JPEG of at most 5 MB', async () => {
    const bytes = await readFile(await phonePhoto24mp());
    expect(bytes.length).toBeGreaterThan(7_500_000);
    expect(await sharp(bytes).metadata()).toMatchObject({ width: 6000, height: 4000, format: 'jpeg' });

    const up = await upload(bytes, 'image', 'image/jpeg', 'IMG_2024.JPG');
    expect(up.status, JSON.stringify(up.body)).toBe(202);
    const media = await waitSettled(svc, app.apiKey, up.body.data.id, 180_000);
    expect(media.status, JSON.stringify(media.error)).toBe('ready');
    expect(media.mimeType).toBe('image/jpeg');
    expect(media.sizeBytes).toBeLessThanOrEqual(5_000_000);
    const stored = await content(media.id);
    expect(stored.length).toBe(media.sizeBytes);
    expect(sha256(stored)).toBe(media.checksum.value);
    expect((await sharp(stored).metadata()).format).toBe('jpeg');
  }, 240_000);

  it('a slot and base64 take the same 8 MB photo', async () => {
    const bytes = await readFile(await phonePhoto24mp());
    const slot = await svc.call('/v1/media/uploads', {
      method: 'POST', key: app.apiKey, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ mimeType: 'image/jpeg', byteSize: bytes.length, kind: 'image' }),
    });
    expect(slot.status).toBe(201);
    const put = await fetch(((await slot.json()) as any).data.uploadUrl, { method: 'PUT', body: bytes });
    expect(put.status).toBe(202);

    const b64 = await svc.call('/v1/media', {
      method: 'POST', key: app.apiKey, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ base64: bytes.toString('base64'), mimeType: 'image/jpeg', filename: 'b.jpg' }),
    });
    expect(b64.status).toBe(202);
    const b64Media = ((await b64.json()) as any).data;
    expect(b64Media.kind).toBe('image');
    // Making them fit is the first test's: these only prove the way in, and do not keep the worker busy.
    for (const id of [((await put.json()) as any).data.id, b64Media.id]) {
      expect((await svc.call(`/v1/media/${id}`, { method: 'DELETE', key: app.apiKey })).status).toBe(204);
    }
  });

  it('an image over the 50 MB input cap is refused at upload with 413 FILE_TOO_LARGE, keeping nothing', async () => {
    const jpeg = await smallJpeg();
    const big = Buffer.concat([jpeg, Buffer.alloc(50_000_001 - jpeg.length, 0x20)]);
    const before = (await svc.running.rt.pool.query('SELECT count(*)::int AS n FROM media')).rows[0].n;
    const up = await upload(big, 'image', 'image/jpeg', 'huge.jpg');
    expect(up.status).toBe(413);
    expect(up.body.error.code).toBe('FILE_TOO_LARGE');
    expect(up.body.error.details).toMatchObject({ maxBytes: 50_000_000 });
    expect((await svc.running.rt.pool.query('SELECT count(*)::int AS n FROM media')).rows[0].n).toBe(before);
  }, 120_000);

  it.each([
    ['ffmpeg', makeTiffByFfmpeg, [640, 480]],
    ['sharp', makeTiffBySharp, [380, 350]],
  ] as const)('a ≈ 400 KB TIFF written by %s (directory at the end) → ready JPEG', async (_by, make, [width, height]) => {
    const bytes = await readFile(await make(tmp));
    expect(bytes.length).toBeGreaterThan(300_000);
    const up = await upload(bytes, null, 'image/tiff', 'scan.tiff');
    expect(up.status, JSON.stringify(up.body)).toBe(202);
    const media = await waitSettled(svc, app.apiKey, up.body.data.id, 60_000);
    expect(media.status, JSON.stringify(media.error)).toBe('ready');
    expect(media).toMatchObject({ kind: 'image', mimeType: 'image/jpeg', width, height });
    expect((await sharp(await content(media.id)).metadata()).format).toBe('jpeg');
  });
});

describe('video', () => {
  it('a 48 MB 40 s 1080p phone clip is taken in (202, not 413) and delivered as an MP4 of at most 16 MB', async () => {
    const file = await fixture('mp4Phone1080p40s');
    const size = (await stat(file)).size;
    expect(size).toBeGreaterThan(45_000_000);
    expect(size).toBeLessThan(50_000_000);
    const up = await upload(await readFile(file), 'video', 'video/mp4', 'VID_2024.mp4');
    expect(up.status, JSON.stringify(up.body)).toBe(202);
    // A minute of encoding: while it runs, the media object says how far the worker is.
    const seen: number[] = [];
    const media = await waitFor(async () => {
      const m = ((await (await svc.call(`/v1/media/${up.body.data.id}`, { key: app.apiKey })).json()) as any).data;
      if (m.status === 'processing' && m.progress !== undefined) seen.push(m.progress);
      return m.status === 'ready' || m.status === 'failed' ? m : null;
    }, 540_000, 250);
    expect(media.status, JSON.stringify(media.error)).toBe('ready');
    expect(media).not.toHaveProperty('progress');
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((p) => p >= 0 && p <= 100)).toBe(true);
    expect(media.mimeType).toBe('video/mp4');
    expect(media.sizeBytes).toBeLessThanOrEqual(16_000_000);
    expect(Math.abs(media.durationMs - 40_000)).toBeLessThanOrEqual(100);
  }, 600_000);
});

describe('progress while processing', () => {
  // An API without workers: a media stays where the test puts it, and its job's progress is set as
  // a worker would set it (job.updateProgress), so what the reader shows is decided by the test.
  let api: TestService;
  let key: string;
  let appId: string;
  beforeAll(async () => {
    api = await startService({ role: 'api' });
    ({ apiKey: key, appId } = await api.newApp());
  });
  afterAll(async () => {
    await api?.stop();
  });

  async function queued(): Promise<string> {
    const res = await api.call('/v1/media', { method: 'POST', key, body: multipart({ kind: 'image' }, { bytes: await smallPng(), name: 'p.png', type: 'image/png' }) });
    expect(res.status).toBe(202);
    return ((await res.json()) as any).data.id;
  }
  const get = async (id: string) => ((await (await api.call(`/v1/media/${id}`, { key })).json()) as any).data;

  it('GET /v1/media/:id shows the job\'s progress while processing, and no progress field otherwise', async () => {
    const id = await queued();
    expect(await get(id)).not.toHaveProperty('progress');

    await mediaRepo.claimForProcessing(api.running.rt.pool, id, 'run_test');
    const job = await api.running.rt.queues.get('ingest').getJob(id);
    // Before the worker says anything: processing, progress unknown.
    expect(await get(id)).not.toHaveProperty('progress');
    await job!.updateProgress(42);
    expect(await get(id)).toMatchObject({ status: 'processing', progress: 42 });
    await job!.updateProgress(87);
    expect((await get(id)).progress).toBe(87);

    // Settled media never carries it, whatever the job last said.
    await mediaRepo.markFailed(api.running.rt.pool, id, 'MEDIA_REJECTED', 'test', { claimToken: 'run_test' });
    expect(await get(id)).not.toHaveProperty('progress');
  });

  it('mediaflow ingest --wait shows the same progress on its bar', async () => {
    const lines: string[] = [];
    const out = { isTTY: false, write: (s: string) => lines.push(s) };
    const png = path.join(tmp, 'wait.png');
    await writeFile(png, await smallPng(16, 16, 9));
    const waiting = ingest(api.running.rt, png, { app: appId, wait: true, timeout: 60 }, out);
    const row = await waitFor(async () => (await api.running.rt.pool.query<{ id: string }>(`SELECT id FROM media WHERE original_name = 'wait.png'`)).rows[0]);
    await mediaRepo.claimForProcessing(api.running.rt.pool, row.id, 'run_cli');
    await (await api.running.rt.queues.get('ingest').getJob(row.id))!.updateProgress(60);
    await waitFor(async () => lines.some((l) => l.startsWith('processing 60%')));
    await mediaRepo.markFailed(api.running.rt.pool, row.id, 'MEDIA_REJECTED', 'test', { claimToken: 'run_cli' });
    const media = await waiting;
    expect(media).toMatchObject({ id: row.id, status: 'failed' });
    expect(lines).toContain('processing 60%\n');
  });
});
