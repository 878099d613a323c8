import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { readBmpHeader } from '../../src/pipeline/image/bmp-header.js';
import { IMAGE_LIMITS, STICKER_LIMITS } from '../../src/pipeline/image/limits.js';
import { planImage, stillFormatForOpacity, type ImageFacts } from '../../src/pipeline/image/plan-image.js';
import { planSticker } from '../../src/pipeline/image/plan-sticker.js';
import { sharpFailureError, sharpFailureKind } from '../../src/pipeline/image/sharp-failure.js';
import { encoderLadder, sharpInputOptions, stickerEncoder } from '../../src/pipeline/image/sharp-options.js';

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
  it('encoder ladders go from best to smallest', () => {
    expect(encoderLadder('jpeg')).toEqual([
      { format: 'jpeg', options: { quality: 82, mozjpeg: false, chromaSubsampling: '4:2:0' } },
      { format: 'jpeg', options: { quality: 72, mozjpeg: false, chromaSubsampling: '4:2:0' } },
      { format: 'jpeg', options: { quality: 62, mozjpeg: false, chromaSubsampling: '4:2:0' } },
    ]);
    expect(encoderLadder('png').map((c) => (c.options as { palette?: boolean }).palette)).toEqual([false, true]);
    expect(encoderLadder('gif')).toHaveLength(1);
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
