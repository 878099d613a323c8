import type { MediaKind } from '../domain/kinds.js';
import { deliveredLimitBytes, HARD_CAP_BYTES, inputLimitBytes, type KindLimits } from '../domain/policies.js';

interface CapConfig {
  config: { HARD_CAP_BYTES: number };
}

/** No input of any kind is ever larger: the configured cap, never above the built-in one. */
export function hardCapBytes(deps: CapConfig): number {
  return Math.min(deps.config.HARD_CAP_BYTES, HARD_CAP_BYTES);
}

/**
 * A kind's input limit for an app, what every way in refuses with 413 past (see inputLimitBytes):
 * larger than what is delivered where normalization makes the input fit.
 */
export function limitFor(deps: CapConfig, limits?: KindLimits): (kind: MediaKind) => number {
  return (kind) => inputLimitBytes(kind, limits?.[kind], deps.config.HARD_CAP_BYTES);
}

/** A kind's delivered limit for an app (its override, else the kind's own): what normalization must fit. */
export function deliveredLimitFor(limits?: KindLimits): (kind: MediaKind) => number {
  return (kind) => deliveredLimitBytes(kind, limits?.[kind]);
}
