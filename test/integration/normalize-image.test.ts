/**
 * Image normalization on generated media, with the real sharp/libvips (and ffmpeg for BMP,
 * heif-convert from Debian's libheif-examples for HEIC).
 * What is real: sharp 0.35, ffmpeg, heif-convert/heif-enc 1.15 (x265, libde265); nothing is mocked.
 */
import { execFile } from 'node:child_process';
import { access, chmod, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { configureTools, type ToolPaths } from '../../src/pipeline/ffmpeg/run.js';
import { decodeHeif } from '../../src/pipeline/heic/decode-heif.js';
import { HEIF_DECODER_MISSING } from '../../src/pipeline/heic/heif-failure.js';
import { parseHeifMeta } from '../../src/pipeline/heic/heif-header.js';
import { IMAGE_LIMITS } from '../../src/pipeline/image/limits.js';
import { normalize } from '../../src/pipeline/normalize.js';
import { normalizeImage } from '../../src/pipeline/normalize-image.js';
import { fixture } from '../fixtures/generate.js';
import { exifHasGps, input, processesMentioning, rejection, scratch, useScratch } from './normalize-helpers.js';

useScratch();
const runChild = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

let savedPaths: ToolPaths | undefined;
afterEach(() => {
  if (savedPaths) configureTools(savedPaths);
  savedPaths = undefined;
});

/** A stand-in decoder that records that it was started, then does `body`. */
async function standInDecoder(body: string): Promise<{ path: string; ran: () => Promise<boolean> }> {
  const dir = await scratch();
  const marker = join(dir, 'started');
  const path = join(dir, 'heif-convert');
  await writeFile(path, `#!/bin/sh\n: > '${marker}'\n${body}\n`);
  await chmod(path, 0o755);
  return { path, ran: () => access(marker).then(() => true, () => false) };
}

async function pixel(path: string, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return [...data.subarray(i, i + 3)];
}

const near = (a: number[], b: number[], tol: number): boolean => a.every((v, i) => Math.abs(v - b[i]!) <= tol);

describe('(1) EXIF orientation 6 + GPS', () => {
  it('comes out upright (sizes swap, the corner block moves top-right) with no metadata at all', async () => {
    const src = await fixture('jpegExifOrientation6');
    const before = await sharp(src).metadata();
    // Preconditions, so the assertions below can fail: the input has all of it.
    expect(before.orientation).toBe(6);
    expect(exifHasGps(before.exif!)).toBe(true);
    expect(before.xmp).toBeDefined();
    expect(before.icc).toBeDefined();
    expect([before.width, before.height]).toEqual([400, 300]);

    const out = await normalize(await input(src, 'image/jpeg', 'image'));
    expect(out).toMatchObject({ mimeType: 'image/jpeg', transform: 'transcoded', width: 300, height: 400, variants: [] });
    const after = await sharp(out.outputPath).metadata();
    expect([after.width, after.height]).toEqual([300, 400]);
    expect(after.orientation).toBeUndefined();
    expect(after.exif).toBeUndefined();
    expect(after.xmp).toBeUndefined();
    expect(after.iptc).toBeUndefined();
    expect(after.icc).toBeUndefined();
    expect(after.comments).toBeUndefined();
    const bytes = await readFile(out.outputPath);
    expect(bytes.includes('FixtureCam')).toBe(false);
    expect(bytes.includes('Fixture Person')).toBe(false);

    // Rotated 90° clockwise: the stored top-left red block is now top-right.
    expect(near(await pixel(out.outputPath, 285, 30), [255, 0, 0], 40)).toBe(true);
    expect(near(await pixel(out.outputPath, 15, 30), [255, 0, 0], 40)).toBe(false);
  });

  it('colour goes through the embedded P3 profile to sRGB (the raw P3 numbers are far off)', async () => {
    const src = await fixture('jpegExifOrientation6');
    const out = await normalize(await input(src, 'image/jpeg', 'image'));
    const srgbGreen = [0, 180, 60];
    expect(near(await pixel(out.outputPath, 150, 300), srgbGreen, 6)).toBe(true);
    const { data } = await sharp(src, { ignoreIcc: true }).raw().toBuffer({ resolveWithObject: true });
    const rawP3 = [...data.subarray((250 * 400 + 200) * 3, (250 * 400 + 200) * 3 + 3)];
    expect(near(rawP3, srgbGreen, 20)).toBe(false);
  });
});

describe('(2) alpha and size', () => {
  it('PNG whose alpha is used stays PNG with alpha, metadata gone', async () => {
    const src = await fixture('pngAlpha');
    expect((await sharp(src).metadata()).exif).toBeDefined();
    const out = await normalize(await input(src, 'image/png', 'image'));
    expect(out).toMatchObject({ mimeType: 'image/png', transform: 'transcoded', width: 300, height: 200 });
    const m = await sharp(out.outputPath).metadata();
    expect(m.format).toBe('png');
    expect(m.hasAlpha).toBe(true);
    expect(m.exif).toBeUndefined();
    expect(m.icc).toBeUndefined();
    expect((await sharp(out.outputPath).stats()).isOpaque).toBe(false);
  });

  it('an alpha channel that is 255 everywhere becomes a JPEG', async () => {
    const out = await normalize(await input(await fixture('pngOpaqueAlphaChannel'), 'image/png', 'image'));
    expect(out).toMatchObject({ mimeType: 'image/jpeg', transform: 'converted', width: 320, height: 240 });
    expect((await sharp(out.outputPath).metadata()).format).toBe('jpeg');
  });

  it('12 MP opaque PNG → JPEG under 5 MB at full size', async () => {
    const out = await normalize(await input(await fixture('png12mp'), 'image/png', 'image'));
    expect(out).toMatchObject({ mimeType: 'image/jpeg', transform: 'converted', width: 4000, height: 3000 });
    const bytes = (await readFile(out.outputPath)).length;
    expect(bytes).toBeLessThan(5_000_000);
    expect((await sharp(out.outputPath).metadata()).format).toBe('jpeg');
  });

  it('longest side is brought to 4096', async () => {
    const out = await normalize(await input(await fixture('jpegWide'), 'image/jpeg', 'image'));
    expect([out.width, out.height]).toEqual([4096, 2048]);
    const m = await sharp(out.outputPath).metadata();
    expect([m.width, m.height]).toEqual([4096, 2048]);
  });
});

describe('byte limit', () => {
  it('steps JPEG quality down until the output fits, else refuses as too large', async () => {
    const src = await fixture('png12mp');
    const full = await normalize(await input(src, 'image/png', 'image'));
    const q82 = (await readFile(full.outputPath)).length;
    const maxBytes = Math.floor(q82 * 0.9);
    const out = await normalizeImage(await input(src, 'image/png', 'image'), { ...IMAGE_LIMITS, maxBytes });
    const bytes = (await readFile(out.outputPath)).length;
    expect(bytes).toBeLessThanOrEqual(maxBytes);
    expect(bytes).toBeGreaterThan(maxBytes * 0.5);
    const err = await rejection(normalizeImage(await input(src, 'image/png', 'image'), { ...IMAGE_LIMITS, maxBytes: 20_000 }));
    expect(err.code).toBe('FILE_TOO_LARGE');
    expect(err.message).toMatch(/^the image is \d+ KB even as JPEG quality 50 at 1280 px on its longest side \(the smallest it is made\), over the 20 KB limit$/);
  });
});

describe('(3) decompression bomb header', () => {
  it('a PNG declaring 50000x50000 is refused from its header within a second', async () => {
    const src = await fixture('png50000');
    const req = await input(src, 'image/png', 'image');
    const started = performance.now();
    const err = await rejection(normalize(req));
    const ms = performance.now() - started;
    expect(err.code).toBe('MEDIA_REJECTED');
    expect(err.message).toMatch(/50000x50000/);
    expect(ms).toBeLessThan(1000);
  });

  it('the worker process stays under 300 MB resident doing it (VmHWM of a child running the pipeline)', async () => {
    const measure = async (src: string): Promise<{ outcome: Record<string, unknown>; ms: number; loadedKb: number; peakKb: number }> => {
      const { stdout } = await runChild(process.execPath, ['--import', 'tsx', join(here, 'normalize-rss-child.ts'), src, 'image/png', await scratch()], { cwd: join(here, '..', '..') });
      return JSON.parse(stdout) as { outcome: Record<string, unknown>; ms: number; loadedKb: number; peakKb: number };
    };
    const bomb = await measure(await fixture('png50000'));
    expect(bomb.outcome).toEqual({ ok: false, code: 'MEDIA_REJECTED', message: 'the image is 50000x50000 (2500.0 MP), over the 40 MP limit' });
    expect(bomb.ms).toBeLessThan(1000);
    expect(bomb.peakKb).toBeLessThan(300 * 1024);
    // The probe sees decoding: a real 12 MP PNG decoded in the same child raises the peak well above the bomb's.
    const real = await measure(await fixture('png12mp'));
    expect(real.outcome).toMatchObject({ ok: true, width: 4000, height: 3000 });
    expect(real.peakKb - bomb.peakKb).toBeGreaterThan(20 * 1024);
  });
});

describe('(4) animation', () => {
  it('an animated GIF stays an animated GIF with all its frames', async () => {
    const src = await fixture('gifAnimated');
    expect((await sharp(src).metadata()).pages).toBe(20);
    const out = await normalize(await input(src, 'image/gif', 'image'));
    expect(out).toMatchObject({ mimeType: 'image/gif', transform: 'transcoded', width: 320, height: 240 });
    const m = await sharp(out.outputPath).metadata();
    expect(m.format).toBe('gif');
    expect(m.pages).toBe(20);
  });

  it('an animated WEBP stays animated WEBP', async () => {
    const out = await normalize(await input(await fixture('webpAnimated'), 'image/webp', 'image'));
    const m = await sharp(out.outputPath).metadata();
    expect([out.mimeType, m.format, m.pages]).toEqual(['image/webp', 'webp', 12]);
  });

  it('a 2000-frame GIF is refused', async () => {
    const err = await rejection(normalize(await input(await fixture('gif2000Frames'), 'image/gif', 'image')));
    expect(err.code).toBe('MEDIA_REJECTED');
    expect(err.message).toBe('the animation has 2000 frames, over the 1000 frame limit');
  });
});

describe('converted and refused formats', () => {
  it.each([
    ['tiff', 'image/tiff', 640, 480],
    ['avif', 'image/avif', 320, 240],
    ['bmp', 'image/bmp', 320, 240],
  ] as const)('%s → JPEG', async (name, mime, w, h) => {
    const out = await normalize(await input(await fixture(name), mime, 'image'));
    expect(out).toMatchObject({ mimeType: 'image/jpeg', transform: 'converted', width: w, height: h });
    expect((await sharp(out.outputPath).metadata()).format).toBe('jpeg');
  });

  it('a HEIF whose header names no primary image is refused before decoding', async () => {
    const err = await rejection(normalize(await input(await fixture('heicHeader'), 'image/heic', 'image')));
    expect(err.code).toBe('MEDIA_REJECTED');
    expect(err.message).toBe('the HEIF file names no primary image');
  });

  it('JPEG magic over garbage is refused as undecodable', async () => {
    const err = await rejection(normalize(await input(await fixture('jpegGarbage'), 'image/jpeg', 'image')));
    expect(err.code).toBe('MEDIA_REJECTED');
    expect(err.message).toMatch(/could not be decoded/);
  });

  it('content that is not what was sniffed is refused', async () => {
    const err = await rejection(normalize(await input(await fixture('pngAlpha'), 'image/jpeg', 'image')));
    expect(err.code).toBe('MEDIA_REJECTED');
  });

  it('a type the kind does not accept is 415 before any work', async () => {
    const err = await rejection(normalize(await input(await fixture('pdf'), 'application/pdf', 'image')));
    expect(err.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });
});

describe('(11) HEIC photos (heif-convert)', () => {
  it('an iPhone-style HEIC (irot + Exif orientation 6 + GPS) → upright JPEG, turned once, no metadata', async () => {
    const src = await fixture('heicRotated');
    // Preconditions: stored 400x300 with a 90°-clockwise irot, and an Exif block with GPS and the camera.
    const bytes = await readFile(src);
    const metaAt = bytes.indexOf('meta', 0, 'latin1') - 4;
    const header = parseHeifMeta(bytes.subarray(metaAt, metaAt + bytes.readUInt32BE(metaAt)));
    expect(header.items.find((it) => it.id === header.primaryId)).toMatchObject({ type: 'hvc1', width: 400, height: 300, rotation: 270 });
    expect(bytes.includes('FixtureCam')).toBe(true);

    const out = await normalize(await input(src, 'image/heic', 'image'));
    expect(out).toMatchObject({ mimeType: 'image/jpeg', transform: 'converted', width: 300, height: 400, variants: [] });
    const after = await sharp(out.outputPath).metadata();
    expect([after.format, after.width, after.height]).toEqual(['jpeg', 300, 400]);
    expect(after.exif).toBeUndefined();
    expect(after.orientation).toBeUndefined();
    expect(after.icc).toBeUndefined();
    expect((await readFile(out.outputPath)).includes('FixtureCam')).toBe(false);
    // Turned 90° clockwise exactly once: the stored top-left red block is now top-right (twice would put it bottom-right of a 400x300).
    expect(near(await pixel(out.outputPath, 285, 30), [255, 0, 0], 40)).toBe(true);
    expect(near(await pixel(out.outputPath, 15, 30), [255, 0, 0], 40)).toBe(false);
    expect(near(await pixel(out.outputPath, 150, 300), [0, 180, 60], 40)).toBe(true);
  });

  it('why the image step must not auto-orient it: the decoded PNG is upright and still carries Exif orientation 6', async () => {
    const dir = await scratch();
    const decoded = await decodeHeif({ inputPath: await fixture('heicRotated'), scratchDir: dir, maxPixels: 40e6, timeoutMs: 30_000, maxDecoderBytes: IMAGE_LIMITS.maxDecoderBytes });
    expect(decoded).toMatchObject({ width: 300, height: 400, rotation: 270 });
    const m = await sharp(decoded.path).metadata();
    expect([m.width, m.height, m.orientation]).toEqual([300, 400, 6]);
    expect(exifHasGps(m.exif!)).toBe(true);
  });

  it('a header declaring 50000x50000 is refused within a second; the decoder never starts', async () => {
    const stand = await standInDecoder('exit 0');
    savedPaths = configureTools({ heifConvert: stand.path });
    const started = performance.now();
    const err = await rejection(normalize(await input(await fixture('heicBombHeader'), 'image/heic', 'image')));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(err.code).toBe('MEDIA_REJECTED');
    expect(err.message).toBe('the image is 50000x50000 (2500.0 MP), over the 40 MP limit');
    expect(await stand.ran()).toBe(false);
    // The stand-in is really what would have run: the same call on a sane HEIC starts it.
    await normalize(await input(await fixture('heicRotated'), 'image/heic', 'image')).catch(() => undefined);
    expect(await stand.ran()).toBe(true);
  });

  it('a coded picture larger than its header is refused after decoding, and the address-space cap bounds the decode', async () => {
    const src = await fixture('heicLyingSize');
    const err = await rejection(normalize(await input(src, 'image/heic', 'image')));
    expect(err.code).toBe('MEDIA_REJECTED');
    expect(err.message).toBe('the HEIF image decoded to 4000x3000, larger than the 400x300 its header declares');
    // Under a 64 MB cap (a 400x300 HEIC decodes in ~32 MB) the 12 MP decode itself fails.
    const capped = await rejection(normalizeImage(await input(src, 'image/heic', 'image'), { ...IMAGE_LIMITS, maxDecoderBytes: 64 * 1024 * 1024 }));
    expect(capped.code).toBe('MEDIA_REJECTED');
    expect(capped.message).toMatch(/^decoding the HEIF image: the image could not be decoded \(/);
    const fine = await normalizeImage(await input(await fixture('heicRotated'), 'image/heic', 'image'), { ...IMAGE_LIMITS, maxDecoderBytes: 64 * 1024 * 1024 });
    expect([fine.width, fine.height]).toEqual([300, 400]);
  });

  it('without the decoder installed, HEIC is UNSUPPORTED_MEDIA_TYPE with a clear message', async () => {
    savedPaths = configureTools({ heifConvert: '/nonexistent/bin/heif-convert' });
    const err = await rejection(normalize(await input(await fixture('heicRotated'), 'image/heic', 'image')));
    expect(err.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(err.message).toBe(HEIF_DECODER_MISSING);
  });

  it('a decoder that hangs is killed at the timeout with its whole group, and the file refused', async () => {
    const stand = await standInDecoder('sleep 30 & sleep 30');
    savedPaths = configureTools({ heifConvert: stand.path });
    const req = await input(await fixture('heicRotated'), 'image/heic', 'image', { maxToolMs: 500 });
    const started = performance.now();
    const err = await rejection(normalize(req));
    expect(performance.now() - started).toBeLessThan(5000);
    expect(err.code).toBe('MEDIA_REJECTED');
    expect(err.message).toBe('decoding the HEIF image: heif-convert did not finish within 0.5 s and was stopped');
    expect(await stand.ran()).toBe(true);
    expect(await processesMentioning(stand.path)).toEqual([]);
  });
});
