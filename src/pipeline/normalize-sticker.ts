import { join } from 'node:path';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { PermanentError } from '../domain/errors.js';
import { canonicalMime } from '../domain/policies.js';
import { STICKER_LIMITS, type StickerLimits } from './image/limits.js';
import { planSticker } from './image/plan-sticker.js';
import { sharpFailureError } from './image/sharp-failure.js';
import { restrictSharpLoaders, sharpInputOptions, stickerEncoder } from './image/sharp-options.js';
import { createProgressThrottle } from './ffmpeg/progress.js';
import { reencodedTransform, type NormalizeInput, type NormalizeOutput } from './normalize-types.js';

// Stickers are untrusted images too: the same loader allow-list (see normalize-image.ts for why sharp runs in-process).
restrictSharpLoaders();

/**
 * Sticker → WEBP 512x512, the picture letterboxed on transparency, animation kept, ≤ 100 KB
 * static / 500 KB animated: encoded at decreasing qualities until it fits, else rejected.
 */
export async function normalizeSticker(input: NormalizeInput, limits: StickerLimits = STICKER_LIMITS): Promise<NormalizeOutput> {
  const mime = canonicalMime(input.sniffedMime);
  let meta: Metadata;
  try {
    meta = await sharp(input.inputPath, { limitInputPixels: false, failOn: 'error' }).metadata();
  } catch (err) {
    throw sharpFailureError(err, 'reading the sticker header');
  }
  const plan = planSticker(
    { mime, format: meta.format, width: meta.width, height: meta.pageHeight ?? meta.height, pages: meta.pages ?? 1 },
    limits,
  );
  if (plan.action === 'reject') throw new PermanentError(plan.code, plan.reason);

  const outputPath = join(input.scratchDir, 'sticker.webp');
  const inputOptions = sharpInputOptions(plan.limitInputPixels, plan.animated);
  let info: OutputInfo | null = null;
  for (const quality of plan.qualities) {
    input.signal?.throwIfAborted();
    const enc = stickerEncoder(quality, plan.animated);
    try {
      info = await sharp(input.inputPath, inputOptions)
        .timeout({ seconds: limits.timeoutSeconds })
        .autoOrient()
        .resize({ width: limits.size, height: limits.size, fit: 'contain', background: { r: 0, g: 0, b: 0, alpha: 0 } })
        .toColourspace('srgb')
        .webp(enc.options)
        .toFile(outputPath);
    } catch (err) {
      throw sharpFailureError(err, 'converting the sticker');
    }
    if (info.size <= plan.maxBytes) break;
    input.log.debug({ quality, size: info.size, maxBytes: plan.maxBytes }, 'sticker over its byte limit; lowering quality');
    info = null;
  }
  if (!info) {
    const last = plan.qualities[plan.qualities.length - 1];
    throw new PermanentError(
      'MEDIA_REJECTED',
      `the sticker does not fit ${plan.maxBytes / 1000} KB as ${limits.size}x${limits.size} WEBP even at quality ${last}`,
    );
  }
  createProgressThrottle(input.onProgress)(100);
  const transform = reencodedTransform(mime, 'image/webp');
  input.log.info({ transform, animated: plan.animated, bytes: info.size, pages: info.pages ?? 1 }, 'sticker normalized');
  return {
    outputPath,
    mimeType: 'image/webp',
    transform,
    width: info.width,
    height: info.pageHeight ?? info.height,
    durationMs: null,
    pages: null,
    waveform: null,
    variants: [],
  };
}
