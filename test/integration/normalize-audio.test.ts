/** Audio and voice-note normalization with the real ffmpeg/ffprobe 5.1 on generated tones. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { normalize } from '../../src/pipeline/normalize.js';
import { fixture } from '../fixtures/generate.js';
import { ffprobe, input, scratch, useScratch } from './normalize-helpers.js';

useScratch();

async function expectOggOpusMono(path: string): Promise<void> {
  const p = await ffprobe(path);
  expect(p.format.format_name).toBe('ogg');
  expect(p.streams).toHaveLength(1);
  expect(p.streams[0]).toMatchObject({ codec_type: 'audio', codec_name: 'opus', channels: 1, sample_rate: '48000' });
}

/** The fixtures ramp from silence to full scale over 3 s: the waveform must rise. */
function expectRisingWaveform(w: number[] | null): void {
  expect(w).toHaveLength(64);
  expect(Math.max(...w!)).toBe(100);
  expect(w!.every((v) => Number.isInteger(v) && v >= 0 && v <= 100)).toBe(true);
  expect(w![2]!).toBeLessThan(10);
  expect(w![32]!).toBeGreaterThan(35);
  expect(w![32]!).toBeLessThan(65);
  expect(w![60]!).toBeGreaterThan(85);
}

describe('(8) voice notes → OGG Opus mono', () => {
  it.each([
    ['wav', 'audio/wav'],
    ['mp3', 'audio/mpeg'],
  ] as const)('%s is encoded, with a 64-bar waveform and its duration', async (name, mime) => {
    const out = await normalize(await input(await fixture(name), mime, 'voice_note'));
    expect(out).toMatchObject({ mimeType: 'audio/ogg', transform: 'converted', width: null, height: null, variants: [] });
    expect(out.outputPath.endsWith('voice.ogg')).toBe(true);
    await expectOggOpusMono(out.outputPath);
    expect(Math.abs(out.durationMs! - 3000)).toBeLessThanOrEqual(60);
    expectRisingWaveform(out.waveform);
  });

  it('mono OGG Opus is kept byte for byte, and still gets its waveform', async () => {
    const src = await fixture('oggOpusMono');
    const out = await normalize(await input(src, 'audio/ogg; codecs=opus', 'voice_note'));
    expect(out).toMatchObject({ outputPath: src, mimeType: 'audio/ogg', transform: 'kept' });
    expect(await readFile(out.outputPath)).toEqual(await readFile(src));
    expectRisingWaveform(out.waveform);
    expect(Math.abs(out.durationMs! - 3000)).toBeLessThanOrEqual(60);
  });

  it('a browser recording without a duration is measured and encoded', async () => {
    const out = await normalize(await input(await fixture('webmOpusNoDuration'), 'audio/webm', 'voice_note'));
    await expectOggOpusMono(out.outputPath);
    expect(out.transform).toBe('converted');
    expect(Math.abs(out.durationMs! - 3000)).toBeLessThanOrEqual(60);
  });

  it('a file with no audio stream is refused', async () => {
    const err = await normalize(await input(await fixture('mp4Rotated'), 'audio/mp4', 'voice_note')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).message).toBe('the file has no audio stream');
  });
});

describe('audio', () => {
  it.each([
    ['mp3', 'audio/mpeg', 3030],
    ['m4a', 'audio/mp4', 3000],
    ['oggOpusMono', 'audio/ogg', 3007],
  ] as const)('%s is playable: kept as sent', async (name, mime, ms) => {
    const src = await fixture(name);
    const out = await normalize(await input(src, mime, 'audio'));
    expect(out).toMatchObject({ outputPath: src, mimeType: mime, transform: 'kept', durationMs: ms, waveform: null });
  });

  it.each([
    ['wav', 'audio/wav'],
    ['flac', 'audio/flac'],
  ] as const)('%s → AAC in MP4', async (name, mime) => {
    const out = await normalize(await input(await fixture(name), mime, 'audio'));
    expect(out).toMatchObject({ mimeType: 'audio/mp4', transform: 'converted' });
    expect(Math.abs(out.durationMs! - 3000)).toBeLessThanOrEqual(60);
    const p = await ffprobe(out.outputPath);
    expect(p.format.format_name).toContain('mp4');
    expect(p.streams).toHaveLength(1);
    expect(p.streams[0]).toMatchObject({ codec_name: 'aac', channels: 2 });
  });

  it('bytes that are not audio are MEDIA_REJECTED', async () => {
    const dir = await scratch();
    const junk = join(dir, 'junk.mp3');
    await writeFile(junk, Buffer.alloc(4096, 0x41));
    const err = await normalize(await input(junk, 'audio/mpeg', 'audio')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe('MEDIA_REJECTED');
  });
});
