import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import { PermanentError } from '../domain/errors.js';
import { canonicalMime } from '../domain/policies.js';
import { capToolTimeout } from './ffmpeg/av-limits.js';
import { bmpToPng } from './ffmpeg/bmp-to-png.js';
import { decodeHeif } from './heic/decode-heif.js';
import { IMAGE_LIMITS, type ImageLimits } from './image/limits.js';
import { planImage, stillFormatForOpacity, type ImageFacts } from './image/plan-image.js';
import { sharpFailureError } from './image/sharp-failure.js';
import { encoderLadder, EXT_OF_FORMAT, MIME_OF_FORMAT, restrictSharpLoaders, sharpInputOptions, type EncoderChoice } from './image/sharp-options.js';
import { createProgressThrottle } from './ffmpeg/progress.js';
import { reencodedTransform, type NormalizeInput, type NormalizeOutput } from './normalize-types.js';

/**
 * Why untrusted images are decoded by sharp (libvips) inside the worker process rather than in a
 * child process.
 *
 * Measured (`node --import tsx bench/normalize.bench.ts child`: the same normalize() call in-process
 * and in one persistent forked child, interleaved; 2 shared cores at load average 5.8 to 9.9, so
 * two runs disagree by ±10 %): the child adds about 1 ms of IPC per image. A 640x480 JPEG (~100
 * images/s) went -5 % and +10 %, the mixed corpus -10 % and -1 %, four 640x480 in flight -5 % and
 * +28 %; the idle child is ~95 MiB RSS. Cheap in CPU, but a forked child is not isolation: it has
 * the worker's uid, environment (MASTER_KEYS) and files, so it only contains crashes, and
 * containing them well takes one child per worker slot (a crash must fail only its own media):
 * ~95 MiB each, plus an abort, timeout, log and shutdown protocol around every image.
 *
 * What bounds a hostile image here instead:
 * - only the loaders of accepted formats can run at all (restrictSharpLoaders: SVG, JPEG 2000,
 *   PDF, VIPS, matrix, CSV, raw… are blocked process-wide), and the loader libvips picked must be
 *   the sniffed type's (planImage) before a pixel is decoded;
 * - the header's size, frames and pixels of all frames are checked against maxPixels (40 MP),
 *   maxFrames and maxAnimatedPixels before decoding, and limitInputPixels enforces the same limit
 *   inside libvips if the data disagrees with the header; `failOn: 'error'`, `sequentialRead`;
 * - HEIC (libheif) and BMP are never decoded here: heif-convert (under prlimit, 1 GiB address
 *   space) and ffmpeg turn them into PNG in child processes, after their headers were checked;
 * - every libvips pipeline has a work timeout (timeoutSeconds), and sharp.concurrency() is 1 on
 *   glibc without jemalloc (libvips 8.18.7, sharp 0.35.5: update them with sharp's releases).
 *
 * What a libvips crash costs: the worker process ends with its jobs in flight (WORKER_CONCURRENCY,
 * 4 by default). Their locks expire after JOB_LOCK_SECONDS and other workers take them over; a
 * media that crashes every worker that takes it fails once it has stalled maxStalledCount (3)
 * times, and an innocent job fails only if it shares a worker with such a media four times over.
 */
restrictSharpLoaders();

/**
 * Image → JPEG (opaque), PNG (alpha actually used), or GIF/WEBP kept animated; auto-oriented,
 * longest side ≤ 4096, every metadata block dropped. BMP (ffmpeg) and HEIC/HEIF (heif-convert) are
 * first decoded to PNG in the scratch dir, after their headers were checked against the limits.
 *
 * Colour: pixels are converted to sRGB through the embedded ICC profile, then the profile is
 * dropped with the rest of the metadata. Keeping a Display P3 profile would keep wide-gamut
 * colour, but many receivers (Android thumbnails, web views, older clients) ignore profiles and
 * would show the untagged values washed out; sRGB looks right everywhere. The cost is CPU on
 * profile-tagged inputs only (measured in the bench).
 *
 * Every image is re-encoded, even a clean JPEG: keeping bytes would keep APPn/COM segments we do
 * not parse, and re-encoding is the one way to be sure nothing rides along.
 */
export async function normalizeImage(input: NormalizeInput, limits: ImageLimits = IMAGE_LIMITS): Promise<NormalizeOutput> {
  const mime = canonicalMime(input.sniffedMime);
  const source = await decodedSource(input, mime, limits);

  const meta = await readMetadata(source);
  const facts: ImageFacts = {
    mime,
    format: meta.format,
    width: meta.width,
    height: meta.pageHeight ?? meta.height,
    pages: meta.pages ?? 1,
    hasAlpha: meta.hasAlpha,
    compression: meta.compression ?? null,
  };
  const plan = planImage(facts, limits);
  if (plan.action === 'reject') throw new PermanentError(plan.code, plan.reason);
  input.signal?.throwIfAborted();

  const inputOptions = sharpInputOptions(plan.limitInputPixels, plan.animated);
  let format = plan.output;
  if (format === 'by-opacity') {
    // An alpha channel that is 255 everywhere (screenshots, exports) carries nothing: store a JPEG.
    const stats = await sharp(source, inputOptions)
      .timeout({ seconds: limits.timeoutSeconds })
      .stats()
      .catch((err: unknown) => {
        throw sharpFailureError(err, 'reading the image');
      });
    format = stillFormatForOpacity(stats.isOpaque);
  }
  input.signal?.throwIfAborted();

  const pipeline = (): Sharp => {
    let img = sharp(source, inputOptions).timeout({ seconds: limits.timeoutSeconds });
    if (plan.autoOrient) img = img.autoOrient();
    if (plan.fitLongSide !== null) img = img.resize({ width: plan.fitLongSide, height: plan.fitLongSide, fit: 'inside', withoutEnlargement: true });
    // 8-bit sRGB out: converts CMYK and 16-bit inputs, and is the space the ICC transform lands in.
    return img.toColourspace('srgb');
  };

  const outputPath = join(input.scratchDir, `image.${EXT_OF_FORMAT[format]}`);
  let info: OutputInfo | null = null;
  for (const choice of encoderLadder(format)) {
    input.signal?.throwIfAborted();
    info = await encode(pipeline(), choice, outputPath);
    if (info.size <= limits.maxBytes) break;
    input.log.debug({ size: info.size, choice }, 'image over the byte limit; trying a smaller encode');
    info = null;
  }
  if (!info) {
    const size = (await stat(outputPath)).size;
    throw new PermanentError('MEDIA_REJECTED', `the image is ${(size / 1e6).toFixed(1)} MB as ${format.toUpperCase()}, over the ${limits.maxBytes / 1e6} MB limit`);
  }

  createProgressThrottle(input.onProgress)(100);
  const mimeType = MIME_OF_FORMAT[format];
  const transform = reencodedTransform(mime, mimeType);
  const width = info.width;
  const height = info.pageHeight ?? info.height;
  input.log.info({ transform, from: mime, to: mimeType, width, height, pages: info.pages ?? 1, bytes: info.size }, 'image normalized');
  return { outputPath, mimeType, transform, width, height, durationMs: null, pages: null, waveform: null, variants: [] };
}

/** The file sharp reads: the upload itself, or the PNG a format sharp cannot decode was turned into. */
async function decodedSource(input: NormalizeInput, mime: string, limits: ImageLimits): Promise<string> {
  const common = { inputPath: input.inputPath, scratchDir: input.scratchDir, maxPixels: limits.maxPixels, signal: input.signal };
  if (mime === 'image/bmp') return bmpToPng({ ...common, maxToolMs: input.maxToolMs });
  if (mime === 'image/heic' || mime === 'image/heif') {
    const decoded = await decodeHeif({
      ...common,
      timeoutMs: capToolTimeout(limits.timeoutSeconds * 1000, input.maxToolMs),
      maxDecoderBytes: limits.maxDecoderBytes,
      log: input.log,
    });
    return decoded.path;
  }
  return input.inputPath;
}

/** Header-only read; an undecodable header is the image's fault. */
async function readMetadata(path: string): Promise<Metadata> {
  try {
    // No pixel limit here: the plan refuses oversize images with a message that says the size.
    return await sharp(path, { limitInputPixels: false, failOn: 'error' }).metadata();
  } catch (err) {
    throw sharpFailureError(err, 'reading the image header');
  }
}

async function encode(img: Sharp, choice: EncoderChoice, outputPath: string): Promise<OutputInfo> {
  try {
    switch (choice.format) {
      case 'jpeg':
        return await img.jpeg(choice.options).toFile(outputPath);
      case 'png':
        return await img.png(choice.options).toFile(outputPath);
      case 'webp':
        return await img.webp(choice.options).toFile(outputPath);
      case 'gif':
        return await img.gif(choice.options).toFile(outputPath);
    }
  } catch (err) {
    throw sharpFailureError(err, 'converting the image');
  }
}
