import { PermanentError } from '../../domain/errors.js';

/**
 * sharp reports everything as an Error with libvips' text. System trouble (memory, files, disk,
 * the work timeout) is transient and retried; anything else is the image's fault (corrupt data,
 * pixel limit, unsupported variant) and final.
 */
const TRANSIENT = /ENOSPC|EMFILE|ENFILE|ENOMEM|EAGAIN|out of memory|No space left|Too many open files|timeout/i;

export function sharpFailureKind(message: string): 'content' | 'transient' {
  return TRANSIENT.test(message) ? 'transient' : 'content';
}

/** The error a step throws for a sharp failure; the message keeps libvips' first line, not paths. */
export function sharpFailureError(err: unknown, what: string): Error {
  const message = err instanceof Error ? err.message : String(err);
  const first = (message.split('\n')[0] ?? '').replace(/\/\S+/g, 'input').slice(0, 200);
  if (sharpFailureKind(message) === 'transient') return new Error(`${what}: ${first}`);
  return new PermanentError('MEDIA_REJECTED', `${what}: the image could not be decoded (${first})`);
}
