import { UnrecoverableError } from 'bullmq';
import { isDatabaseDown } from '../db/errors.js';
import { AppError, PermanentError, StorageError, type ErrorCode } from '../domain/errors.js';

/**
 * - `permanent`: the work itself is bad (a content rejection, a payload no handler can read); retrying
 *   cannot help.
 * - `outage`: something we depend on is unreachable (storage, PostgreSQL, Redis); never the work's
 *   fault.
 * - `transient`: anything else; worth another attempt.
 */
export type FailureKind = 'permanent' | 'outage' | 'transient';

export interface FailureDecision {
  kind: FailureKind;
  /** No further attempt: the job fails for good now (and a media job marks its media `failed`). */
  final: boolean;
}

/** The codes of PermanentError: an AppError carrying one is a rejection wherever it was thrown. */
const CONTENT_CODES: ReadonlySet<ErrorCode> = new Set(['FILE_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'MEDIA_REJECTED', 'VALIDATION_FAILED', 'NOT_FOUND', 'EXPIRED']);

export function failureKind(err: unknown): FailureKind {
  if (err instanceof PermanentError || err instanceof UnrecoverableError) return 'permanent';
  if (err instanceof AppError && CONTENT_CODES.has(err.code)) return 'permanent';
  if (err instanceof StorageError || isDatabaseDown(err)) return 'outage';
  if (err instanceof AppError && (err.code === 'STORAGE_UNAVAILABLE' || err.code === 'QUEUE_UNAVAILABLE')) return 'outage';
  return 'transient';
}

/**
 * The one place that decides final vs retry, for every job. A permanent failure is final at once. An
 * outage is never final: past the last attempt a media stays `queued` and the reconciler hands it to
 * the queue again, so an accepted upload survives an outage of any length. Anything else is retried
 * until the attempts are spent.
 */
export function decideFailure(err: unknown, attempt: { finalAttempt: boolean }): FailureDecision {
  const kind = failureKind(err);
  return { kind, final: kind === 'permanent' || (kind === 'transient' && attempt.finalAttempt) };
}
