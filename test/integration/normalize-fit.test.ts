/**
 * Inputs larger than the delivered limit made to fit it, with the real ffmpeg/ffprobe 5.1 on
 * generated media (cached in the fixture directory in os.tmpdir(), never in the repo): a phone's
 * 50 MB 1080p clip, a 20-minute video that cannot fit, audio over the limit, and per-app limits
 * passed as `deliveredLimitBytes`. No services.
 */
import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { normalize } from '../../src/pipeline/normalize.js';
import { fixture } from '../fixtures/generate.js';
import { ffprobe, input, topLevelBoxes, useScratch } from './normalize-helpers.js';

useScratch();
const run = promisify(execFile);

const MB16 = 16_000_000;

function stream(p: Awaited<ReturnType<typeof ffprobe>>, type: 'video' | 'audio'): Record<string, unknown> {
  const s = p.streams.find((x) => x.codec_type === type);
  if (!s) throw new Error(`no ${type} stream`);
  return s;
}

async function expectFaststart(path: string): Promise<void> {
  const boxes = await topLevelBoxes(path);
  expect(boxes[0]).toBe('ftyp');
  expect(boxes.indexOf('moov')).toBeGreaterThan(-1);
  expect(boxes.indexOf('moov')).toBeLessThan(boxes.indexOf('mdat'));
}

/** Decodes every frame of every stream: what a player does, with any error reported. */
async function expectPlays(path: string): Promise<void> {
  const { stderr } = await run(process.env.FFMPEG_PATH || 'ffmpeg', ['-nostdin', '-v', 'error', '-i', path, '-f', 'null', '-'], { maxBuffer: 1 << 20 });
  expect(stderr).toBe('');
}

async function refusal(p: Promise<unknown>): Promise<PermanentError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PermanentError);
  return err as PermanentError;
}

describe("a phone's 40 s 1080p clip of ~50 MB", () => {
  it('→ ≤ 16 MB H.264 + AAC MP4, faststart, same duration ±0.1 s, plays; progress along the way', async () => {
    const src = await fixture('mp4Phone1080p40s');
    const before = await ffprobe(src);
    // What a phone sends: 45–50 MB, 1080p H.264 High at ~10 Mbit/s, AAC.
    const inBytes = (await stat(src)).size;
    expect(inBytes).toBeGreaterThan(45_000_000);
    expect(inBytes).toBeLessThanOrEqual(50_000_000);
    expect(stream(before, 'video')).toMatchObject({ codec_name: 'h264', profile: 'High', width: 1920, height: 1080 });
    expect((inBytes * 8) / Number(before.format.duration)).toBeGreaterThan(9_500_000);
    expect(stream(before, 'audio')).toMatchObject({ codec_name: 'aac' });

    const progress: number[] = [];
    const out = await normalize(await input(src, 'video/mp4', 'video', { onProgress: (p) => progress.push(p) }));

    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(MB16);
    expect(out).toMatchObject({ mimeType: 'video/mp4', transform: 'transcoded', width: 1280, height: 720 });
    const after = await ffprobe(out.outputPath);
    expect(after.format.format_name).toContain('mp4');
    expect(stream(after, 'video')).toMatchObject({ codec_name: 'h264', pix_fmt: 'yuv420p', width: 1280, height: 720 });
    expect(stream(after, 'audio')).toMatchObject({ codec_name: 'aac' });
    expect(Math.abs(Number(after.format.duration) - Number(before.format.duration))).toBeLessThanOrEqual(0.1);
    expect(Math.abs(out.durationMs! / 1000 - Number(before.format.duration))).toBeLessThanOrEqual(0.1);
    await expectFaststart(out.outputPath);
    await expectPlays(out.outputPath);

    // The encode reported as it went: several steps below 100, increasing, then 100.
    expect(progress.at(-1)).toBe(100);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
    expect(progress.filter((p) => p > 0 && p < 100).length).toBeGreaterThanOrEqual(3);
  }, 600_000);
});

describe('a video too long for the limit even at the floor', () => {
  it('20 minutes of 1080p → FILE_TOO_LARGE naming the longest duration that fits', async () => {
    const src = await fixture('mp4Long1080p20min');
    const err = await refusal(normalize(await input(src, 'video/mp4', 'video')));
    expect(err.code).toBe('FILE_TOO_LARGE');
    expect(err.message).toBe('a video of 20 min cannot fit 16 MB even at 480p; at most 9 min 38 s fits');
  }, 120_000);
});

describe('the delivered limit comes with the input (per-app overrides)', () => {
  it('a 30 s clip fitted to 1 MB: 64k audio, the video gets the rest, and the limit holds', async () => {
    const src = await fixture('webmVp9Opus30s');
    const out = await normalize(await input(src, 'video/webm', 'video', { deliveredLimitBytes: 1_000_000 }));
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(1_000_000);
    const p = await ffprobe(out.outputPath);
    expect(stream(p, 'video')).toMatchObject({ codec_name: 'h264' });
    expect(Number(stream(p, 'audio').bit_rate)).toBeLessThan(72_000);
    await expectPlays(out.outputPath);
  }, 120_000);

  it('the same clip refused at 0.5 MB, saying how long a video could be', async () => {
    const src = await fixture('webmVp9Opus30s');
    const err = await refusal(normalize(await input(src, 'video/webm', 'video', { deliveredLimitBytes: 500_000 })));
    expect(err.code).toBe('FILE_TOO_LARGE');
    expect(err.message).toBe('a video of 30 s cannot fit 0.5 MB even at 240p; at most 16 s fits');
  });
});

describe('audio over the limit', () => {
  it('a 19.2 MB WAV → AAC in MP4 within 16 MB, same duration', async () => {
    const src = await fixture('wav100s');
    expect((await stat(src)).size).toBeGreaterThan(MB16);
    const out = await normalize(await input(src, 'audio/wav', 'audio'));
    expect(out).toMatchObject({ mimeType: 'audio/mp4', transform: 'converted' });
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(MB16);
    const p = await ffprobe(out.outputPath);
    expect(p.streams).toHaveLength(1);
    expect(stream(p, 'audio')).toMatchObject({ codec_name: 'aac', channels: 2 });
    expect(Math.abs(Number(p.format.duration) - 100)).toBeLessThanOrEqual(0.1);
  }, 120_000);

  it('a playable MP3 over a per-app limit is re-encoded to AAC at the bitrate that fits', async () => {
    const src = await fixture('mp3Noise60s');
    expect((await stat(src)).size).toBeGreaterThan(500_000);
    const out = await normalize(await input(src, 'audio/mpeg', 'audio', { deliveredLimitBytes: 500_000 }));
    expect(out).toMatchObject({ mimeType: 'audio/mp4', transform: 'converted' });
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(500_000);
    const p = await ffprobe(out.outputPath);
    expect(stream(p, 'audio')).toMatchObject({ codec_name: 'aac' });
    expect(Math.abs(Number(p.format.duration) - 60)).toBeLessThanOrEqual(0.1);
    await expectPlays(out.outputPath);
  }, 120_000);

  it('below 32 kbit/s mono it is refused, naming the longest duration that fits', async () => {
    const src = await fixture('mp3Noise60s');
    const err = await refusal(normalize(await input(src, 'audio/mpeg', 'audio', { deliveredLimitBytes: 200_000 })));
    expect(err.code).toBe('FILE_TOO_LARGE');
    expect(err.message).toBe('an audio file of 1 min cannot fit 0.2 MB even at 32 kbit/s mono; at most 48 s fits');
  });
});
