/**
 * Scheduled sends (issue 15): the pure rules of a reference, a caller's note that a send at `sendAt`
 * needs a media. A reference never keeps a media by itself: expiry stays the law, and only `extend`
 * moves `expiresAt`, never past the retention cap (`createdAt` + MAX_RETENTION_SECONDS).
 */

/** The caller's own id of a send: 1–128 characters of a safe alphabet (no spaces, slashes or `%`). */
export const REF_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** REFERENCE_GRACE_SECONDS when a caller has no configuration at hand (the config's default too). */
export const DEFAULT_REFERENCE_GRACE_SECONDS = 24 * 3600;

/** Live references one media may have; one more is 409. */
export const MAX_REFERENCES_PER_MEDIA = 1000;

export const REFERENCE_WARNINGS = ['EXPIRES_BEFORE_SCHEDULE', 'RETENTION_CAP_REACHED'] as const;
export type ReferenceWarning = (typeof REFERENCE_WARNINGS)[number];

const S = 1000;

/** Why a `sendAt` is refused (400 naming the field), or null when it is acceptable at `now`. */
export function sendAtProblem(sendAt: Date, now: Date, maxRetentionSeconds: number): string | null {
  const t = sendAt.getTime();
  if (!Number.isFinite(t)) return 'must be an ISO 8601 date-time with an offset';
  if (t < now.getTime()) return 'must not be in the past';
  if (t > now.getTime() + maxRetentionSeconds * S) return `must be at most MAX_RETENTION_SECONDS (${maxRetentionSeconds} s) from now`;
  return null;
}

/** Until when a reference is live: its send, plus the grace in which a late send may still fetch the media. */
export function liveUntil(sendAt: Date, graceSeconds: number): Date {
  return new Date(sendAt.getTime() + graceSeconds * S);
}

/** A reference is over by itself once `sendAt` + grace has passed. */
export function isLive(sendAt: Date, graceSeconds: number, now: Date): boolean {
  return liveUntil(sendAt, graceSeconds).getTime() > now.getTime();
}

/** The latest a media may be kept: its creation plus the retention cap. */
export function retentionCap(createdAt: Date, maxRetentionSeconds: number): Date {
  return new Date(createdAt.getTime() + maxRetentionSeconds * S);
}

/** `EXPIRES_BEFORE_SCHEDULE` when the media is gone at or before `scheduledAt` (the sweep deletes at `expiresAt`). */
export function scheduleWarnings(expiresAt: Date, scheduledAt: Date): ReferenceWarning[] {
  return scheduledAt.getTime() >= expiresAt.getTime() ? ['EXPIRES_BEFORE_SCHEDULE'] : [];
}

export interface ReferencePlanInput {
  createdAt: Date;
  expiresAt: Date;
  sendAt: Date;
  extend: boolean;
  graceSeconds: number;
  maxRetentionSeconds: number;
}

export interface ReferencePlan {
  /** The media's expiry after this reference: unchanged unless `extend` moved it later. */
  expiresAt: Date;
  warnings: ReferenceWarning[];
  /** Set when the cap stopped `extend`: the media is kept until then, not until `sendAt` + grace. */
  keptUntil: Date | null;
}

/**
 * What adding a reference does to a media's expiry. With `extend`, `expiresAt` moves to `sendAt` +
 * grace when that is later, never past the cap and never earlier than it was; when the cap stopped
 * it, `RETENTION_CAP_REACHED`. `EXPIRES_BEFORE_SCHEDULE` when the media is gone by `sendAt` after all.
 */
export function planReference(i: ReferencePlanInput): ReferencePlan {
  let expiresAt = i.expiresAt;
  let keptUntil: Date | null = null;
  const warnings: ReferenceWarning[] = [];
  if (i.extend) {
    const wanted = liveUntil(i.sendAt, i.graceSeconds).getTime();
    const cap = retentionCap(i.createdAt, i.maxRetentionSeconds).getTime();
    if (wanted > expiresAt.getTime()) {
      const moved = Math.max(expiresAt.getTime(), Math.min(wanted, cap));
      expiresAt = new Date(moved);
      if (wanted > cap) {
        keptUntil = expiresAt;
        warnings.push('RETENTION_CAP_REACHED');
      }
    }
  }
  return { expiresAt, warnings: [...scheduleWarnings(expiresAt, i.sendAt), ...warnings], keptUntil };
}

/** `media.expiring` is due from `expiresAt` − EXPIRY_NOTICE_SECONDS until the media expires. */
export function expiryNoticeDue(expiresAt: Date, now: Date, noticeSeconds: number): boolean {
  const t = now.getTime();
  return t >= expiresAt.getTime() - noticeSeconds * S && t < expiresAt.getTime();
}

/** The sweep's rule for an expiry: due exactly when `expiresAt` is reached, whatever references say. */
export function expiredAt(expiresAt: Date, now: Date): boolean {
  return expiresAt.getTime() <= now.getTime();
}
