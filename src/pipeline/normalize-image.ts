import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import { PermanentError } from '../domain/errors.js';
import { canonicalMime } from '../domain/policies.js';
import { capToolTimeout } from './ffmpeg/av-limits.js';
import { bmpToPng } from './ffmpeg/bmp-to-png.js';
import { decodeHeif } from './heic/decode-heif.js';
import { IMAGE_LIMITS, type ImageLimits } from './image/limits.js';
import { planImage, stillFormatForOpacity, type ImageFacts, type StillOrAnimatedFormat } from './image/plan-image.js';
import { planImageFit, type FitAttempt } from './image/plan-image-fit.js';
import { sharpFailureError } from './image/sharp-failure.js';
import { EXT_OF_FORMAT, fitLadder, MIME_OF_FORMAT, restrictSharpLoaders, sharpInputOptions, type EncoderChoice } from './image/sharp-options.js';
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
 *
 * Size: the stored file must fit the delivered limit (`deliveredLimitBytes`, else the kind's), and
 * inputs may be larger (a 24 MP phone photo, a 12 MP PNG screenshot). planImageFit picks each next
 * encode from the bytes the last one measured: quality down to a floor, then smaller sizes down to
 * a floor, then FILE_TOO_LARGE. A still is decoded once, oriented, sized and in sRGB, into memory
 * (≤ 4096², so ≤ 64 MiB with alpha) and every encode starts from those pixels: a 24 MP JPEG is not
 * decoded again per step. An animation is decoded again per encode instead (up to 100 MP of frames
 * would not be held), which is why it gets fewer encodes.
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
  const sourcePipeline = (longSide: number | null): Sharp => {
    let img = sharp(source, inputOptions).timeout({ seconds: limits.timeoutSeconds });
    if (plan.autoOrient) img = img.autoOrient();
    if (longSide !== null) img = img.resize({ width: longSide, height: longSide, fit: 'inside', withoutEnlargement: true });
    // 8-bit sRGB out: converts CMYK and 16-bit inputs, and is the space the ICC transform lands in.
    return img.toColourspace('srgb');
  };

  let format: StillOrAnimatedFormat;
  let fullLongSide: number;
  let encodeAt: (choice: EncoderChoice, longSide: number, outputPath: string | null) => Promise<Encoded>;
  if (plan.animated) {
    format = plan.output as 'gif' | 'webp';
    const naturalLongSide = Math.max(facts.width, facts.height);
    fullLongSide = plan.fitLongSide ?? naturalLongSide;
    encodeAt = (choice, longSide, outputPath) => encode(sourcePipeline(longSide < naturalLongSide ? longSide : null), choice, outputPath);
  } else {
    // An image whose stored format is known before decoding (no alpha channel to inspect) and whose
    // input already fits the limit is encoded straight from its source, in one libvips pass: this is
    // the common small photo, and it fits on the first encode. Only when it does not are the pixels
    // decoded to memory for the rest of the ladder: one more decode, for the rare photo that needs it.
    const knownFormat = plan.output !== 'by-opacity' ? plan.output : facts.hasAlpha ? null : stillFormatForOpacity(true);
    const limitBytes = input.deliveredLimitBytes ?? limits.maxBytes;
    const naturalLongSide = Math.max(facts.width, facts.height);
    let pixels: DecodedStill | null = null;
    const decodePixels = async (): Promise<DecodedStill> => {
      const t = performance.now();
      const decoded = await decodeStill(sourcePipeline(plan.fitLongSide));
      input.log.debug({ width: decoded.info.width, height: decoded.info.height, channels: decoded.info.channels, ms: Math.round(performance.now() - t) }, 'image decoded');
      return decoded;
    };
    const fromPixels = (still: DecodedStill, choice: EncoderChoice, longSide: number, outputPath: string | null): Promise<Encoded> => {
      const { width, height, channels } = still.info;
      let img = sharp(still.data, { raw: { width, height, channels } }).timeout({ seconds: limits.timeoutSeconds });
      if (longSide < fullLongSide) img = img.resize({ width: longSide, height: longSide, fit: 'inside' });
      if (choice.format === 'jpeg') img = img.removeAlpha();
      return encode(img, choice, outputPath);
    };
    if (knownFormat !== null && (await sourceBytes(source)) <= limitBytes) {
      format = knownFormat;
      // The long side the resize gives (never enlarged; orientation swaps sides, not their maximum).
      fullLongSide = plan.fitLongSide !== null ? Math.min(plan.fitLongSide, naturalLongSide) : naturalLongSide;
      let encodes = 0;
      encodeAt = async (choice, longSide, outputPath) => {
        if (encodes++ === 0 && longSide === fullLongSide) {
          let img = sourcePipeline(plan.fitLongSide);
          if (choice.format === 'jpeg') img = img.removeAlpha();
          return encode(img, choice, outputPath);
        }
        pixels ??= await decodePixels();
        return fromPixels(pixels, choice, longSide, outputPath);
      };
    } else {
      pixels = await decodePixels();
      // An alpha channel that is 255 everywhere (screenshots, exports) carries nothing: store a JPEG.
      format = knownFormat ?? stillFormatForOpacity(!hasAlpha(pixels.info.channels) || alphaIsOpaque(pixels.data, pixels.info.channels));
      fullLongSide = Math.max(pixels.info.width, pixels.info.height);
      const decoded = pixels;
      encodeAt = (choice, longSide, outputPath) => fromPixels(decoded, choice, longSide, outputPath);
    }
  }
  input.signal?.throwIfAborted();

  const ladder = fitLadder(format, plan.animated, limits.storedMimes);
  const bounds = { limitBytes: input.deliveredLimitBytes ?? limits.maxBytes, fullLongSide, animated: plan.animated };
  const progress = createProgressThrottle(input.onProgress);
  const attempts: FitAttempt[] = [];
  let stored: { info: OutputInfo; outputPath: string; data: Buffer | undefined; format: StillOrAnimatedFormat } | null = null;
  const started = performance.now();
  for (;;) {
    const next = planImageFit(ladder, attempts, bounds, limits.fit);
    if (next.action === 'store') break;
    if (next.action === 'refuse') throw new PermanentError('FILE_TOO_LARGE', next.reason, next.details);
    input.signal?.throwIfAborted();
    if (attempts.length > 0) progress(Math.min(90, attempts.length * 15));
    const { choice, label } = ladder[next.step]!;
    // An input held in memory is encoded to memory: the job writes no plaintext file at all.
    const outputPath = input.inputBuffer ? null : join(input.scratchDir, `image.${EXT_OF_FORMAT[choice.format]}`);
    const t = performance.now();
    const { info, data } = await encodeAt(choice, next.longSide, outputPath);
    attempts.push({ step: next.step, longSide: next.longSide, bytes: info.size });
    stored = { info, outputPath: outputPath ?? '', data, format: choice.format };
    input.log.debug({ encoding: label, longSide: next.longSide, bytes: info.size, limitBytes: bounds.limitBytes, ms: Math.round(performance.now() - t) }, 'image encoded');
  }
  if (!stored) throw new Error('image fit ended without an encode');

  progress(100);
  const { info, outputPath, data } = stored;
  const mimeType = MIME_OF_FORMAT[stored.format];
  const transform = reencodedTransform(mime, mimeType);
  const width = info.width;
  const height = info.pageHeight ?? info.height;
  input.log.info(
    { transform, from: mime, to: mimeType, width, height, pages: info.pages ?? 1, bytes: info.size, encodes: attempts.length, encodeMs: Math.round(performance.now() - started) },
    'image normalized',
  );
  return { outputPath, ...(data ? { outputBuffer: data } : {}), mimeType, transform, width, height, durationMs: null, pages: null, waveform: null, variants: [] };
}

interface DecodedStill {
  data: Buffer;
  info: { width: number; height: number; channels: 1 | 2 | 3 | 4 };
}

/** Oriented, sized, sRGB pixels in memory: the one decode every encode of a still starts from. */
async function decodeStill(img: Sharp): Promise<DecodedStill> {
  try {
    const { data, info } = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    return { data, info: { width: info.width, height: info.height, channels: info.channels } };
  } catch (err) {
    throw sharpFailureError(err, 'reading the image');
  }
}

const hasAlpha = (channels: number): boolean => channels === 2 || channels === 4;

/** Whether every alpha byte (the last channel of each pixel) is 255; stops at the first that is not. */
function alphaIsOpaque(data: Buffer, channels: number): boolean {
  for (let i = channels - 1; i < data.length; i += channels) if (data[i] !== 255) return false;
  return true;
}

/** What sharp reads: the upload itself (in memory or a file), or the PNG a format sharp cannot decode was turned into. */
async function decodedSource(input: NormalizeInput, mime: string, limits: ImageLimits): Promise<string | Buffer> {
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
  return input.inputBuffer ?? input.inputPath;
}

/** The input's size in bytes, in memory or on disk (the decoded PNG of a BMP or HEIC included). */
async function sourceBytes(source: string | Buffer): Promise<number> {
  return typeof source === 'string' ? (await stat(source)).size : source.length;
}

/** Header-only read; an undecodable header is the image's fault. */
async function readMetadata(source: string | Buffer): Promise<Metadata> {
  try {
    // No pixel limit here: the plan refuses oversize images with a message that says the size.
    return await sharp(source, { limitInputPixels: false, failOn: 'error' }).metadata();
  } catch (err) {
    throw sharpFailureError(err, 'reading the image header');
  }
}

interface Encoded {
  info: OutputInfo;
  /** The encoded bytes, when encoded to memory (no output path). */
  data?: Buffer;
}

async function encode(img: Sharp, choice: EncoderChoice, outputPath: string | null): Promise<Encoded> {
  try {
    switch (choice.format) {
      case 'jpeg':
        img = img.jpeg(choice.options);
        break;
      case 'png':
        img = img.png(choice.options);
        break;
      case 'webp':
        img = img.webp(choice.options);
        break;
      case 'gif':
        img = img.gif(choice.options);
        break;
    }
    if (outputPath !== null) return { info: await img.toFile(outputPath) };
    return await img.toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw sharpFailureError(err, 'converting the image');
  }
}
