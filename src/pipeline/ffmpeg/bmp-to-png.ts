import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '../../domain/errors.js';
import { readBmpHeader } from '../image/bmp-header.js';
import { buildBmpToPngArgs } from './args.js';
import { capToolTimeout, toolTimeoutMs } from './av-limits.js';
import { withToolErrors } from './failure.js';
import { runFfmpeg } from './run.js';

export interface BmpToPngInput {
  inputPath: string;
  scratchDir: string;
  maxPixels: number;
  signal?: AbortSignal | undefined;
  maxToolMs?: number | undefined;
}

/**
 * BMP → PNG through ffmpeg (libvips in sharp's prebuilt binaries has no BMP loader), after the
 * header's size is checked against the pixel limit: ffmpeg would decode any size it is given.
 * The PNG is lossless, so the image path afterwards treats it as the original.
 */
export async function bmpToPng(input: BmpToPngInput): Promise<string> {
  const fh = await open(input.inputPath, 'r');
  const head = Buffer.alloc(64);
  try {
    await fh.read(head, 0, 64, 0);
  } finally {
    await fh.close();
  }
  const header = readBmpHeader(head);
  if (!header || header.width <= 0 || header.height <= 0) throw new PermanentError('MEDIA_REJECTED', 'the BMP header is invalid');
  if (header.width * header.height > input.maxPixels) {
    throw new PermanentError('MEDIA_REJECTED', `the image is ${header.width}x${header.height}, over the ${(input.maxPixels / 1e6).toFixed(0)} MP limit`);
  }
  const outputPath = join(input.scratchDir, 'bmp-decoded.png');
  await withToolErrors('decoding the BMP', () =>
    runFfmpeg({
      args: buildBmpToPngArgs({ path: input.inputPath, demuxer: 'bmp_pipe', threads: 1 }, outputPath),
      timeoutMs: capToolTimeout(toolTimeoutMs('poster', null), input.maxToolMs),
      signal: input.signal,
    }),
  );
  return outputPath;
}
