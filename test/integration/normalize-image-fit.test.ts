/**
 * Images over their delivered limit made to fit it, on generated photos whose bytes are real
 * content (test/fixtures/noisy-images.ts).
 * What is real: sharp 0.35 / libvips 8.18 doing every decode and encode, ffmpeg making the GIF; nothing is mocked.
 */
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { normalize } from '../../src/pipeline/normalize.js';
import { fixture } from '../fixtures/generate.js';
import { animatedGif640, grainyPhoto24mp, noisyAlphaPng, noisyPng12mp, phonePhoto24mp, tiffDirectoryAtEnd } from '../fixtures/noisy-images.js';
import { input, rejection, useScratch } from './normalize-helpers.js';

useScratch();

const MB = 1_000_000;

/** What today's plain encode (fit 4096, JPEG q82) would store: the preconditions that make these tests able to fail. */
async function plainJpegBytes(path: string): Promise<number> {
  const out = await sharp(path).resize({ width: 4096, height: 4096, fit: 'inside', withoutEnlargement: true }).jpeg({ quality: 82 }).toBuffer();
  return out.length;
}

describe('phone photos over 5 MB', () => {
  it('an 8 MB 24 MP JPEG (6000x4000, quality 95) → a JPEG under 5 MB at 4096x2731', async () => {
    const src = await phonePhoto24mp();
    const m = await sharp(src).metadata();
    expect([m.width, m.height]).toEqual([6000, 4000]);
    expect((await stat(src)).size).toBeGreaterThan(8 * MB);

    const out = await normalize(await input(src, 'image/jpeg', 'image'));
    expect(out).toMatchObject({ mimeType: 'image/jpeg', transform: 'transcoded', width: 4096, height: 2731 });
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(5 * MB);
    const after = await sharp(out.outputPath).metadata();
    expect([after.format, after.width, after.height]).toEqual(['jpeg', 4096, 2731]);
  });

  it('a 22 MB 24 MP JPEG of heavy grain, over 5 MB even as a normal JPEG → under 5 MB, same shape', async () => {
    const src = await grainyPhoto24mp();
    expect((await stat(src)).size).toBeGreaterThan(20 * MB);
    expect(await plainJpegBytes(src)).toBeGreaterThan(5 * MB);

    const out = await normalize(await input(src, 'image/jpeg', 'image'));
    expect(out.mimeType).toBe('image/jpeg');
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(5 * MB);
    // Quality goes first: the size stays that of any other 24 MP photo.
    expect([out.width, out.height]).toEqual([4096, 2731]);
  });
});

describe('PNG', () => {
  it('a noisy 4000x3000 PNG without alpha (38 MB, 7.5 MB as a normal JPEG) → a JPEG under 5 MB', async () => {
    const src = await noisyPng12mp();
    expect((await sharp(src).metadata()).hasAlpha).toBe(false);
    expect((await stat(src)).size).toBeGreaterThan(5 * MB);
    expect(await plainJpegBytes(src)).toBeGreaterThan(5 * MB);

    const out = await normalize(await input(src, 'image/png', 'image'));
    expect(out.mimeType).toBe('image/jpeg');
    expect(out.transform).toBe('converted');
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(5 * MB);
    expect(out.width! * 3).toBeCloseTo(out.height! * 4, -1);
    expect(out.width).toBeGreaterThanOrEqual(1280);
  });

  it('a large PNG whose alpha is used → PNG or WEBP under 5 MB with the transparency kept', async () => {
    const src = await noisyAlphaPng();
    expect((await stat(src)).size).toBeGreaterThan(5 * MB);
    expect((await sharp(src).stats()).isOpaque).toBe(false);

    const out = await normalize(await input(src, 'image/png', 'image'));
    expect(['image/png', 'image/webp']).toContain(out.mimeType);
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(5 * MB);
    const m = await sharp(out.outputPath).metadata();
    expect(m.hasAlpha).toBe(true);
    expect([m.width, m.height]).toEqual([out.width, out.height]);
    // Clear corners, opaque centre, as in the input.
    const { data, info } = await sharp(out.outputPath).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    const alphaAt = (x: number, y: number): number => data[(y * info.width + x) * info.channels + 3]!;
    expect(alphaAt(2, 2)).toBe(0);
    expect(alphaAt(info.width >> 1, info.height >> 1)).toBe(255);
  });
});

describe('per-app delivered limits', () => {
  it('a 1 MB limit is respected on the 8 MB photo (5 MB would have stored it larger)', async () => {
    const src = await phonePhoto24mp();
    const plain = await normalize(await input(src, 'image/jpeg', 'image'));
    expect((await stat(plain.outputPath)).size).toBeGreaterThan(1 * MB);

    const out = await normalize(await input(src, 'image/jpeg', 'image', { deliveredLimitBytes: 1 * MB }));
    expect(out.mimeType).toBe('image/jpeg');
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(1 * MB);
    expect(Math.max(out.width!, out.height!)).toBeGreaterThanOrEqual(1280);
  });

  it('a limit no photo-sized encode can meet (10 KB) → FILE_TOO_LARGE saying what the smallest encode weighed', async () => {
    const err = await rejection(normalize(await input(await phonePhoto24mp(), 'image/jpeg', 'image', { deliveredLimitBytes: 10_000 })));
    expect(err.code).toBe('FILE_TOO_LARGE');
    expect(err.message).toMatch(/^the image is \d+ KB even as JPEG quality 50 at 1280 px on its longest side \(the smallest it is made\), over the 10 KB limit$/);
  });

  it('an animated GIF over its limit is made smaller and stays animated; too small a limit is refused with advice', async () => {
    const src = await animatedGif640();
    const before = await sharp(src, { animated: true }).metadata();
    expect([before.width, before.pageHeight, before.pages]).toEqual([640, 480, 20]);
    const limit = Math.floor((await stat(src)).size * 0.6);

    const out = await normalize(await input(src, 'image/gif', 'image', { deliveredLimitBytes: limit }));
    expect(out.mimeType).toBe('image/gif');
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(limit);
    const m = await sharp(out.outputPath, { animated: true }).metadata();
    expect(m.pages).toBe(20);
    expect(out.width).toBeLessThan(640);
    expect(out.width).toBeGreaterThanOrEqual(320);

    const err = await rejection(normalize(await input(src, 'image/gif', 'image', { deliveredLimitBytes: 20_000 })));
    expect(err.code).toBe('FILE_TOO_LARGE');
    expect(err.message).toMatch(/^the animation is \d+ KB even as GIF at 320 px on its longest side \(the smallest it is made\), over the 20 KB limit; send a shorter or smaller animation$/);
  });
  it('an animated WEBP below the size floor steps its quality down instead, and is refused at its own size', async () => {
    const src = await fixture('webpAnimated');
    const plain = await normalize(await input(src, 'image/webp', 'image'));
    const plainBytes = (await stat(plain.outputPath)).size;
    const limit = Math.floor(plainBytes * 0.85);

    const out = await normalize(await input(src, 'image/webp', 'image', { deliveredLimitBytes: limit }));
    expect(out).toMatchObject({ mimeType: 'image/webp', width: 200, height: 150 });
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(limit);
    expect((await sharp(out.outputPath, { animated: true }).metadata()).pages).toBe(12);

    const err = await rejection(normalize(await input(src, 'image/webp', 'image', { deliveredLimitBytes: 2_000 })));
    expect(err.code).toBe('FILE_TOO_LARGE');
    expect(err.message).toMatch(/^the animation is \d+ KB even as WEBP quality 50 at 200 px on its longest side \(its own size\), over the 2 KB limit; send a shorter or smaller animation$/);
  });
});

describe('TIFF', () => {
  it('a 400 KB TIFF written by sharp, its directory past the first 64 KiB → JPEG', async () => {
    const src = await tiffDirectoryAtEnd();
    const bytes = await readFile(src);
    expect(bytes.length).toBeGreaterThan(390_000);
    expect(bytes.subarray(0, 4).toString('latin1')).toBe('II*\u0000');
    expect(bytes.readUInt32LE(4)).toBeGreaterThan(64 * 1024);

    const out = await normalize(await input(src, 'image/tiff', 'image'));
    expect(out).toMatchObject({ mimeType: 'image/jpeg', transform: 'converted', width: 380, height: 350 });
    expect((await sharp(out.outputPath).metadata()).format).toBe('jpeg');
  });
});

describe('a small photo encoded in one pass from its source', () => {
  /** A 640x480 JPEG of noise at quality 30: small as sent, larger once re-encoded at quality 82. */
  async function lowQualityNoise(): Promise<Buffer> {
    const w = 640;
    const h = 480;
    const raw = Buffer.alloc(w * h * 3);
    let x = 12345;
    for (let i = 0; i < raw.length; i++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      raw[i] = x >> 16;
    }
    return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 30 }).toBuffer();
  }

  it('an input under the limit whose first encode comes out over it goes on down the ladder and fits (memory and file)', async () => {
    const src = await lowQualityNoise();
    const firstEncode = await sharp(src).jpeg({ quality: 82, chromaSubsampling: '4:2:0' }).toBuffer();
    const atFloor = await sharp(src).jpeg({ quality: 50, chromaSubsampling: '4:2:0' }).toBuffer();
    // The preconditions that make this test able to fail: the input fits, the plain encode does not,
    // and a lower quality at the same size does.
    const limit = Math.max(src.length, atFloor.length) + 2_000;
    expect(firstEncode.length).toBeGreaterThan(limit);

    const inMemory = await normalize(await input('', 'image/jpeg', 'image', { inputBuffer: src, deliveredLimitBytes: limit }));
    expect(inMemory).toMatchObject({ mimeType: 'image/jpeg', width: 640, height: 480 });
    expect(inMemory.outputBuffer!.length).toBeLessThanOrEqual(limit);
    expect((await sharp(inMemory.outputBuffer!).metadata()).format).toBe('jpeg');

    const path = `${process.env.TMPDIR ?? '/tmp'}/one-pass-${process.pid}.jpg`;
    await writeFile(path, src);
    try {
      const onFile = await normalize(await input(path, 'image/jpeg', 'image', { deliveredLimitBytes: limit }));
      expect(onFile).toMatchObject({ mimeType: 'image/jpeg', width: 640, height: 480 });
      expect((await stat(onFile.outputPath)).size).toBeLessThanOrEqual(limit);
    } finally {
      await rm(path, { force: true });
    }
  });

  it('an oriented small photo is stored upright in one pass: EXIF orientation 6 turns 640x480 into 480x640', async () => {
    const src = await sharp(await lowQualityNoise()).withMetadata({ orientation: 6 }).jpeg({ quality: 90 }).toBuffer();
    const out = await normalize(await input('', 'image/jpeg', 'image', { inputBuffer: src }));
    expect(out).toMatchObject({ mimeType: 'image/jpeg', width: 480, height: 640 });
    const meta = await sharp(out.outputBuffer!).metadata();
    expect([meta.width, meta.height, meta.orientation ?? 1, meta.exif]).toEqual([480, 640, 1, undefined]);
  });
});
