/** Image and sticker limits as data: the domain policy's numbers plus the encoding choices, each with its reason. */
import { MEDIA_POLICIES } from '../../domain/policies.js';

export interface ImageLimits {
  /** Pixels of one frame; checked from the header before decoding (and enforced by sharp's limitInputPixels). */
  maxPixels: number;
  maxFrames: number;
  /**
   * Pixels of all frames of an animation together: libvips holds an animation as one tall image,
   * so this bounds the decode's memory (100 MP ≈ 400 MB RGBA at worst, streamed in strips).
   */
  maxAnimatedPixels: number;
  /** Longest side stored: enough for a full-screen view on any phone, a quarter of a 48 MP photo's pixels. */
  maxLongSide: number;
  /** Output budget: the kind's stored limit. */
  maxBytes: number;
  /** libvips work limit per image; a decode that takes longer is abandoned (transient, retried). Also heif-convert's wall-clock limit. */
  timeoutSeconds: number;
  /**
   * Address-space cap of the HEIF decoder process. A 40 MP HEIC peaks at ~350 MB of address space
   * in heif-convert 1.15 (measured: 8000x5000); the cap bounds a file whose HEVC stream codes a
   * larger picture than its header declares, which no header check can see.
   */
  maxDecoderBytes: number;
}

export const IMAGE_LIMITS: ImageLimits = {
  maxPixels: MEDIA_POLICIES.image.maxPixels ?? 40_000_000,
  maxFrames: MEDIA_POLICIES.image.maxFrames ?? 1000,
  maxAnimatedPixels: 100_000_000,
  maxLongSide: 4096,
  maxBytes: MEDIA_POLICIES.image.maxBytes,
  timeoutSeconds: 60,
  maxDecoderBytes: 1024 * 1024 * 1024,
};

export interface StickerLimits {
  maxPixels: number;
  maxFrames: number;
  maxAnimatedPixels: number;
  /** Stickers are square WEBP of this side, letterboxed on transparency. */
  size: number;
  maxBytesStatic: number;
  maxBytesAnimated: number;
  /** WEBP qualities tried in order until the sticker fits; below the last one it is rejected. */
  staticQualities: readonly number[];
  animatedQualities: readonly number[];
  timeoutSeconds: number;
}

export const STICKER_LIMITS: StickerLimits = {
  maxPixels: MEDIA_POLICIES.sticker.maxPixels ?? 40_000_000,
  maxFrames: MEDIA_POLICIES.sticker.maxFrames ?? 1000,
  maxAnimatedPixels: 100_000_000,
  size: 512,
  maxBytesStatic: MEDIA_POLICIES.sticker.maxBytes,
  maxBytesAnimated: MEDIA_POLICIES.sticker.maxBytesAnimated ?? 500_000,
  staticQualities: [80, 65, 50, 35],
  // Each animated attempt re-encodes every frame: fewer, wider steps.
  animatedQualities: [75, 50, 30],
  timeoutSeconds: 60,
};
