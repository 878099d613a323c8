/** Sticker decisions from the header (pure): accept and with which size budget and quality ladder, or reject. */
import type { StickerLimits } from './limits.js';

export interface StickerFacts {
  mime: string;
  format: string;
  width: number;
  height: number;
  pages: number;
}

export type StickerPlan =
  | { action: 'reject'; code: 'MEDIA_REJECTED' | 'UNSUPPORTED_MEDIA_TYPE'; reason: string }
  | { action: 'encode'; animated: boolean; maxBytes: number; qualities: readonly number[]; limitInputPixels: number };

const STICKER_LOADERS: Readonly<Record<string, string>> = { 'image/webp': 'webp', 'image/png': 'png', 'image/gif': 'gif' };

export function planSticker(f: StickerFacts, limits: StickerLimits): StickerPlan {
  const loader = STICKER_LOADERS[f.mime];
  if (!loader) return { action: 'reject', code: 'UNSUPPORTED_MEDIA_TYPE', reason: `stickers are WEBP, PNG or GIF, not ${f.mime}` };
  if (loader !== f.format) return { action: 'reject', code: 'MEDIA_REJECTED', reason: `the content decodes as ${f.format}, not as its sniffed type ${f.mime}` };
  if (!(f.width > 0 && f.height > 0)) return { action: 'reject', code: 'MEDIA_REJECTED', reason: 'the sticker declares no size' };
  const pages = Math.max(1, f.pages);
  const animated = pages > 1;
  if (pages > limits.maxFrames) {
    return { action: 'reject', code: 'MEDIA_REJECTED', reason: `the sticker has ${pages} frames, over the ${limits.maxFrames} frame limit` };
  }
  if (f.width * f.height > limits.maxPixels) {
    return { action: 'reject', code: 'MEDIA_REJECTED', reason: `the sticker is ${f.width}x${f.height}, over the ${(limits.maxPixels / 1e6).toFixed(0)} MP limit` };
  }
  if (animated && f.width * f.height * pages > limits.maxAnimatedPixels) {
    return { action: 'reject', code: 'MEDIA_REJECTED', reason: `the animated sticker is ${pages} frames of ${f.width}x${f.height}, over the limit for all frames` };
  }
  return {
    action: 'encode',
    animated,
    maxBytes: animated ? limits.maxBytesAnimated : limits.maxBytesStatic,
    qualities: animated ? limits.animatedQualities : limits.staticQualities,
    limitInputPixels: animated ? limits.maxAnimatedPixels : limits.maxPixels,
  };
}
