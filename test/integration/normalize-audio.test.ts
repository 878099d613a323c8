/** Audio and voice-note normalization with the real ffmpeg/ffprobe 5.1 on generated tones. */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { normalize } from '../../src/pipeline/normalize.js';
import { fixture } from '../fixtures/generate.js';
import { ffprobe, input, packetMd5, rejection, scratch, useScratch } from './normalize-helpers.js';

const execFileAsync = promisify(execFile);

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
    // An MP4 (a phone's recorder) is encoded while it is probed: the same result must come out.
    ['m4a', 'audio/mp4'],
  ] as const)('%s is encoded, with a 64-bar waveform and its duration', async (name, mime) => {
    const out = await normalize(await input(await fixture(name), mime, 'voice_note'));
    expect(out).toMatchObject({ mimeType: 'audio/ogg', transform: 'converted', width: null, height: null, variants: [] });
    expect(out.outputPath.endsWith('voice.ogg')).toBe(true);
    await expectOggOpusMono(out.outputPath);
    expect(Math.abs(out.durationMs! - 3000)).toBeLessThanOrEqual(60);
    expectRisingWaveform(out.waveform);
  });

  it('mono OGG Opus is remuxed only: the same Opus packets, no comment tags, and its waveform', async () => {
    const src = await fixture('oggOpusTagged');
    const before = await ffprobe(src);
    expect(before.format.tags ?? before.streams[0]!.tags).toMatchObject({ artist: 'Fixture Artist', title: 'Secret Title' });
    const out = await normalize(await input(src, 'audio/ogg; codecs=opus', 'voice_note'));
    expect(out).toMatchObject({ mimeType: 'audio/ogg', transform: 'remuxed' });
    expect(out.outputPath).not.toBe(src);
    await expectOggOpusMono(out.outputPath);
    expect(await packetMd5(out.outputPath, 'a')).toBe(await packetMd5(src, 'a'));
    const after = await ffprobe(out.outputPath);
    expect({ ...after.format.tags, ...(after.streams[0]!.tags as Record<string, string> | undefined) }).toEqual({});
    const bytes = await readFile(out.outputPath);
    for (const s of ['Fixture Artist', 'Secret Title', '+48.8577', 'Lavc', 'libopus']) expect(bytes.includes(s), s).toBe(false);
    expectRisingWaveform(out.waveform);
    expect(Math.abs(out.durationMs! - 3000)).toBeLessThanOrEqual(60);
  });

  it('a browser recording without a duration is measured and encoded', async () => {
    const out = await normalize(await input(await fixture('webmOpusNoDuration'), 'audio/webm', 'voice_note'));
    await expectOggOpusMono(out.outputPath);
    expect(out.transform).toBe('converted');
    expect(Math.abs(out.durationMs! - 3000)).toBeLessThanOrEqual(60);
  });

  it('a 3-minute M4A note gets the bitrate its duration needs, not the one guessed while it was probed', async () => {
    const src = join(await scratch(), 'long-note.m4a');
    await execFileAsync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=frequency=300:duration=180', '-ac', '1', '-c:a', 'aac', '-b:a', '24k', '-f', 'ipod', '-y', src]);
    const out = await normalize(await input(src, 'audio/mp4', 'voice_note'));
    await expectOggOpusMono(out.outputPath);
    expect(Math.abs(out.durationMs! - 180_000)).toBeLessThanOrEqual(100);
    // 512 KB for 180 s is 22 kbps (the guess runs at 32): the stored note is sized for its length.
    const bytes = (await readFile(out.outputPath)).length;
    expect(bytes).toBeLessThanOrEqual(540_000);
    expect(bytes).toBeGreaterThan(300_000);
  });

  it('an MP4 whose first stream is video, not audio, is still a voice note from its audio stream', async () => {
    const src = join(await scratch(), 'video-first.mp4');
    await execFileAsync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'color=c=blue:s=64x48:d=2', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=2',
      '-map', '0:v', '-map', '1:a', '-c:v', 'libx264', '-c:a', 'aac', '-shortest', '-y', src]);
    const out = await normalize(await input(src, 'audio/mp4', 'voice_note'));
    await expectOggOpusMono(out.outputPath);
    expect(Math.abs(out.durationMs! - 2000)).toBeLessThanOrEqual(100);
  });

  it("an app's smaller delivered limit sizes the note for it, and a note that cannot fit even at the lowest bitrate is FILE_TOO_LARGE", async () => {
    const src = join(await scratch(), 'two-minutes.m4a');
    await execFileAsync('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'anoisesrc=d=120:a=0.2', '-ac', '1', '-c:a', 'aac', '-b:a', '32k', '-f', 'ipod', '-y', src]);
    // At the kind's own 32 kbps, two minutes of noise is about 480 KB: over this app's 300 KB.
    const out = await normalize(await input(src, 'audio/mp4', 'voice_note', { deliveredLimitBytes: 300_000 }));
    await expectOggOpusMono(out.outputPath);
    expect((await readFile(out.outputPath)).length).toBeLessThanOrEqual(300_000);

    const err = await rejection(normalize(await input(src, 'audio/mp4', 'voice_note', { deliveredLimitBytes: 20_000 })));
    expect(err.code).toBe('FILE_TOO_LARGE');
    expect(err.message).toMatch(/^the voice note is \d+ bytes as Opus at 16 kbps \(the lowest for its length\), over the limit of 20000 bytes; send a shorter note$/);
  });

  it('a file with no audio stream is refused', async () => {
    const err = await normalize(await input(await fixture('mp4Rotated'), 'audio/mp4', 'voice_note')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).message).toBe('the file has no audio stream');
  });
});

describe('audio', () => {
  it.each([
    ['mp3', 'audio/mpeg', 3030, 'mp3'],
    ['m4a', 'audio/mp4', 3000, 'mov,mp4,m4a,3gp,3g2,mj2'],
    ['oggOpusMono', 'audio/ogg', 3007, 'ogg'],
  ] as const)('%s is playable: its packets kept, remuxed into the same format', async (name, mime, ms, format) => {
    const src = await fixture(name);
    const out = await normalize(await input(src, mime, 'audio'));
    expect(out).toMatchObject({ mimeType: mime, transform: 'remuxed', durationMs: ms, waveform: null });
    expect(out.outputPath).not.toBe(src);
    expect((await ffprobe(out.outputPath)).format.format_name).toBe(format);
    expect(await packetMd5(out.outputPath, 'a')).toBe(await packetMd5(src, 'a'));
  });

  it('a tagged MP3 with cover art comes out without ID3 tags or pictures, its audio packets identical', async () => {
    const src = await fixture('mp3TaggedCover');
    const inBytes = await readFile(src);
    // Preconditions: ID3v2 with an APIC cover in front, ID3v1 at the end, tags ffprobe sees.
    expect(inBytes.subarray(0, 3).toString('latin1')).toBe('ID3');
    expect(inBytes.includes('APIC')).toBe(true);
    expect(inBytes.subarray(-128, -125).toString('latin1')).toBe('TAG');
    const before = await ffprobe(src);
    expect(before.format.tags).toMatchObject({ artist: 'Fixture Artist', title: 'Secret Title' });
    expect(before.streams.map((s) => [s.codec_type, s.codec_name])).toEqual([['audio', 'mp3'], ['video', 'mjpeg']]);

    const out = await normalize(await input(src, 'audio/mpeg', 'audio'));
    expect(out).toMatchObject({ mimeType: 'audio/mpeg', transform: 'remuxed', durationMs: 3030 });
    const bytes = await readFile(out.outputPath);
    // An MPEG audio frame sync first: no ID3v2 header; no ID3v1 trailer; nothing of the tags or cover.
    expect(bytes[0]).toBe(0xff);
    expect(bytes[1]! & 0xe0).toBe(0xe0);
    expect(bytes.subarray(-128, -125).toString('latin1')).not.toBe('TAG');
    for (const s of ['ID3', 'APIC', 'TPE1', 'Fixture Artist', 'Secret Title', 'Rue Fixture', 'Album cover', 'JFIF']) expect(bytes.includes(s), s).toBe(false);
    const after = await ffprobe(out.outputPath);
    expect(after.format.tags).toBeUndefined();
    expect(after.streams.map((s) => [s.codec_type, s.codec_name])).toEqual([['audio', 'mp3']]);
    expect(await packetMd5(out.outputPath, 'a')).toBe(await packetMd5(src, 'a'));
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
