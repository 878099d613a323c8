/**
 * Video normalization with the real ffmpeg/ffprobe 5.1 on generated clips: remux vs transcode,
 * the 16 MB budget, faststart, metadata, the poster, the tool runs a remux costs (strace), abort
 * (fitting large inputs: normalize-fit.test.ts).
 */
import { execFile } from 'node:child_process';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { VIDEO_LIMITS } from '../../src/pipeline/ffmpeg/av-limits.js';
import { normalize } from '../../src/pipeline/normalize.js';
import { normalizeVideo } from '../../src/pipeline/normalize-video.js';
import { fixture } from '../fixtures/generate.js';
import { ffprobe, input, packetMd5, processesMentioning, scratch, topLevelBoxes, traceMediaTools, useScratch } from './normalize-helpers.js';

useScratch();
const run = promisify(execFile);

function streams(p: Awaited<ReturnType<typeof ffprobe>>, type: string): Array<Record<string, unknown>> {
  return p.streams.filter((s) => s.codec_type === type);
}

async function expectFaststartMp4(path: string): Promise<void> {
  const boxes = await topLevelBoxes(path);
  expect(boxes[0]).toBe('ftyp');
  expect(boxes.indexOf('moov')).toBeGreaterThan(-1);
  expect(boxes.indexOf('moov')).toBeLessThan(boxes.indexOf('mdat'));
}

describe('(5) WebM VP9/Opus 30 s', () => {
  it('→ MP4 H.264/AAC, ffprobe-readable, same duration ±100 ms, moov before mdat, poster', async () => {
    const src = await fixture('webmVp9Opus30s');
    const inDurationMs = Number((await ffprobe(src)).format.duration) * 1000;
    const progress: number[] = [];
    const out = await normalize(await input(src, 'video/webm', 'video', { onProgress: (p) => progress.push(p) }));
    expect(out).toMatchObject({ mimeType: 'video/mp4', transform: 'converted', width: 320, height: 240, pages: null, waveform: null });
    const p = await ffprobe(out.outputPath);
    expect(p.format.format_name).toContain('mp4');
    expect(streams(p, 'video')).toHaveLength(1);
    expect(streams(p, 'video')[0]).toMatchObject({ codec_name: 'h264', pix_fmt: 'yuv420p', width: 320, height: 240 });
    expect(streams(p, 'audio')[0]).toMatchObject({ codec_name: 'aac' });
    expect(Math.abs(Number(p.format.duration) * 1000 - inDurationMs)).toBeLessThanOrEqual(100);
    expect(Math.abs(out.durationMs! - inDurationMs)).toBeLessThanOrEqual(100);
    await expectFaststartMp4(out.outputPath);

    expect(out.variants).toHaveLength(1);
    const poster = out.variants[0]!;
    expect(poster).toMatchObject({ name: 'poster', mimeType: 'image/jpeg' });
    const pm = await sharp(poster.path).metadata();
    expect([pm.format, pm.width, pm.height]).toEqual(['jpeg', 320, 240]);

    // Progress: increasing, ends at 100.
    expect(progress[progress.length - 1]).toBe(100);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
  });
});

describe('(6) compliant MP4', () => {
  it('is remuxed: packets identical to the input, tags gone, moov moved to the front', async () => {
    const src = await fixture('mp4Compliant');
    const before = await ffprobe(src);
    expect(before.format.tags?.title).toBe('Fixture title');
    expect((await topLevelBoxes(src)).indexOf('moov')).toBeGreaterThan((await topLevelBoxes(src)).indexOf('mdat'));

    const out = await normalize(await input(src, 'video/mp4', 'video'));
    expect(out).toMatchObject({ mimeType: 'video/mp4', transform: 'remuxed', width: 320, height: 240, durationMs: 4000 });
    expect(await packetMd5(out.outputPath, 'v')).toBe(await packetMd5(src, 'v'));
    expect(await packetMd5(out.outputPath, 'a')).toBe(await packetMd5(src, 'a'));
    const after = await ffprobe(out.outputPath);
    expect(after.format.tags?.title).toBeUndefined();
    expect(after.format.tags?.location).toBeUndefined();
    await expectFaststartMp4(out.outputPath);
    // The facts come from the input's probe (the output is not probed): they are the stored file's.
    expect(out.durationMs).toBe(Math.round(Number(after.format.duration) * 1000));
    expect([out.width, out.height]).toEqual([streams(after, 'video')[0]!.width, streams(after, 'video')[0]!.height]);
    expect(out.variants).toEqual([{ name: 'poster', path: expect.stringMatching(/poster\.jpg$/), mimeType: 'image/jpeg' }]);
    const pm = await sharp(out.variants[0]!.path).metadata();
    expect([pm.format, pm.width, pm.height]).toEqual(['jpeg', 320, 240]);
  });

  it('a portrait (rotated) clip is remuxed and reported at its displayed size, its poster upright', async () => {
    const out = await normalize(await input(await fixture('mp4Rotated'), 'video/mp4', 'video'));
    expect(out).toMatchObject({ transform: 'remuxed', width: 240, height: 320, durationMs: 3000 });
    const pm = await sharp(out.variants[0]!.path).metadata();
    expect([pm.width, pm.height]).toEqual([240, 320]);
  });

  it('a compliant MP4 costs one ffprobe and one ffmpeg run (remux and poster together); other containers are probed after', async () => {
    const src = await fixture('mp4Compliant'); // before tracing: the fixture cache is keyed by the ffmpeg path
    const mkv = join(await scratch(), 'compliant.mkv');
    await run(process.env.FFMPEG_PATH || 'ffmpeg', ['-nostdin', '-v', 'error', '-i', src, '-map', '0', '-c', 'copy', '-f', 'matroska', mkv]);
    const tracer = await traceMediaTools();
    try {
      const runs = async (): Promise<Record<string, number>> => {
        const names = (await readdir(tracer.dir)).filter((n) => n.endsWith('.trace'));
        return { ffprobe: names.filter((n) => n.startsWith('ffprobe.')).length, ffmpeg: names.filter((n) => n.startsWith('ffmpeg.')).length };
      };
      const mp4 = await normalize(await input(src, 'video/mp4', 'video'));
      expect(mp4).toMatchObject({ transform: 'remuxed', durationMs: 4000 });
      expect(await runs()).toEqual({ ffprobe: 1, ffmpeg: 1 });

      const fromMkv = await normalize(await input(mkv, 'video/matroska', 'video'));
      expect(fromMkv).toMatchObject({ transform: 'remuxed', width: 320, height: 240 });
      expect((await sharp(fromMkv.variants[0]!.path).metadata()).width).toBe(320);
      expect(await runs()).toEqual({ ffprobe: 3, ffmpeg: 2 });
      expect(Math.abs(fromMkv.durationMs! - Number((await ffprobe(fromMkv.outputPath)).format.duration) * 1000)).toBeLessThanOrEqual(1);
    } finally {
      tracer.restore();
    }
  });

  it('H.264 with PCM audio: video packets copied, audio encoded to AAC', async () => {
    const src = await fixture('movPcm');
    const out = await normalize(await input(src, 'video/quicktime', 'video'));
    expect(out.transform).toBe('converted');
    expect(await packetMd5(out.outputPath, 'v')).toBe(await packetMd5(src, 'v'));
    expect(streams(await ffprobe(out.outputPath), 'audio')[0]).toMatchObject({ codec_name: 'aac' });
  });
});

describe('(7) 60 s 1080p high bitrate', () => {
  it('→ ≤ 16 MB, 720p, ffprobe-readable, duration kept', async () => {
    const src = await fixture('mp4HighBitrate1080p60s');
    expect((await stat(src)).size).toBeGreaterThan(16_000_000);
    const out = await normalize(await input(src, 'video/mp4', 'video'));
    const size = (await stat(out.outputPath)).size;
    expect(size).toBeLessThanOrEqual(16_000_000);
    expect(out).toMatchObject({ transform: 'transcoded', width: 1280, height: 720 });
    const p = await ffprobe(out.outputPath);
    expect(streams(p, 'video')[0]).toMatchObject({ codec_name: 'h264', width: 1280, height: 720, pix_fmt: 'yuv420p' });
    expect(Math.abs(Number(p.format.duration) - 60)).toBeLessThan(0.2);
    await expectFaststartMp4(out.outputPath);
  }, 120_000);
});

describe('the byte budget', () => {
  it('a compliant clip over the limit is re-encoded to fit it, its audio at 64k since every bit counts', async () => {
    const src = await fixture('mp4Compliant');
    const limits = { ...VIDEO_LIMITS, maxBytes: 300_000 };
    const out = await normalizeVideo(await input(src, 'video/mp4', 'video'), limits);
    expect(out.transform).toBe('transcoded');
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(300_000);
    const audio = streams(await ffprobe(out.outputPath), 'audio')[0]!;
    expect(audio).toMatchObject({ codec_name: 'aac' });
    expect(Number(audio.bit_rate)).toBeLessThan(72_000);
  });

  it('an encode that still overshoots is redone at a lower cap (the refit loop), and then fits', async () => {
    const src = await fixture('webmVp9Opus30s');
    const natural = (await stat((await normalizeVideo(await input(src, 'video/webm', 'video'))).outputPath)).size;
    const lines: string[] = [];
    const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const maxBytes = Math.floor(natural * 0.6);
    // A budget estimate 6x too generous (overheadRatio −5) leaves the first encode to crf, which
    // lands near the natural size, over the limit; the refit must bind (a low floor lets it).
    const limits = { ...VIDEO_LIMITS, maxBytes, overheadRatio: -5, minVideoKbps: 20 };
    const out = await normalizeVideo(await input(src, 'video/webm', 'video', { log }), limits);
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(maxBytes);
    const retries = lines.filter((l) => l.includes('encoding again at a lower bitrate'));
    expect(retries.length).toBeGreaterThanOrEqual(1);
    expect(JSON.parse(retries[0]!)).toMatchObject({ maxBytes });
  });

  it('refuses (FILE_TOO_LARGE), naming the longest duration that fits, when the budget is below the floor', async () => {
    const src = await fixture('webmVp9Opus30s');
    const err = await normalizeVideo(await input(src, 'video/webm', 'video'), { ...VIDEO_LIMITS, maxBytes: 500_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe('FILE_TOO_LARGE');
    expect((err as PermanentError).message).toBe('a video of 30 s cannot fit 0.5 MB even at 240p; at most 16 s fits');
  });
});

describe('failures', () => {
  it('a file that is not what was sniffed is MEDIA_REJECTED by the probe', async () => {
    const err = await normalize(await input(await fixture('webmVp9Opus30s'), 'video/mp4', 'video')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe('MEDIA_REJECTED');
    expect((err as PermanentError).message).toMatch(/^probing the media: the media could not be decoded/);
  });

  it('abort kills ffmpeg at once and rejects with the abort reason', async () => {
    const src = await fixture('mp4HighBitrate1080p60s');
    const controller = new AbortController();
    const req = await input(src, 'video/mp4', 'video', { signal: controller.signal });
    const started = performance.now();
    const pending = normalize(req).catch((e: unknown) => e);
    // Abort once the transcode is running (its output file is in the scratch dir's command line).
    for (let i = 0; i < 100 && (await processesMentioning(req.scratchDir)).length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect((await processesMentioning(req.scratchDir)).length).toBeGreaterThan(0);
    controller.abort(new Error('job cancelled'));
    const err = await pending;
    expect((err as Error).message).toBe('job cancelled');
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(await processesMentioning(req.scratchDir)).toEqual([]);
  });
});
