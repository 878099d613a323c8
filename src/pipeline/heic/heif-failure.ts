/**
 * What a failed heif-convert run means (pure), in the service's two failure kinds plus the one a
 * deployment causes: the decoder is not installed. That is refused as UNSUPPORTED_MEDIA_TYPE with a
 * message that says so, like any format this server cannot read: retrying would not install it,
 * and the client can resend the photo as JPEG.
 */
import { PermanentError } from '../../domain/errors.js';
import { formatSeconds, summarizeStderr, type ToolFailure } from '../ffmpeg/failure.js';

export const HEIF_DECODER_MISSING =
  'HEIC/HEIF photos cannot be converted on this server: its HEIF decoder (heif-convert, Debian package libheif-examples) is not installed; send JPEG, PNG or AVIF';

/** Signals that come from outside the run (the OOM killer, an operator), not from the file. */
const EXTERNAL_SIGNALS = new Set(['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGHUP']);

/** Our own trouble, not the photo's: a disk that refused the PNG, a broken install. */
const TRANSIENT_PATTERNS: readonly RegExp[] = [/could not write image/i, /Can't open/i, /error while loading shared libraries/i, /No space left/i];

export type HeifFailureKind = 'missing' | 'content' | 'transient';

/**
 * - spawn ENOENT/EACCES (prlimit itself absent), or prlimit's exit 126/127 "failed to execute"
 *   (heif-convert absent or not executable): `missing`.
 * - our wall-clock timeout: `content`, as for ffmpeg (the budget is far above what a photo takes).
 * - a crash or a kernel limit (SIGSEGV, SIGABRT from a failed allocation under the address-space
 *   cap, SIGXCPU from the CPU cap): `content`, the file drove the decoder there.
 * - any other exit code: `content` (libheif's "Could not read/decode"), unless it is about writing.
 */
export function classifyHeifFailure(err: unknown): HeifFailureKind {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOENT' || code === 'EACCES') return 'missing';
  if (!isFailure(err)) return 'transient';
  if (err.timedOut) return 'content';
  if (err.exitSignal !== null) return EXTERNAL_SIGNALS.has(err.exitSignal) ? 'transient' : 'content';
  if ((err.exitCode === 126 || err.exitCode === 127) && /failed to execute/i.test(err.stderrTail)) return 'missing';
  if (TRANSIENT_PATTERNS.some((re) => re.test(err.stderrTail))) return 'transient';
  return 'content';
}

/** The error the decode step throws for a failed run. */
export function heifFailureError(err: unknown): Error {
  const kind = classifyHeifFailure(err);
  if (kind === 'missing') return new PermanentError('UNSUPPORTED_MEDIA_TYPE', HEIF_DECODER_MISSING);
  if (!isFailure(err)) return err instanceof Error ? err : new Error(String(err));
  const tail = summarizeStderr(err.stderrTail).replace(/\/\S+/g, 'input');
  if (kind === 'content') {
    if (err.timedOut) {
      const limit = err.timeoutMs ? ` within ${formatSeconds(err.timeoutMs)}` : ' in time';
      return new PermanentError('MEDIA_REJECTED', `decoding the HEIF image: heif-convert did not finish${limit} and was stopped`);
    }
    const how = err.exitSignal ? `the decoder was stopped by ${err.exitSignal}` : 'the image could not be decoded';
    return new PermanentError('MEDIA_REJECTED', `decoding the HEIF image: ${how}${tail ? ` (${tail})` : ''}`);
  }
  const how = err.exitSignal ? `was killed by ${err.exitSignal}` : `exited with code ${err.exitCode}`;
  return new Error(`decoding the HEIF image: heif-convert ${how}${tail ? ` (${tail})` : ''}`);
}

function isFailure(err: unknown): err is ToolFailure {
  return err instanceof Error && err.name === 'ToolExitError' && 'stderrTail' in err && 'exitCode' in err;
}
