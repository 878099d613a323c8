import { PermanentError } from '../domain/errors.js';

export type UrlRefusalReason =
  | 'invalid_url'
  | 'scheme'
  | 'credentials'
  | 'port'
  | 'blocked_address'
  | 'blocked_host'
  | 'redirects'
  | 'redirect_location'
  | 'redirect_downgrade';

/**
 * A URL the service will not fetch. Permanent: asking again cannot make a loopback address public, so
 * the worker fails the media at once instead of retrying. The resolved address is kept out of the
 * message and details on purpose, since both can reach the client and would otherwise turn the
 * fetcher into an oracle for internal DNS.
 */
export class UrlRefusedError extends PermanentError {
  declare readonly details: { field: 'url'; reason: UrlRefusalReason; [k: string]: unknown };
  constructor(reason: UrlRefusalReason, message: string, extra: Record<string, unknown> = {}) {
    super('VALIDATION_FAILED', message, { field: 'url', reason, ...extra });
    this.name = 'UrlRefusedError';
  }
}
