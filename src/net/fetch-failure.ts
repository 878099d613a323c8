import { PermanentError } from '../domain/errors.js';

export type UrlFetchFailureReason =
  /** The per-media fetch deadline passed (a host that never answers, or kept failing). */
  | 'deadline'
  /** The body moved slower than the floor rate for a whole stall window. */
  | 'stalled'
  /** An HTTP status that the next try would answer the same way. */
  | 'http_status'
  /** The host cannot be reached at all (no such name, no route, connect timeout, TLS). */
  | 'unreachable'
  /** The connection broke while the body was arriving. */
  | 'transfer';

/**
 * A URL that was allowed but could not be fetched within the rules. Final on purpose: openUrl
 * already retried what was worth retrying inside its deadline, so a job-level retry would only hold
 * a worker slot for minutes on an origin that is dead or dribbling. VALIDATION_FAILED because the
 * fault lies in the `url` the client gave, not in content we received and judged.
 */
export class UrlFetchFailedError extends PermanentError {
  declare readonly details: { field: 'url'; reason: UrlFetchFailureReason; [k: string]: unknown };
  constructor(reason: UrlFetchFailureReason, message: string, extra: Record<string, unknown> = {}, cause?: unknown) {
    super('VALIDATION_FAILED', message, { field: 'url', reason, ...extra });
    this.name = 'UrlFetchFailedError';
    if (cause !== undefined) this.cause = cause;
  }
}
