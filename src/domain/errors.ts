/** The error codes of the public contract (API.md), with the HTTP status each maps to. */
export const ERROR_STATUS = {
  VALIDATION_FAILED: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  /** A live reference (a scheduled send) still needs the media; `details.refs` lists them. After CONFLICT: a bare 409 maps to CONFLICT. */
  MEDIA_IN_USE: 409,
  EXPIRED: 410,
  FILE_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  MEDIA_REJECTED: 422,
  RATE_LIMITED: 429,
  INTERNAL: 500,
  STORAGE_UNAVAILABLE: 502,
  QUEUE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** An error the API answers with its contract code; `details` names fields for VALIDATION_FAILED. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;
  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = details;
  }
}

/**
 * A content rejection: the media itself is bad, too large or disallowed. Final: the worker marks the
 * media `failed` with this code and never retries (src/jobs/failure.ts decides final vs retry).
 */
export class PermanentError extends AppError {
  constructor(code: 'FILE_TOO_LARGE' | 'UNSUPPORTED_MEDIA_TYPE' | 'MEDIA_REJECTED' | 'VALIDATION_FAILED' | 'NOT_FOUND' | 'EXPIRED', message: string, details?: unknown) {
    super(code, message, details);
    this.name = 'PermanentError';
  }
}

/** Object storage failed (network, 5xx, disk). Transient: workers retry, the API answers 502. */
export class StorageError extends AppError {
  constructor(message: string, cause?: unknown) {
    super('STORAGE_UNAVAILABLE', message);
    this.name = 'StorageError';
    this.cause = cause;
  }
}
