/**
 * How an image is made to fit its delivered limit (pure): after each encode, whether to store it,
 * which encode to try next, or to refuse. Quality first (down the ladder to its floor), then size
 * (down to a floor that still looks like the picture); each next encode is chosen from the bytes
 * the last one measured, not blindly, so the common case fits on the first or second encode.
 */
import type { ImageFitTuning } from './limits.js';
import type { FitStep } from './sharp-options.js';

/** One encode done: which ladder step, at which longest side, and its size. */
export interface FitAttempt {
  step: number;
  longSide: number;
  bytes: number;
}

export interface FitBounds {
  limitBytes: number;
  /** Longest side of the first encode: the picture as the plan sizes it (≤ 4096, oriented). */
  fullLongSide: number;
  animated: boolean;
}

export type FitDecision =
  | { action: 'store' }
  | { action: 'encode'; step: number; longSide: number }
  | { action: 'refuse'; reason: string; details: { limitBytes: number; bytes: number; longSide: number; encoding: string } };

export function planImageFit(ladder: readonly FitStep[], attempts: readonly FitAttempt[], bounds: FitBounds, tuning: ImageFitTuning): FitDecision {
  const last = attempts.at(-1);
  if (!last) return { action: 'encode', step: 0, longSide: bounds.fullLongSide };
  if (last.bytes <= bounds.limitBytes) return { action: 'store' };

  const lastStep = ladder.length - 1;
  // Never enlarged: an image already smaller than the floor keeps its own size.
  const floorSide = Math.min(bounds.animated ? tuning.minAnimatedLongSide : tuning.minLongSide, bounds.fullLongSide);
  const maxAttempts = bounds.animated ? tuning.maxAnimatedAttempts : tuning.maxAttempts;
  if ((last.step >= lastStep && last.longSide <= floorSide) || attempts.length >= maxAttempts) return refusal(ladder, last, bounds);
  const floor = { action: 'encode' as const, step: lastStep, longSide: floorSide };
  // The last encode allowed is the floor itself, so a refusal always speaks of the smallest version.
  if (attempts.length === maxAttempts - 1) return floor;

  const target = bounds.limitBytes * tuning.margin;
  const from = ladder[last.step]!;
  for (let t = last.step + 1; t <= lastStep; t++) {
    const step = ladder[t]!;
    // Another codec: nothing predicts its size, so it is measured at the current size first.
    if (step.family !== from.family) return { action: 'encode', step: t, longSide: last.longSide };
    if ((last.bytes * step.relSize) / from.relSize <= target) return { action: 'encode', step: t, longSide: last.longSide };
  }

  // Even the smallest setting is predicted over: shrink, encoded with that setting.
  const predicted = (last.bytes * ladder[lastStep]!.relSize) / from.relSize;
  const exponent = measuredExponent(attempts, lastStep) ?? tuning.pixelExponent;
  const areaFactor = (target / predicted) ** (1 / exponent);
  let side = Math.floor(last.longSide * Math.sqrt(areaFactor));
  // A second shrink at the same setting means the estimate missed: always move by a real step.
  if (last.step === lastStep) side = Math.min(side, Math.floor(last.longSide * tuning.minShrink));
  if (side <= floorSide) return floor;
  return { action: 'encode', step: lastStep, longSide: side };
}

/**
 * The size-vs-pixels exponent seen between the last two encodes at the same setting and different
 * sizes, clamped to what images do (0.5: flat graphics, 1.5: noise averaged away); null without two such encodes.
 */
function measuredExponent(attempts: readonly FitAttempt[], step: number): number | null {
  const same = attempts.filter((a) => a.step === step);
  const b = same.at(-1);
  const a = same.at(-2);
  if (!a || !b || a.longSide === b.longSide || a.bytes <= 0 || b.bytes <= 0) return null;
  const e = Math.log(b.bytes / a.bytes) / Math.log((b.longSide / a.longSide) ** 2);
  return Number.isFinite(e) ? Math.min(1.5, Math.max(0.5, e)) : null;
}

function refusal(ladder: readonly FitStep[], last: FitAttempt, bounds: FitBounds): FitDecision {
  const what = bounds.animated ? 'animation' : 'image';
  const encoding = ladder[last.step]!.label;
  const why = last.longSide >= bounds.fullLongSide ? 'its own size' : 'the smallest it is made';
  const advice = bounds.animated ? '; send a shorter or smaller animation' : '';
  return {
    action: 'refuse',
    reason: `the ${what} is ${formatBytes(last.bytes)} even as ${encoding} at ${last.longSide} px on its longest side (${why}), over the ${formatBytes(bounds.limitBytes)} limit${advice}`,
    details: { limitBytes: bounds.limitBytes, bytes: last.bytes, longSide: last.longSide, encoding },
  };
}

/** Decimal units, as the contract writes limits: 5 MB, 312 KB. */
export function formatBytes(n: number): string {
  if (n >= 1_000_000) return `${Number((n / 1_000_000).toFixed(1))} MB`;
  return `${Math.max(1, Math.round(n / 1000))} KB`;
}
