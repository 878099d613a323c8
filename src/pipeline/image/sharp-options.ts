/**
 * sharp's input and encoder options as data (pure), so the safe settings are visible and tested in
 * one place rather than scattered over call chains.
 */
import sharp, { type GifOptions, type JpegOptions, type PngOptions, type SharpOptions, type WebpOptions } from 'sharp';

/**
 * The libvips loaders this process may run, by format: the ones the image and sticker kinds decode
 * (LOADERS in plan-image.ts), UltraHDR being JPEG with a gain map. Each comes as a File, Buffer and
 * Source operation.
 */
export const ALLOWED_SHARP_LOADERS: readonly string[] = ['Jpeg', 'Uhdr', 'Png', 'Webp', 'Nsgif', 'Heif', 'Tiff'].flatMap((format) =>
  ['File', 'Buffer', 'Source'].map((from) => `VipsForeignLoad${format}${from}`),
);

/**
 * Every other libvips loader is blocked for the whole process (sharp.block is process-wide): the
 * prebuilt libvips also carries SVG (librsvg: XML, CSS, fonts), JPEG 2000, the VIPS and matrix/CSV
 * formats, raw, PDF and OpenSlide hooks, none of which we accept. libvips picks a loader from the
 * content, and `metadata()` runs it before our plan compares it with the sniffed type; blocked, a
 * file that would have been read by one of those is refused as an unsupported format instead.
 * Idempotent; called when the image steps load.
 */
export function restrictSharpLoaders(): void {
  sharp.block({ operation: ['VipsForeignLoad'] });
  sharp.unblock({ operation: [...ALLOWED_SHARP_LOADERS] });
}

/**
 * - `limitInputPixels`: refuse before decoding when the header's size is over the plan's limit
 *   (sharp's own default is 268 MP).
 * - `failOn: 'error'`: a truncated or corrupt image fails instead of decoding to grey; 'warning'
 *   would also refuse the benign warnings common in phone JPEGs (extraneous bytes before a marker).
 * - `sequentialRead`: decode top to bottom in strips, so memory stays a few rows for most images
 *   (libvips switches to random access by itself when a rotation needs it).
 * - `animated`: read all frames only when the animation is kept.
 */
export function sharpInputOptions(limitInputPixels: number, animated: boolean): SharpOptions {
  return { limitInputPixels, failOn: 'error', sequentialRead: true, animated };
}

export type EncoderChoice =
  | { format: 'jpeg'; options: JpegOptions }
  | { format: 'png'; options: PngOptions }
  | { format: 'webp'; options: WebpOptions }
  | { format: 'gif'; options: GifOptions };

/**
 * The encodes tried in order for a format, from best to smallest; the first that fits the byte
 * budget is stored. JPEG q82 without mozjpeg: mozjpeg's trellis saves ~10% size for ~3x the CPU.
 * PNG falls back to a 256-colour palette. GIF has no cheaper setting worth its artefacts.
 */
export function encoderLadder(format: 'jpeg' | 'png' | 'webp' | 'gif'): EncoderChoice[] {
  switch (format) {
    case 'jpeg':
      return [82, 72, 62].map((quality) => ({ format: 'jpeg' as const, options: { quality, mozjpeg: false, chromaSubsampling: '4:2:0' } }));
    case 'png':
      return [
        { format: 'png', options: { compressionLevel: 6, adaptiveFiltering: false, palette: false } },
        { format: 'png', options: { compressionLevel: 9, palette: true, quality: 90, effort: 4 } },
      ];
    case 'webp':
      return [80, 65, 50].map((quality) => ({ format: 'webp' as const, options: { quality, effort: 4 } }));
    case 'gif':
      return [{ format: 'gif', options: { effort: 4 } }];
  }
}

/** Sticker encode at one quality: animated WEBP trades effort for time since every frame is re-encoded per attempt. */
export function stickerEncoder(quality: number, animated: boolean): { format: 'webp'; options: WebpOptions } {
  return { format: 'webp', options: { quality, alphaQuality: Math.max(50, quality), effort: animated ? 2 : 4 } };
}

export const MIME_OF_FORMAT: Readonly<Record<'jpeg' | 'png' | 'webp' | 'gif', string>> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
};

export const EXT_OF_FORMAT: Readonly<Record<'jpeg' | 'png' | 'webp' | 'gif', string>> = {
  jpeg: 'jpg',
  png: 'png',
  webp: 'webp',
  gif: 'gif',
};
