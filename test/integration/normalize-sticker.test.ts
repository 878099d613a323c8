/** Sticker normalization with the real sharp: 512x512 WEBP letterboxed on transparency, within its byte limits. */
import { stat } from 'node:fs/promises';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { STICKER_LIMITS } from '../../src/pipeline/image/limits.js';
import { normalize } from '../../src/pipeline/normalize.js';
import { normalizeSticker } from '../../src/pipeline/normalize-sticker.js';
import { fixture } from '../fixtures/generate.js';
import { input, useScratch } from './normalize-helpers.js';

useScratch();

describe('stickers', () => {
  it('a 4:3 static WEBP becomes 512x512 with transparent bars, ≤ 100 KB', async () => {
    const out = await normalize(await input(await fixture('webpStatic'), 'image/webp', 'sticker'));
    expect(out).toMatchObject({ mimeType: 'image/webp', transform: 'transcoded', width: 512, height: 512 });
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(100_000);
    const { data, info } = await sharp(out.outputPath).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([512, 512]);
    // 800x600 fits as 512x384: bars of 64 rows above and below are fully transparent, the middle right is opaque.
    expect(data[(10 * 512 + 256) * 4 + 3]).toBe(0);
    expect(data[(500 * 512 + 256) * 4 + 3]).toBe(0);
    expect(data[(256 * 512 + 500) * 4 + 3]).toBeGreaterThan(200);
  });

  it('an animated GIF sticker stays animated, as WEBP, ≤ 500 KB', async () => {
    const out = await normalize(await input(await fixture('gifAnimated'), 'image/gif', 'sticker'));
    expect(out).toMatchObject({ mimeType: 'image/webp', transform: 'converted', width: 512, height: 512 });
    const m = await sharp(out.outputPath).metadata();
    expect([m.format, m.pages, m.width, m.pageHeight ?? m.height]).toEqual(['webp', 20, 512, 512]);
    expect((await stat(out.outputPath)).size).toBeLessThanOrEqual(500_000);
  });

  it('steps quality down until it fits, else refuses', async () => {
    const src = await fixture('gifAnimated');
    const fits = await normalizeSticker(await input(src, 'image/gif', 'sticker'), { ...STICKER_LIMITS, maxBytesAnimated: 200_000 });
    expect((await stat(fits.outputPath)).size).toBeLessThanOrEqual(200_000);
    const err = await normalizeSticker(await input(src, 'image/gif', 'sticker'), { ...STICKER_LIMITS, maxBytesAnimated: 5_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).message).toBe('the sticker does not fit 5 KB as 512x512 WEBP even at quality 30');
  });

  it('JPEG is not a sticker format', async () => {
    const err = await normalize(await input(await fixture('jpegExifOrientation6'), 'image/jpeg', 'sticker')).catch((e: unknown) => e);
    expect((err as PermanentError).code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });
});
