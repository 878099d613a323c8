/**
 * The media tools held to exactly what they are for, with the real ffmpeg/ffprobe 5.1 (Debian 12).
 * What is real: ffmpeg, ffprobe (traced by strace where a run must not happen), files generated
 * here with the ffmpeg CLI; nothing is mocked.
 *
 * (9) Every ffmpeg/ffprobe run on an upload allows one demuxer, the forced one (`-format_whitelist`):
 *     each format we accept still reads under it, and a demuxer nested in another (AVI's GAB2) is
 *     refused. A file with more streams than the cap is refused from the probe, before ffmpeg runs.
 *     sharp, which decodes in-process, can run only the libvips loaders of the formats we accept.
 */
import { execFile } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { MediaKind } from '../../src/domain/kinds.js';
import { MAX_STREAMS } from '../../src/pipeline/ffmpeg/av-limits.js';
import { demuxerFor } from '../../src/pipeline/ffmpeg/demuxer.js';
import { probeMedia } from '../../src/pipeline/ffmpeg/probe-media.js';
import { normalize } from '../../src/pipeline/normalize.js';
import { fixture } from '../fixtures/generate.js';
import { ffprobe, input, rejection, scratch, traceMediaTools, useScratch } from './normalize-helpers.js';

useScratch();
const run = promisify(execFile);

async function ffmpeg(args: string[]): Promise<void> {
  await run(process.env.FFMPEG_PATH || 'ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args], { maxBuffer: 1 << 24 });
}

const VIDEO_IN = ['-f', 'lavfi', '-i', 'testsrc2=s=64x48:r=10:d=1'];
const AUDIO_IN = ['-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=1'];
const AV_IN = [...VIDEO_IN, ...AUDIO_IN];

/** AMR-NB by hand (Debian's ffmpeg has the decoder, not the encoder): the magic, then 50 frames of 20 ms at 12.2 kbit/s. */
function amrNb(): Buffer {
  const frame = Buffer.alloc(32);
  frame[0] = 0x3c;
  return Buffer.concat([Buffer.from('#!AMR\n', 'latin1'), ...new Array<Buffer>(50).fill(frame)]);
}

/** One small valid file per sniffed type that is given to ffmpeg, made by the encoder and muxer that phones and browsers use. */
const FORMATS: Array<{ mime: string; kind: MediaKind; ext: string; make: string[] | (() => Buffer) }> = [
  { mime: 'video/mp4', kind: 'video', ext: 'mp4', make: [...AV_IN, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-f', 'mp4'] },
  { mime: 'video/quicktime', kind: 'video', ext: 'mov', make: [...AV_IN, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'pcm_s16le', '-f', 'mov'] },
  { mime: 'video/3gpp', kind: 'video', ext: '3gp', make: [...AV_IN, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-ar', '16000', '-ac', '1', '-f', '3gp'] },
  { mime: 'video/webm', kind: 'video', ext: 'webm', make: [...AV_IN, '-c:v', 'libvpx', '-deadline', 'realtime', '-b:v', '100k', '-c:a', 'libopus', '-f', 'webm'] },
  { mime: 'video/matroska', kind: 'video', ext: 'mkv', make: [...AV_IN, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'flac', '-f', 'matroska'] },
  { mime: 'video/vnd.avi', kind: 'video', ext: 'avi', make: [...AV_IN, '-c:v', 'mpeg4', '-c:a', 'libmp3lame', '-f', 'avi'] },
  { mime: 'audio/mp4', kind: 'audio', ext: 'm4a', make: [...AUDIO_IN, '-c:a', 'aac', '-f', 'ipod'] },
  { mime: 'audio/3gpp', kind: 'audio', ext: '3gp', make: [...AUDIO_IN, '-c:a', 'aac', '-ar', '16000', '-ac', '1', '-f', '3gp'] },
  { mime: 'audio/webm', kind: 'voice_note', ext: 'webm', make: [...AUDIO_IN, '-c:a', 'libopus', '-ac', '1', '-f', 'webm'] },
  { mime: 'audio/mpeg', kind: 'audio', ext: 'mp3', make: [...AUDIO_IN, '-c:a', 'libmp3lame', '-f', 'mp3'] },
  { mime: 'audio/ogg', kind: 'voice_note', ext: 'ogg', make: [...AUDIO_IN, '-c:a', 'libopus', '-ac', '1', '-f', 'ogg'] },
  { mime: 'audio/aac', kind: 'audio', ext: 'aac', make: [...AUDIO_IN, '-c:a', 'aac', '-f', 'adts'] },
  { mime: 'audio/amr', kind: 'audio', ext: 'amr', make: amrNb },
  { mime: 'audio/wav', kind: 'audio', ext: 'wav', make: [...AUDIO_IN, '-c:a', 'pcm_s16le', '-f', 'wav'] },
  { mime: 'audio/flac', kind: 'audio', ext: 'flac', make: [...AUDIO_IN, '-c:a', 'flac', '-f', 'flac'] },
  { mime: 'image/bmp', kind: 'image', ext: 'bmp', make: [...VIDEO_IN, '-frames:v', '1', '-c:v', 'bmp', '-f', 'image2'] },
];

describe('(9) only the forced demuxer may open', () => {
  it.each(FORMATS)('$mime ($kind): read and normalized with the format whitelist', async ({ mime, kind, ext, make }) => {
    const path = join(await scratch(), `in.${ext}`);
    if (typeof make === 'function') await writeFile(path, make());
    else await ffmpeg([...make, path]);
    const demuxer = demuxerFor(mime);
    expect(demuxer).not.toBeNull();
    if (kind !== 'image') {
      const probe = await probeMedia({ path, demuxer: demuxer! });
      expect(probe.audio ?? probe.video).not.toBeNull();
    }
    const out = await normalize(await input(path, mime, kind, { maxToolMs: 30_000 }));
    expect(out.outputPath).toMatch(/\.[a-z0-9]+$/);
  });

  it('a GAB2 subtitle inside an AVI is never handed to a second demuxer', async () => {
    const avi = await fixture('aviGab2Srt');
    // Left to itself, ffmpeg opens an inner demuxer (srt here; whatever the payload probes as, an HLS playlist included).
    expect((await ffprobe(avi)).streams.map((s) => s.codec_name)).toEqual(['rawvideo', 'subrip']);
    // Under the whitelist only `avi` may open: the inner one is refused, so the payload is never parsed.
    const probe = await probeMedia({ path: avi, demuxer: 'avi' });
    expect(probe.streamCounts).toEqual({ video: 1, audio: 0, attachedPictures: 0, other: 1 });
    expect(probe.unidentifiedSubtitles).toBe(1);
    const { stderr } = await run(process.env.FFPROBE_PATH || 'ffprobe', ['-hide_banner', '-loglevel', 'error', '-protocol_whitelist', 'file,pipe', '-format_whitelist', 'avi', '-f', 'avi', `file:${avi}`]);
    expect(stderr).toMatch(/\[srt @ [^\]]+\] Format not on whitelist 'avi'/);
  });
});

/** A 1 s clip: one 64x48 H.264 video stream and `audioStreams` AAC streams, all of the same tone. */
async function manyStreams(audioStreams: number): Promise<string> {
  const path = join(await scratch(), `streams-${audioStreams + 1}.mp4`);
  const maps = ['-map', '0:v'];
  for (let i = 0; i < audioStreams; i++) maps.push('-map', '1:a');
  await ffmpeg([...AV_IN, ...maps, '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '32k', '-f', 'mp4', path]);
  return path;
}

describe('(9) stream count cap', () => {
  it(`a file of more than ${MAX_STREAMS} streams is refused from the probe, for every ffmpeg kind, before ffmpeg runs`, async () => {
    const path = await manyStreams(MAX_STREAMS + 3);
    expect((await ffprobe(path)).streams).toHaveLength(MAX_STREAMS + 4);
    const tracer = await traceMediaTools();
    try {
      for (const [mime, kind] of [['video/mp4', 'video'], ['audio/mp4', 'audio'], ['audio/mp4', 'voice_note']] as const) {
        const err = await rejection(normalize(await input(path, mime, kind)));
        expect(err.code).toBe('MEDIA_REJECTED');
        expect(err.message).toBe(`the file has ${MAX_STREAMS + 4} streams, over the limit of ${MAX_STREAMS} (one video and one audio stream are kept)`);
      }
      const runs = (await readdir(tracer.dir)).filter((n) => n.endsWith('.trace'));
      expect(runs.filter((n) => n.startsWith('ffprobe.'))).toHaveLength(3);
      expect(runs.filter((n) => n.startsWith('ffmpeg.'))).toEqual([]);
    } finally {
      tracer.restore();
    }
  });

  it(`${MAX_STREAMS} streams (a phone clip with its metadata tracks is far fewer) still pass`, async () => {
    const path = await manyStreams(MAX_STREAMS - 1);
    const out = await normalize(await input(path, 'video/mp4', 'video'));
    const streams = (await ffprobe(out.outputPath)).streams.map((s) => s.codec_type);
    expect(streams).toEqual(['video', 'audio']);
  });
});

describe('(9) sharp runs only the loaders of accepted image formats', () => {
  const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="48"><rect width="64" height="48" fill="red"/></svg>';

  it('an SVG reaching the image step (a sniffer fooled into PNG) is never parsed by librsvg', async () => {
    const path = join(await scratch(), 'drawing.png');
    await writeFile(path, svg);
    const err = await rejection(normalize(await input(path, 'image/png', 'image')));
    expect(err.code).toBe('MEDIA_REJECTED');
    // Not "the content decodes as svg": the SVG loader is blocked, so libvips never read the file as one.
    expect(err.message).toBe('reading the image header: the image could not be decoded (Input file contains unsupported image format)');
    await expect(sharp(Buffer.from(svg)).metadata()).rejects.toThrow(/unsupported image format/);
  });

  it('the accepted formats still load, from files and buffers', async () => {
    for (const name of ['jpegExifOrientation6', 'pngAlpha', 'webpAnimated', 'gifAnimated', 'avif', 'tiff'] as const) {
      const path = await fixture(name);
      const meta = await sharp(path).metadata();
      expect(meta.width).toBeGreaterThan(0);
      expect((await sharp(await sharp(path).toBuffer()).metadata()).format).toBe(meta.format);
    }
  });
});
