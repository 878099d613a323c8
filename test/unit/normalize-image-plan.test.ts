import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { readBmpHeader } from '../../src/pipeline/image/bmp-header.js';
import { IMAGE_LIMITS, STICKER_LIMITS } from '../../src/pipeline/image/limits.js';
import { planImage, stillFormatForOpacity, type ImageFacts } from '../../src/pipeline/image/plan-image.js';
import { planSticker } from '../../src/pipeline/image/plan-sticker.js';
import { sharpFailureError, sharpFailureKind } from '../../src/pipeline/image/sharp-failure.js';
import { fitLadder, sharpInputOptions, stickerEncoder, type FitStep } from '../../src/pipeline/image/sharp-options.js';
import { formatBytes, planImageFit, type FitAttempt } from '../../src/pipeline/image/plan-image-fit.js';

const jpeg: ImageFacts = { mime: 'image/jpeg', format: 'jpeg', width: 4000, height: 3000, pages: 1, hasAlpha: false, compression: null };

describe('planImage', () => {
  it('opaque photo → JPEG, no resize under 4096', () => {
    expect(planImage(jpeg, IMAGE_LIMITS)).toEqual({ action: 'encode', animated: false, output: 'jpeg', fitLongSide: null, limitInputPixels: 40_000_000, autoOrient: true });
  });
  it('longest side over 4096 → fit 4096, whatever the orientation', () => {
    expect(planImage({ ...jpeg, width: 3000, height: 5000 }, IMAGE_LIMITS)).toMatchObject({ fitLongSide: 4096 });
  });
  it('an alpha channel defers the format to the opacity scan', () => {
    expect(planImage({ ...jpeg, mime: 'image/png', format: 'png', hasAlpha: true }, IMAGE_LIMITS)).toMatchObject({ output: 'by-opacity' });
    expect([stillFormatForOpacity(true), stillFormatForOpacity(false)]).toEqual(['jpeg', 'png']);
  });
  it('animated GIF stays GIF, animated WEBP stays WEBP, with an all-frames pixel limit', () => {
    const gif = { ...jpeg, mime: 'image/gif', format: 'gif', width: 320, height: 240, pages: 20 };
    expect(planImage(gif, IMAGE_LIMITS)).toEqual({ action: 'encode', animated: true, output: 'gif', fitLongSide: null, limitInputPixels: 100_000_000, autoOrient: true });
    expect(planImage({ ...gif, mime: 'image/webp', format: 'webp' }, IMAGE_LIMITS)).toMatchObject({ animated: true, output: 'webp' });
  });
  it('a multi-page TIFF is a still (first page)', () => {
    expect(planImage({ ...jpeg, mime: 'image/tiff', format: 'tiff', pages: 5 }, IMAGE_LIMITS)).toMatchObject({ animated: false, output: 'jpeg' });
  });
  it('frame cap: 2000 frames refused, checked before pixels', () => {
    expect(planImage({ ...jpeg, mime: 'image/gif', format: 'gif', width: 16, height: 16, pages: 2000 }, IMAGE_LIMITS)).toEqual({
      action: 'reject',
      code: 'MEDIA_REJECTED',
      reason: 'the animation has 2000 frames, over the 1000 frame limit',
    });
  });
  it('pixel cap from the header: 50000x50000', () => {
    expect(planImage({ ...jpeg, mime: 'image/png', format: 'png', width: 50000, height: 50000 }, IMAGE_LIMITS)).toEqual({
      action: 'reject',
      code: 'MEDIA_REJECTED',
      reason: 'the image is 50000x50000 (2500.0 MP), over the 40 MP limit',
    });
    expect(planImage({ ...jpeg, width: 8000, height: 5000 }, IMAGE_LIMITS).action).toBe('encode');
    expect(planImage({ ...jpeg, width: 8000, height: 5001 }, IMAGE_LIMITS).action).toBe('reject');
  });
  it('all-frames cap for animations', () => {
    expect(planImage({ ...jpeg, mime: 'image/gif', format: 'gif', width: 1000, height: 1000, pages: 101 }, IMAGE_LIMITS)).toMatchObject({ action: 'reject', code: 'MEDIA_REJECTED' });
  });
  it('HEIC (HEVC) is unsupported; AVIF (AV1 in HEIF) is converted', () => {
    expect(planImage({ ...jpeg, mime: 'image/heic', format: 'heif', compression: 'hevc' }, IMAGE_LIMITS)).toMatchObject({ action: 'reject', code: 'UNSUPPORTED_MEDIA_TYPE' });
    expect(planImage({ ...jpeg, mime: 'image/avif', format: 'heif', compression: 'av1' }, IMAGE_LIMITS)).toMatchObject({ action: 'encode', output: 'jpeg' });
  });
  it('content that decodes as another format than sniffed is refused', () => {
    expect(planImage({ ...jpeg, mime: 'image/png' }, IMAGE_LIMITS)).toMatchObject({ action: 'reject', code: 'MEDIA_REJECTED' });
    expect(planImage({ ...jpeg, mime: 'image/svg+xml', format: 'svg' }, IMAGE_LIMITS)).toMatchObject({ action: 'reject', code: 'UNSUPPORTED_MEDIA_TYPE' });
    expect(planImage({ ...jpeg, width: 0 }, IMAGE_LIMITS)).toMatchObject({ action: 'reject' });
  });
  it('BMP arrives as the PNG ffmpeg made of it', () => {
    expect(planImage({ ...jpeg, mime: 'image/bmp', format: 'png' }, IMAGE_LIMITS)).toMatchObject({ action: 'encode', autoOrient: true });
  });
  it('HEIC/HEIF arrive as the PNG heif-convert made, upright already: not oriented a second time', () => {
    expect(planImage({ ...jpeg, mime: 'image/heic', format: 'png' }, IMAGE_LIMITS)).toMatchObject({ action: 'encode', output: 'jpeg', autoOrient: false });
    expect(planImage({ ...jpeg, mime: 'image/heif', format: 'png', hasAlpha: true }, IMAGE_LIMITS)).toMatchObject({ output: 'by-opacity', autoOrient: false });
    // Undecoded HEVC bytes never reach sharp as HEIC.
    expect(planImage({ ...jpeg, mime: 'image/heic', format: 'heif', compression: 'hevc' }, IMAGE_LIMITS)).toMatchObject({ action: 'reject' });
  });
});

describe('planSticker', () => {
  const webp = { mime: 'image/webp', format: 'webp', width: 800, height: 600, pages: 1 };
  it('static: 100 KB and the static quality ladder', () => {
    expect(planSticker(webp, STICKER_LIMITS)).toEqual({ action: 'encode', animated: false, maxBytes: 100_000, qualities: [80, 65, 50, 35], limitInputPixels: 40_000_000 });
  });
  it('animated: 500 KB and the shorter ladder', () => {
    expect(planSticker({ ...webp, pages: 12 }, STICKER_LIMITS)).toEqual({ action: 'encode', animated: true, maxBytes: 500_000, qualities: [75, 50, 30], limitInputPixels: 100_000_000 });
  });
  it('refuses JPEG, frame and pixel excess, polyglots', () => {
    expect(planSticker({ ...webp, mime: 'image/jpeg', format: 'jpeg' }, STICKER_LIMITS)).toMatchObject({ action: 'reject', code: 'UNSUPPORTED_MEDIA_TYPE' });
    expect(planSticker({ ...webp, pages: 1001 }, STICKER_LIMITS)).toMatchObject({ action: 'reject', code: 'MEDIA_REJECTED' });
    expect(planSticker({ ...webp, width: 50000, height: 50000 }, STICKER_LIMITS)).toMatchObject({ action: 'reject', code: 'MEDIA_REJECTED' });
    expect(planSticker({ ...webp, format: 'png' }, STICKER_LIMITS)).toMatchObject({ action: 'reject', code: 'MEDIA_REJECTED' });
  });
});

describe('sharp options', () => {
  it('input: pixel limit, fail on errors, sequential, animation only when kept', () => {
    expect(sharpInputOptions(40_000_000, false)).toEqual({ limitInputPixels: 40_000_000, failOn: 'error', sequentialRead: true, animated: false });
    expect(sharpInputOptions(100_000_000, true).animated).toBe(true);
  });
  it('fit ladders go from best to smallest; a PNG with alpha turns WEBP only where the kind stores WEBP', () => {
    const stored = IMAGE_LIMITS.storedMimes;
    const quality = (steps: readonly FitStep[]): Array<number | undefined> => steps.map((s) => (s.choice.options as { quality?: number }).quality);
    expect(fitLadder('jpeg', false, stored)[0]).toEqual({
      choice: { format: 'jpeg', options: { quality: 82, mozjpeg: false, chromaSubsampling: '4:2:0' } },
      family: 'jpeg',
      relSize: 1,
      label: 'JPEG quality 82',
    });
    expect(quality(fitLadder('jpeg', false, stored))).toEqual([82, 72, 64, 56, 50]);
    expect(fitLadder('png', false, stored).map((s) => s.label)).toEqual(['PNG', 'WEBP quality 80', 'WEBP quality 72', 'WEBP quality 64', 'WEBP quality 56', 'WEBP quality 50']);
    expect(fitLadder('png', false, ['image/jpeg', 'image/png']).map((s) => s.label)).toEqual(['PNG', '256-colour PNG']);
    expect(quality(fitLadder('webp', true, stored))).toEqual([80, 65, 50]);
    expect(fitLadder('gif', true, stored).map((s) => s.label)).toEqual(['GIF']);
    for (const f of ['jpeg', 'png', 'webp', 'gif'] as const) {
      const relSizes = fitLadder(f, f === 'gif', stored).map((s) => s.relSize);
      expect([...relSizes].sort((a, b) => b - a)).toEqual(relSizes);
    }
    expect(stickerEncoder(30, true)).toEqual({ format: 'webp', options: { quality: 30, alphaQuality: 50, effort: 2 } });
  });
  it('sharp failures: system trouble is transient, decoding trouble final', () => {
    expect(sharpFailureKind('Input file has corrupt header: VipsJpeg: premature end of JPEG image')).toBe('content');
    expect(sharpFailureKind('Input image exceeds pixel limit')).toBe('content');
    expect(sharpFailureKind('timeout: 60% complete')).toBe('transient');
    expect(sharpFailureKind('vips_image_write: ENOSPC')).toBe('transient');
    const e = sharpFailureError(new Error('VipsJpeg: bad /tmp/job-1/in.bin\nmore'), 'reading');
    expect(e).toBeInstanceOf(PermanentError);
    expect(e.message).toBe('reading: the image could not be decoded (VipsJpeg: bad input)');
  });
});

describe('readBmpHeader', () => {
  const bmp = (w: number, h: number, dib = 40): Buffer => {
    const b = Buffer.alloc(54);
    b.write('BM', 0, 'latin1');
    b.writeUInt32LE(dib, 14);
    b.writeInt32LE(w, 18);
    b.writeInt32LE(h, 22);
    b.writeUInt16LE(24, 28);
    return b;
  };
  it('reads width, height (top-down negative), depth', () => {
    expect(readBmpHeader(bmp(320, 240))).toEqual({ width: 320, height: 240, bitsPerPixel: 24 });
    expect(readBmpHeader(bmp(320, -240))).toEqual({ width: 320, height: 240, bitsPerPixel: 24 });
    expect(readBmpHeader(bmp(50000, 50000))).toEqual({ width: 50000, height: 50000, bitsPerPixel: 24 });
  });
  it('OS/2 core header; junk', () => {
    const core = Buffer.alloc(26);
    core.write('BM', 0, 'latin1');
    core.writeUInt32LE(12, 14);
    core.writeUInt16LE(64, 18);
    core.writeUInt16LE(32, 20);
    core.writeUInt16LE(8, 24);
    expect(readBmpHeader(core)).toEqual({ width: 64, height: 32, bitsPerPixel: 8 });
    expect(readBmpHeader(Buffer.from('PK\u0003\u0004 not a bitmap at all, no'))).toBeNull();
    expect(readBmpHeader(bmp(1, 1, 20))).toBeNull();
  });
});

describe('planImageFit: the next encode from the bytes the last one measured (5 MB limit, aim 4.65 MB)', () => {
  const stored = IMAGE_LIMITS.storedMimes;
  const jpegLadder = fitLadder('jpeg', false, stored);
  const still = { limitBytes: 5_000_000, fullLongSide: 4096, animated: false };
  const fit = (attempts: FitAttempt[], ladder = jpegLadder, bounds = still): unknown => planImageFit(ladder, attempts, bounds, IMAGE_LIMITS.fit);
  const a = (step: number, longSide: number, bytes: number): FitAttempt => ({ step, longSide, bytes });

  it.each([
    ['nothing encoded yet: the normal encode at full size', [], { action: 'encode', step: 0, longSide: 4096 }],
    ['fits: stored', [a(0, 4096, 4_900_000)], { action: 'store' }],
    ['10% over: one quality step (q72 ≈ 0.8×)', [a(0, 4096, 5_500_000)], { action: 'encode', step: 1, longSide: 4096 }],
    ['30% over: straight to q64, not through q72', [a(0, 4096, 6_500_000)], { action: 'encode', step: 2, longSide: 4096 }],
    ['48% over: q56', [a(0, 4096, 7_400_000)], { action: 'encode', step: 3, longSide: 4096 }],
    ['2.4× over: q50 and smaller, in one step', [a(0, 4096, 12_000_000)], { action: 'encode', step: 4, longSide: 3183 }],
    ['the shrink missed: shrink again from what it measured', [a(0, 4096, 12_000_000), a(4, 3179, 5_200_000)], { action: 'encode', step: 4, longSide: 2964 }],
    ['missed by a hair: still at least a 5% step', [a(0, 4096, 12_000_000), a(4, 3179, 5_010_000)], { action: 'encode', step: 4, longSide: 3020 }],
    ['far over: the floor (1280 px) at once', [a(0, 4096, 200_000_000)], { action: 'encode', step: 4, longSide: 1280 }],
    ['the last encode allowed is the floor', [a(0, 4096, 12e6), a(4, 3179, 5.2e6), a(4, 3000, 5.1e6), a(4, 2850, 5.05e6), a(4, 2700, 5.02e6)], { action: 'encode', step: 4, longSide: 1280 }],
  ] as const)('%s', (_name, attempts, expected) => {
    expect(fit([...attempts])).toEqual(expected);
  });

  it('the floor does not fit: FILE_TOO_LARGE saying what was tried', () => {
    expect(fit([a(0, 4096, 200_000_000), a(4, 1280, 9_000_000)])).toEqual({
      action: 'refuse',
      reason: 'the image is 9 MB even as JPEG quality 50 at 1280 px on its longest side (the smallest it is made), over the 5 MB limit',
      details: { limitBytes: 5_000_000, bytes: 9_000_000, longSide: 1280, encoding: 'JPEG quality 50' },
    });
  });

  it('an image smaller than the floor is never enlarged: quality steps, then refused at its own size', () => {
    const small = { limitBytes: 10_000, fullLongSide: 800, animated: false };
    expect(fit([a(0, 800, 300_000)], jpegLadder, small)).toEqual({ action: 'encode', step: 4, longSide: 800 });
    expect(fit([a(0, 800, 300_000), a(4, 800, 170_000)], jpegLadder, small)).toMatchObject({
      action: 'refuse',
      reason: 'the image is 170 KB even as JPEG quality 50 at 800 px on its longest side (its own size), over the 10 KB limit',
    });
  });

  it('a PNG with alpha: lossless first, then WEBP measured at full size, then estimated WEBP steps', () => {
    const png = fitLadder('png', false, stored);
    expect(fit([a(0, 4096, 40_000_000)], png)).toEqual({ action: 'encode', step: 1, longSide: 4096 });
    expect(fit([a(0, 4096, 40_000_000), a(1, 4096, 6_000_000)], png)).toEqual({ action: 'encode', step: 3, longSide: 4096 });
    // Where WEBP is not stored: a 256-colour PNG, then smaller 256-colour PNGs.
    const pngOnly = fitLadder('png', false, ['image/jpeg', 'image/png']);
    expect(fit([a(0, 4096, 40_000_000)], pngOnly)).toEqual({ action: 'encode', step: 1, longSide: 4096 });
    expect(fit([a(0, 4096, 40_000_000), a(1, 4096, 8_000_000)], pngOnly)).toEqual({ action: 'encode', step: 1, longSide: 2918 });
  });

  it('an animation: fewer encodes, a 320 px floor, and a refusal that says what to send', () => {
    const gif = fitLadder('gif', true, stored);
    const anim = { limitBytes: 5_000_000, fullLongSide: 480, animated: true };
    expect(fit([a(0, 480, 8_000_000)], gif, anim)).toEqual({ action: 'encode', step: 0, longSide: 341 });
    // Two sizes measured: the exponent they show (clamped) sizes the next step; below the floor → the floor.
    expect(fit([a(0, 480, 8_000_000), a(0, 341, 6_000_000)], gif, anim)).toEqual({ action: 'encode', step: 0, longSide: 320 });
    expect(fit([a(0, 480, 8_000_000), a(0, 341, 6_000_000), a(0, 320, 5_600_000)], gif, anim)).toMatchObject({
      action: 'refuse',
      reason: 'the animation is 5.6 MB even as GIF at 320 px on its longest side (the smallest it is made), over the 5 MB limit; send a shorter or smaller animation',
    });
  });

  it('sizes in decimal units, as the contract writes limits', () => {
    expect([formatBytes(5_000_000), formatBytes(6_240_000), formatBytes(312_400), formatBytes(10_000), formatBytes(12)]).toEqual(['5 MB', '6.2 MB', '312 KB', '10 KB', '1 KB']);
  });
});
