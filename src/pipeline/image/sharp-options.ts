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
 * One encode the fit-to-limit steps may try (see planImageFit). `relSize` is the expected size
 * relative to the first step of the same `family` (one codec) on the same pixels, so one measured
 * encode predicts the others. The figures were measured with sharp 0.35 on a camera photo; on fine
 * noise, size falls faster with quality than they say, so there the estimate errs towards a smaller
 * file, never towards a miss.
 */
export interface FitStep {
  choice: EncoderChoice;
  family: 'jpeg' | 'png' | 'png-palette' | 'webp' | 'gif';
  relSize: number;
  /** How a refusal names this encode. */
  label: string;
}

/** JPEG without mozjpeg: its trellis saves ~10% size for ~3x the CPU. Quality 82 first, as always; 50 is the floor. */
const jpegStep = (quality: number, relSize: number): FitStep => ({
  choice: { format: 'jpeg', options: { quality, mozjpeg: false, chromaSubsampling: '4:2:0' } },
  family: 'jpeg',
  relSize,
  label: `JPEG quality ${quality}`,
});

/** Lossy colour, lossless alpha (alphaQuality 100 by default), so transparency edges stay exact. */
const webpStep = (quality: number, relSize: number): FitStep => ({
  choice: { format: 'webp', options: { quality, effort: 4 } },
  family: 'webp',
  relSize,
  label: `WEBP quality ${quality}`,
});

const JPEG_STEPS: readonly FitStep[] = [jpegStep(82, 1), jpegStep(72, 0.8), jpegStep(64, 0.7), jpegStep(56, 0.62), jpegStep(50, 0.58)];
const WEBP_STEPS: readonly FitStep[] = [webpStep(80, 1), webpStep(72, 0.82), webpStep(64, 0.75), webpStep(56, 0.68), webpStep(50, 0.64)];
// Each animated attempt re-encodes every frame: fewer, wider steps.
const ANIMATED_WEBP_STEPS: readonly FitStep[] = [webpStep(80, 1), webpStep(65, 0.78), webpStep(50, 0.64)];
const PNG_LOSSLESS: FitStep = {
  choice: { format: 'png', options: { compressionLevel: 6, adaptiveFiltering: false, palette: false } },
  family: 'png',
  relSize: 1,
  label: 'PNG',
};
const PNG_PALETTE: FitStep = {
  choice: { format: 'png', options: { compressionLevel: 9, palette: true, quality: 90, effort: 4 } },
  family: 'png-palette',
  relSize: 1,
  label: '256-colour PNG',
};
// Fewer colours is no lever here: libvips' GIF writer only distinguishes 256 from 16 colours, and 16
// ruins a clip. Animations that are too big are made smaller instead.
const GIF_STEP: FitStep = { choice: { format: 'gif', options: { effort: 4 } }, family: 'gif', relSize: 1, label: 'GIF' };

/**
 * The encodes tried for an output format, best first; the last one is also the one smaller sizes
 * are encoded with. A PNG whose alpha is used stays PNG when it fits; over the limit it becomes a
 * WEBP (alpha kept) when the kind stores WEBP, else a 256-colour PNG.
 */
export function fitLadder(format: 'jpeg' | 'png' | 'webp' | 'gif', animated: boolean, storedMimes: readonly string[]): readonly FitStep[] {
  switch (format) {
    case 'jpeg':
      return JPEG_STEPS;
    case 'png':
      return storedMimes.includes('image/webp') ? [PNG_LOSSLESS, ...WEBP_STEPS] : [PNG_LOSSLESS, PNG_PALETTE];
    case 'webp':
      return animated ? ANIMATED_WEBP_STEPS : WEBP_STEPS;
    case 'gif':
      return [GIF_STEP];
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
