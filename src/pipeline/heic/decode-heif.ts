import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '../../domain/errors.js';
import type { Logger } from '../../log.js';
import { readRange } from '../document/file-range.js';
import { runHeifConvert } from '../ffmpeg/run.js';
import { buildHeifConvertArgs } from './heif-args.js';
import { heifFailureError } from './heif-failure.js';
import { derivedCanvasSize, HEIF_META_MAX_BYTES, parseHeifMeta } from './heif-header.js';
import { checkCanvas, checkDecodedSize, planHeifDecode } from './plan-heif.js';

export interface DecodeHeifInput {
  inputPath: string;
  scratchDir: string;
  maxPixels: number;
  /** Wall-clock limit of the decoder run. */
  timeoutMs: number;
  /** RLIMIT_AS of the decoder: bounds what a file whose coded size lies about its header can take. */
  maxDecoderBytes: number;
  signal?: AbortSignal | undefined;
  log?: Logger | undefined;
}

export interface DecodedHeif {
  /** A PNG in the scratch dir, already turned upright by libheif (irot/imir applied). */
  path: string;
  width: number;
  height: number;
  /** The orientation libheif applied, for the log. */
  rotation: 0 | 90 | 180 | 270;
  mirrored: boolean;
}

/**
 * HEIC/HEIF → PNG through heif-convert (libheif 1.15 with libde265; sharp's prebuilt libvips has no
 * HEVC decoder). The `meta` box is parsed first and the limits checked before anything decodes;
 * the decoder then runs without a shell, under a timeout that kills its process group, with CPU
 * and address-space caps, writing into the job's scratch dir.
 *
 * Orientation: libheif applies the HEIF transforms (`irot`, `imir`) while decoding, as the HEIF
 * spec requires, and heif-convert copies the Exif block unchanged into the PNG, Orientation tag
 * included (an iPhone writes both). The PNG is therefore upright already and its Exif orientation
 * must not be applied again: the caller stores it without auto-orienting.
 */
export async function decodeHeif(input: DecodeHeifInput): Promise<DecodedHeif> {
  const meta = parseHeifMeta(await readMetaBox(input.inputPath));
  const limits = { maxPixels: input.maxPixels };
  const plan = planHeifDecode(meta, limits);
  if (plan.action === 'reject') throw new PermanentError(plan.code, plan.reason);
  if (plan.canvas) {
    // A descriptor is 8 to 20 bytes; a declared length of 0 means "to the end".
    const length = Math.min(plan.canvas.length || 32, 32);
    const bytes =
      plan.canvas.source === 'idat'
        ? (meta.idat ?? Buffer.alloc(0)).subarray(plan.canvas.offset, plan.canvas.offset + length)
        : await readRange(input.inputPath, plan.canvas.offset, length);
    const why = checkCanvas(derivedCanvasSize(plan.canvas.type, bytes), plan, limits);
    if (why) throw new PermanentError('MEDIA_REJECTED', why);
  }
  input.signal?.throwIfAborted();

  const outputPath = join(input.scratchDir, 'heif-decoded.png');
  try {
    await runHeifConvert({
      args: buildHeifConvertArgs(input.inputPath, outputPath),
      timeoutMs: input.timeoutMs,
      signal: input.signal,
      log: input.log,
      // CPU-seconds backstop as ffmpeg's -timelimit: wall timeout × 2 cores, plus slack.
      rlimits: { addressSpaceBytes: input.maxDecoderBytes, cpuSeconds: Math.ceil((input.timeoutMs / 1000) * 2) + 10 },
    });
  } catch (err) {
    if (input.signal?.aborted) throw err;
    throw heifFailureError(err);
  }
  // heif-convert 1.15 exits 0 even when it could not write its output: the PNG must be there.
  const decoded = await readPngSize(outputPath).catch(() => null);
  if (!decoded) throw new Error('decoding the HEIF image: heif-convert wrote no PNG');
  const why = checkDecodedSize(decoded, plan, limits);
  if (why) throw new PermanentError('MEDIA_REJECTED', why);
  input.log?.debug({ ...decoded, rotation: plan.primary.rotation, mirrored: plan.primary.mirrored }, 'HEIF image decoded');
  return { path: outputPath, ...decoded, rotation: plan.primary.rotation, mirrored: plan.primary.mirrored };
}

/** The top-level `meta` box, found by walking box headers from the start (bounded in count and size). */
async function readMetaBox(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const head = Buffer.alloc(16);
    let pos = 0;
    for (let n = 0; n < 64 && pos + 8 <= size; n++) {
      const { bytesRead } = await fh.read(head, 0, 16, pos);
      let len = head.readUInt32BE(0);
      const type = head.toString('latin1', 4, 8);
      if (len === 1) {
        if (bytesRead < 16) break;
        const large = head.readBigUInt64BE(8);
        len = large > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(large);
      } else if (len === 0) {
        len = size - pos;
      }
      if (len < 8) break;
      if (type === 'meta') {
        if (len > HEIF_META_MAX_BYTES) throw new PermanentError('MEDIA_REJECTED', `the HEIF meta box is ${len} bytes, over the ${HEIF_META_MAX_BYTES} byte limit`);
        const buf = Buffer.alloc(len);
        const { bytesRead: got } = await fh.read(buf, 0, len, pos);
        if (got !== len) throw new PermanentError('MEDIA_REJECTED', 'the HEIF header is malformed (the meta box is cut off)');
        return buf;
      }
      pos += len;
    }
  } finally {
    await fh.close();
  }
  throw new PermanentError('MEDIA_REJECTED', 'the HEIF file has no meta box');
}

/** Width and height from a PNG's IHDR (the first chunk, at a fixed place). */
async function readPngSize(path: string): Promise<{ width: number; height: number } | null> {
  if ((await stat(path)).size < 24) return null;
  const head = await readRange(path, 0, 24);
  if (head.toString('latin1', 12, 16) !== 'IHDR') return null;
  return { width: head.readUInt32BE(16), height: head.readUInt32BE(20) };
}
