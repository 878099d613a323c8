/**
 * Every kind through the running service (real worker, sharp, ffmpeg, document checks): what a
 * client uploads, what it gets back, and what the stored bytes really are (ffprobe/sharp on the
 * downloaded content). The normalizers' own edge cases live in test/integration/normalize-*.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, type FixtureName } from '../fixtures/generate.js';
import { sha256 } from '../helpers/media.js';
import { multipart, startService, waitSettled, type TestService } from '../helpers/service.js';

let svc: TestService;
let app: { appId: string; apiKey: string };
let tmp: string;

beforeAll(async () => {
  svc = await startService();
  app = await svc.newApp();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'mf-kinds-'));
});
afterAll(async () => {
  await svc?.stop();
  await rm(tmp, { recursive: true, force: true });
});

async function ingest(name: FixtureName, kind: string | null, type: string, filename: string) {
  const bytes = await readFile(await fixture(name));
  const res = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart(kind ? { kind } : {}, { bytes, name: filename, type }) });
  const body = (await res.json()) as any;
  if (res.status !== 202) return { status: res.status, body, media: null as any, content: null as Buffer | null };
  const media = await waitSettled(svc, app.apiKey, body.data.id, 120_000);
  let content: Buffer | null = null;
  if (media.status === 'ready') {
    const c = await svc.call(`/v1/media/${media.id}/content`, { key: app.apiKey });
    content = Buffer.from(await c.arrayBuffer());
    expect(sha256(content)).toBe(media.checksum.value);
  }
  return { status: res.status, body, media, content };
}

function probe(content: Buffer, name: string): any {
  const file = path.join(tmp, name);
  return writeFile(file, content).then(() => JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_streams', '-show_format', file]).toString()));
}

describe('images', () => {
  it('stores a rotated phone photo upright, with no EXIF left', async () => {
    const r = await ingest('jpegExifOrientation6', 'image', 'image/jpeg', 'IMG_0001.JPG');
    expect(r.media.status).toBe('ready');
    const meta = await sharp(r.content!).metadata();
    expect(meta.exif).toBeUndefined();
    expect(meta.orientation ?? 1).toBe(1);
    expect([r.media.width, r.media.height]).toEqual([meta.width, meta.height]);
    expect(r.media.height).toBeGreaterThan(r.media.width);
  });

  it('keeps an animated GIF animated and infers the kind when none is given', async () => {
    const r = await ingest('gifAnimated', null, 'image/gif', 'a.gif');
    expect(r.media.status).toBe('ready');
    expect(r.media.kind).toBe('image');
    expect((await sharp(r.content!, { pages: -1 }).metadata()).pages).toBeGreaterThan(1);
  });

  it('rejects a header-declared 50000x50000 PNG with MEDIA_REJECTED', async () => {
    const r = await ingest('png50000', 'image', 'image/png', 'bomb.png');
    expect(r.media.status).toBe('failed');
    expect(r.media.error.code).toBe('MEDIA_REJECTED');
  });

  it('makes a 512x512 WEBP sticker', async () => {
    const r = await ingest('pngAlpha', 'sticker', 'image/png', 's.png');
    expect(r.media.status).toBe('ready');
    expect(r.media.mimeType).toBe('image/webp');
    const meta = await sharp(r.content!).metadata();
    expect([meta.width, meta.height, meta.format]).toEqual([512, 512, 'webp']);
    expect(r.content!.length).toBeLessThanOrEqual(100_000);
  });
});

describe('video and audio', () => {
  it('converts WebM to MP4 H.264/AAC with moov first, and stores a poster variant', async () => {
    const r = await ingest('webmVp9Opus30s', 'video', 'video/webm', 'clip.webm');
    expect(r.media.status, JSON.stringify(r.media.error)).toBe('ready');
    expect(r.media.mimeType).toBe('video/mp4');
    expect(r.media.durationMs).toBeGreaterThan(29_000);
    const p = await probe(r.content!, 'out.mp4');
    expect(p.streams.map((s: any) => s.codec_name).sort()).toEqual(['aac', 'h264']);
    expect(r.content!.indexOf('moov')).toBeLessThan(r.content!.indexOf('mdat'));
    expect(r.media.variants.map((v: any) => v.name)).toEqual(['poster']);
  }, 180_000);

  it('remuxes a compliant MP4 instead of re-encoding it', async () => {
    const r = await ingest('mp4Compliant', 'video', 'video/mp4', 'ok.mp4');
    expect(r.media.status).toBe('ready');
    expect(r.media.transform).toBe('remuxed');
  });

  it('turns a WAV voice note into mono OGG Opus with a 64-value waveform', async () => {
    const r = await ingest('wav', 'voice_note', 'audio/wav', 'note.wav');
    expect(r.media.status, JSON.stringify(r.media.error)).toBe('ready');
    expect(r.media.mimeType).toBe('audio/ogg');
    expect(r.media.suggestedMessageType).toBe('ptt');
    expect(r.media.waveform).toHaveLength(64);
    const p = await probe(r.content!, 'note.ogg');
    expect(p.streams[0].codec_name).toBe('opus');
    expect(p.streams[0].channels).toBe(1);
  });

  it('keeps an MP3 as audio', async () => {
    const r = await ingest('mp3', 'audio', 'audio/mpeg', 'song.mp3');
    expect(r.media.status).toBe('ready');
    expect(r.media.mimeType).toBe('audio/mpeg');
    expect(r.media.durationMs).toBeGreaterThan(0);
  });
});

describe('documents', () => {
  it('stores PDF, DOCX and text as sent', async () => {
    for (const [name, type, file] of [['pdf', 'application/pdf', 'a.pdf'], ['docx', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'a.docx'], ['text', 'text/plain', 'a.txt']] as const) {
      const original = await readFile(await fixture(name));
      const r = await ingest(name, 'document', type, file);
      expect(r.media.status, `${name}: ${JSON.stringify(r.media.error)}`).toBe('ready');
      expect(r.media.transform).toBe('kept');
      expect(r.content!.equals(original)).toBe(true);
    }
  });

  it('rejects a DOCX zip bomb without inflating it', async () => {
    const r = await ingest('zipBomb', 'document', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'bomb.docx');
    expect(r.media.status).toBe('failed');
    expect(r.media.error.code).toBe('MEDIA_REJECTED');
  });
});
