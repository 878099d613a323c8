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
  /** Output budget: the kind's delivered limit, unless the call names another (an app's override). */
  maxBytes: number;
  /** Types the kind stores: whether an over-limit PNG with alpha may become a WEBP. */
  storedMimes: readonly string[];
  /** How an image over its budget is made to fit (planImageFit). */
  fit: ImageFitTuning;
  /** libvips work limit per image; a decode that takes longer is abandoned (transient, retried). Also heif-convert's wall-clock limit. */
  timeoutSeconds: number;
  /**
   * Address-space cap of the HEIF decoder process. A 40 MP HEIC peaks at ~350 MB of address space
   * in heif-convert 1.15 (measured: 8000x5000); the cap bounds a file whose HEVC stream codes a
   * larger picture than its header declares, which no header check can see.
   */
  maxDecoderBytes: number;
}

export interface ImageFitTuning {
  /** Smallest longest side a still is shrunk to: about a phone screen's height, still the photo it was. */
  minLongSide: number;
  /** Smallest longest side an animation is shrunk to. */
  minAnimatedLongSide: number;
  /** Encodes at most for a still (each from the decoded pixels, 30–400 ms at 4096 px). */
  maxAttempts: number;
  /** Encodes at most for an animation: each one decodes and re-encodes every frame. */
  maxAnimatedAttempts: number;
  /** Aim this far under the limit: the sizes of the next encodes are estimates. */
  margin: number;
  /**
   * Bytes grow as pixels to this power when an image is shrunk. Measured 0.77–0.83 on a camera
   * photo (detail per pixel rises as it shrinks) and above 1 on fine noise (averaged away): the
   * photo's figure, so an estimate errs towards shrinking a little more than needed, not a miss.
   * Refined from two encodes at different sizes when the first estimate missed.
   */
  pixelExponent: number;
  /** A retry after a miss shrinks by at least this factor, so every step makes progress. */
  minShrink: number;
}

export const IMAGE_LIMITS: ImageLimits = {
  maxPixels: MEDIA_POLICIES.image.maxPixels ?? 40_000_000,
  maxFrames: MEDIA_POLICIES.image.maxFrames ?? 1000,
  maxAnimatedPixels: 100_000_000,
  maxLongSide: 4096,
  maxBytes: MEDIA_POLICIES.image.maxBytes,
  storedMimes: MEDIA_POLICIES.image.mimes,
  fit: { minLongSide: 1280, minAnimatedLongSide: 320, maxAttempts: 6, maxAnimatedAttempts: 4, margin: 0.93, pixelExponent: 0.8, minShrink: 0.95 },
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
