/**
 * What to do with an image, decided from its header alone (pure): reject it, or the output format,
 * whether animation is kept, and the resize. Everything here runs before a pixel is decoded.
 */
import type { ImageLimits } from './limits.js';

export interface ImageFacts {
  /** Canonical sniffed MIME (after BMP → PNG conversion: the MIME that was sniffed). */
  mime: string;
  /** libvips' loader, from sharp's metadata: jpeg, png, webp, gif, heif, tiff… */
  format: string;
  /** One frame's size, as stored (before orientation). */
  width: number;
  height: number;
  pages: number;
  hasAlpha: boolean;
  /** HEIF payload codec as libvips reports it: av1 (AVIF) is decodable by sharp, hevc is not (HEIC goes through heif-convert first). */
  compression: 'av1' | 'hevc' | null;
}

export type StillOrAnimatedFormat = 'jpeg' | 'png' | 'gif' | 'webp';

export type ImagePlan =
  | { action: 'reject'; code: 'MEDIA_REJECTED' | 'UNSUPPORTED_MEDIA_TYPE'; reason: string }
  | {
      action: 'encode';
      animated: boolean;
      /** `by-opacity`: JPEG if the alpha channel turns out unused, else PNG (needs a pixel scan). */
      output: StillOrAnimatedFormat | 'by-opacity';
      /** Longest side to fit in, or null to keep the size. */
      fitLongSide: number | null;
      /** sharp's limitInputPixels for this input: one frame, or all frames of an animation. */
      limitInputPixels: number;
      /**
       * Apply the EXIF orientation. Not for HEIF: libheif already turned the picture by `irot`/`imir`
       * while decoding, and the Exif it copied into the PNG still says how it was stored.
       */
      autoOrient: boolean;
    };

/** The libvips loaders each sniffed type may decode with; anything else is a polyglot or a lie. */
const LOADERS: Readonly<Record<string, readonly string[]>> = {
  'image/jpeg': ['jpeg'],
  'image/png': ['png'],
  'image/webp': ['webp'],
  'image/gif': ['gif'],
  'image/avif': ['heif'],
  // HEIC/HEIF arrive here already decoded to PNG by heif-convert, BMP converted to PNG by ffmpeg.
  'image/heic': ['png'],
  'image/heif': ['png'],
  'image/tiff': ['tiff'],
  'image/bmp': ['png'],
};

/** Types decoded by libheif before sharp sees them: upright already. */
const DECODED_UPRIGHT = new Set(['image/heic', 'image/heif']);

const ANIMATABLE = new Set(['gif', 'webp']);

export function planImage(f: ImageFacts, limits: ImageLimits): ImagePlan {
  if (f.format === 'heif' && f.compression !== 'av1') {
    return {
      action: 'reject',
      code: 'UNSUPPORTED_MEDIA_TYPE',
      reason: 'HEIC (HEVC) images cannot be decoded by this service; send JPEG, PNG or AVIF',
    };
  }
  const loaders = LOADERS[f.mime];
  if (!loaders) return { action: 'reject', code: 'UNSUPPORTED_MEDIA_TYPE', reason: `${f.mime} is not an image type this service converts` };
  if (!loaders.includes(f.format)) {
    return { action: 'reject', code: 'MEDIA_REJECTED', reason: `the content decodes as ${f.format}, not as its sniffed type ${f.mime}` };
  }
  if (!(f.width > 0 && f.height > 0)) return { action: 'reject', code: 'MEDIA_REJECTED', reason: 'the image declares no size' };
  const pages = Math.max(1, f.pages);
  const animated = pages > 1 && ANIMATABLE.has(f.format);
  if (animated && pages > limits.maxFrames) {
    return { action: 'reject', code: 'MEDIA_REJECTED', reason: `the animation has ${pages} frames, over the ${limits.maxFrames} frame limit` };
  }
  const pixels = f.width * f.height;
  if (pixels > limits.maxPixels) {
    return {
      action: 'reject',
      code: 'MEDIA_REJECTED',
      reason: `the image is ${f.width}x${f.height} (${(pixels / 1e6).toFixed(1)} MP), over the ${(limits.maxPixels / 1e6).toFixed(0)} MP limit`,
    };
  }
  if (animated && pixels * pages > limits.maxAnimatedPixels) {
    return {
      action: 'reject',
      code: 'MEDIA_REJECTED',
      reason: `the animation is ${pages} frames of ${f.width}x${f.height}, over the ${(limits.maxAnimatedPixels / 1e6).toFixed(0)} MP limit for all frames`,
    };
  }
  const longSide = Math.max(f.width, f.height);
  return {
    action: 'encode',
    animated,
    // Animations keep their own format (GIF stays GIF: every client plays it; WEBP stays WEBP).
    output: animated ? (f.format as 'gif' | 'webp') : f.hasAlpha ? 'by-opacity' : 'jpeg',
    fitLongSide: longSide > limits.maxLongSide ? limits.maxLongSide : null,
    limitInputPixels: animated ? limits.maxAnimatedPixels : limits.maxPixels,
    autoOrient: !DECODED_UPRIGHT.has(f.mime),
  };
}

/** The still format once the alpha channel has been looked at: a fully opaque alpha is dropped. */
export function stillFormatForOpacity(isOpaque: boolean): 'jpeg' | 'png' {
  return isOpaque ? 'jpeg' : 'png';
}
