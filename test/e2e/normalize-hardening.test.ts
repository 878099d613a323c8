/**
 * Acceptance 9 through the running service: uploads over HTTP, the worker's real ffmpeg/ffprobe
 * traced by strace, real Redis and PostgreSQL, the fs store. An HLS playlist disguised as an MP4
 * and the AVI that carries one are refused, no tool ever opens the canary files they name, and
 * the worker goes on with the next upload.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { multipart, startService, waitSettled, type TestService } from '../helpers/service.js';
import { fixture } from '../fixtures/generate.js';
import { aviWithGab2, hlsPlaylist } from '../fixtures/ssrf-media.js';
import { scratch, traceMediaTools, useScratch } from '../integration/normalize-helpers.js';

useScratch();

let svc: TestService;
let app: { apiKey: string };

beforeAll(async () => {
  svc = await startService();
  app = await svc.newApp();
});

afterAll(async () => {
  await svc?.stop();
});

async function upload(bytes: Uint8Array, name: string, type: string): Promise<{ status: number; body: any }> {
  const res = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({ kind: 'video' }, { bytes, name, type }) });
  return { status: res.status, body: await res.json() };
}

async function canaries(): Promise<{ dir: string; segments: string[] }> {
  const dir = await scratch();
  for (const n of ['passwd.ts', 'passwd.mp4']) await writeFile(join(dir, n), 'CANARY root:x:0:0\n');
  return { dir, segments: [`file://${dir}/passwd.ts`, `${dir}/passwd.mp4`, `concat:${dir}/passwd.ts|${dir}/passwd.mp4`] };
}

describe('(9) playlists uploaded as video', () => {
  it('an HLS playlist named clip.mp4 is 415 at the upload; no tool runs at all', async () => {
    const { segments } = await canaries();
    const tracer = await traceMediaTools();
    try {
      const { status, body } = await upload(hlsPlaylist(segments), 'clip.mp4', 'video/mp4');
      expect(status).toBe(415);
      expect(body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
      expect(await tracer.traces()).toEqual([]);
    } finally {
      tracer.restore();
    }
  });

  it('the AVI carrying one is accepted, then fails MEDIA_REJECTED; the worker never opens the canaries, and runs the next upload', async () => {
    const { dir, segments } = await canaries();
    const tracer = await traceMediaTools();
    try {
      const { status, body } = await upload(aviWithGab2(hlsPlaylist(segments)), 'clip.avi', 'video/x-msvideo');
      expect(status).toBe(202);
      const media = await waitSettled(svc, app.apiKey, body.data.id);
      expect(media.status).toBe('failed');
      expect(media.error).toEqual({ code: 'MEDIA_REJECTED', message: 'the AVI carries a subtitle stream that is not a subtitle (GAB2 payload of another format)' });
      const traces = await tracer.traces();
      // The worker did probe it (its scratch copy), and touched nothing the playlist names.
      expect(traces.length).toBeGreaterThanOrEqual(1);
      expect(traces.some((t) => /mediaflow-med_/.test(t))).toBe(true);
      for (const t of traces) {
        expect(t.includes(dir)).toBe(false);
        expect(t.includes('/etc/passwd')).toBe(false);
      }

      const next = await upload(await readFile(await fixture('mp4Compliant')), 'next.mp4', 'video/mp4');
      expect(next.status).toBe(202);
      const ready = await waitSettled(svc, app.apiKey, next.body.data.id);
      expect(ready).toMatchObject({ status: 'ready', mimeType: 'video/mp4', kind: 'video' });
    } finally {
      tracer.restore();
    }
  });
});
