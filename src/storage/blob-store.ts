import { Readable } from 'node:stream';
import { StorageError } from '../domain/errors.js';

/** Inclusive byte range, as HTTP writes it. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface PutOptions {
  signal?: AbortSignal;
  contentLength?: number;
  /**
   * The key is new and nothing reads or points at it before this put returns (a staging key, a
   * processing run's own key). A driver may then let the object show at the key before its bytes
   * are durable (the fs driver fsyncs the file and its directory at once): after a crash such a key
   * may hold a part of the object. A put that fails still leaves nothing.
   */
  fresh?: boolean;
}

export interface PutResult {
  /** Bytes written to the store (ciphertext size for sealed objects). */
  bytes: number;
}

/**
 * The one storage interface. Drivers: `fs` (one machine) and `s3` (many). Keys come from
 * `src/domain/ids.ts`, never from user input. Every fault of the backend is a `StorageError`;
 * a missing key on `get` is a `BlobNotFoundError`.
 */
export interface BlobStore {
  readonly driver: 'fs' | 's3';
  /** Streams `body` into `key`; the object appears whole or not at all. A failing `body` leaves nothing. */
  put(key: string, body: Readable, opts?: PutOptions): Promise<PutResult>;
  /** A stream of the object, or of `range` of it. */
  get(key: string, range?: ByteRange): Promise<Readable>;
  /** Size in bytes, or null when absent. */
  stat(key: string): Promise<{ size: number } | null>;
  exists(key: string): Promise<boolean>;
  /** Deletes keys; absent keys are not an error. Throws StorageError listing keys that failed. */
  delete(keys: readonly string[]): Promise<void>;
  /** Lists keys under a prefix (for reconciliation and tests). */
  list(prefix: string): AsyncIterable<{ key: string; size: number; lastModified: Date }>;
  /** Cheap round-trip for readiness. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export class BlobNotFoundError extends Error {
  constructor(readonly key: string) {
    super(`no object at ${key}`);
    this.name = 'BlobNotFoundError';
  }
}

// ---------------------------------------------------------------------------------------------
// Additions shared by the drivers. They refine, not change, the contract above:
// - keys and prefixes follow one rule (`blobKeyProblem`) in every driver, so a key that works on
//   `s3` cannot fail later on `fs`;
// - `get` with a range whose start is at or past the end of the object rejects with
//   `RangeNotSatisfiableError`; an `end` past the last byte is clamped (HTTP semantics);
// - `put` with `contentLength` verifies it: a body of another length fails the put with
//   `ContentLengthMismatchError`, as a failing body would;
// - a failing `put` rejects with the body's own error, unchanged, when the body failed (e.g. a size
//   limit's FILE_TOO_LARGE), with `signal.reason` when aborted, else with a StorageError; it settles only
//   after its clean-up (temp file removed, multipart upload aborted) and leaves `body` destroyed;
// - `delete` throws `BlobDeleteError` (a `StorageError`) naming the keys that were not deleted;
// - `list` yields in no particular order.
// ---------------------------------------------------------------------------------------------

/** A key or prefix that breaks the key rule. A bug in the caller, never retried. */
export class InvalidBlobKeyError extends Error {
  constructor(readonly key: string, reason: string) {
    super(`invalid blob key ${JSON.stringify(key)}: ${reason}`);
    this.name = 'InvalidBlobKeyError';
  }
}

/** `range.start` is at or past the end of the object (an empty object satisfies no range). */
export class RangeNotSatisfiableError extends Error {
  constructor(readonly key: string, readonly range: ByteRange, readonly size: number | undefined) {
    super(`range ${range.start}-${range.end} not satisfiable for ${key}${size === undefined ? '' : ` (size ${size})`}`);
    this.name = 'RangeNotSatisfiableError';
  }
}

/** The body of a `put` was not `contentLength` bytes long; nothing was stored. */
export class ContentLengthMismatchError extends Error {
  constructor(readonly expected: number, readonly actual: number, readonly atLeast: boolean) {
    super(
      atLeast
        ? `body is longer than the declared ${expected} bytes (${actual} read so far)`
        : `body is ${actual} bytes, declared ${expected}`,
    );
    this.name = 'ContentLengthMismatchError';
  }
}

/** Some keys of a `delete` were not deleted (others may have been). */
export class BlobDeleteError extends StorageError {
  constructor(message: string, readonly failedKeys: readonly string[], cause?: unknown) {
    super(message, cause);
    this.name = 'BlobDeleteError';
  }
}

const MAX_KEY_BYTES = 1024;
const FORBIDDEN_CHARS = /[\\\u0000-\u001f\u007f]/;

/**
 * Why `key` is not a valid blob key, or null. Keys are relative POSIX paths of non-empty segments;
 * no `..` anywhere, no leading `/`, no backslash, NUL or control characters, and no segment starting
 * with `.` (dot-names are reserved for the drivers' temporary files). At most 1024 bytes (S3's limit).
 */
export function blobKeyProblem(key: string, opts: { prefix?: boolean } = {}): string | null {
  if (typeof key !== 'string') return 'not a string';
  if (key.length === 0) return opts.prefix ? null : 'empty';
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `longer than ${MAX_KEY_BYTES} bytes`;
  if (key.includes('..')) return 'contains ..';
  if (key.startsWith('/')) return 'starts with /';
  if (FORBIDDEN_CHARS.test(key)) return 'contains a backslash, NUL or control character';
  const segments = key.split('/');
  // a prefix may end with `/` or stop in the middle of a segment
  if (opts.prefix && segments[segments.length - 1] === '') segments.pop();
  for (const seg of segments) {
    if (seg === '') return 'has an empty segment';
    if (seg.startsWith('.')) return 'has a segment starting with .';
  }
  return null;
}

export function assertBlobKey(key: string): void {
  const problem = blobKeyProblem(key);
  if (problem) throw new InvalidBlobKeyError(key, problem);
}

export function assertBlobPrefix(prefix: string): void {
  const problem = blobKeyProblem(prefix, { prefix: true });
  if (problem) throw new InvalidBlobKeyError(prefix, problem);
}

/** Throws a RangeError for a malformed range (a caller bug), not for one past the end of an object. */
export function assertByteRange(range: ByteRange): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new RangeError(`invalid byte range ${String(start)}-${String(end)}`);
  }
}

/**
 * Wraps a backend's byte stream so that: its errors surface as `mapError(err)` (a StorageError) on
 * the returned stream; the first `skip` bytes are dropped and at most `take` bytes are passed on
 * (to correct a server that answered a wider range than asked); a source that ends before
 * `expected` bytes fails instead of looking like a short object. Destroying the returned stream
 * destroys the source at once, even while it is stalled.
 */
export function guardReadable(
  src: Readable,
  opts: { skip?: number; take?: number; expected?: number; mapError: (err: unknown) => Error },
): Readable {
  let skip = opts.skip ?? 0;
  let left = opts.take ?? Number.POSITIVE_INFINITY;
  let seen = 0;
  let settled = false;
  const out = new Readable({
    highWaterMark: 64 * 1024,
    read() {
      if (!settled) src.resume();
    },
    destroy(err, cb) {
      settled = true;
      src.destroy();
      cb(err);
    },
  });
  let srcEnded = false;
  const finish = (err?: Error): void => {
    if (settled) return;
    settled = true;
    if (err) out.destroy(err);
    else out.push(null);
    if (srcEnded) return;
    // All that was sent has arrived: let the source end by itself (an HTTP response then keeps its
    // keep-alive socket). Otherwise the rest is not wanted: drop it.
    if (!err && opts.expected !== undefined && seen >= opts.expected) src.resume();
    else src.destroy();
  };
  const onData = (chunk: Buffer | string): void => {
    if (settled) return;
    let buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    seen += buf.length;
    if (skip > 0) {
      if (buf.length <= skip) {
        skip -= buf.length;
        return;
      }
      buf = buf.subarray(skip);
      skip = 0;
    }
    if (buf.length > left) buf = buf.subarray(0, left);
    left -= buf.length;
    if (buf.length > 0 && !out.push(buf)) src.pause();
    if (left === 0) finish();
  };
  src.on('data', onData);
  src.once('end', () => {
    srcEnded = true;
    if (opts.expected !== undefined && seen !== opts.expected) {
      finish(opts.mapError(new Error(`stream ended after ${seen} of ${opts.expected} bytes`)));
    } else if (left !== Number.POSITIVE_INFINITY && left !== 0) {
      finish(opts.mapError(new Error(`stream ended ${left} bytes short of the requested range`)));
    } else {
      finish();
    }
  });
  src.on('error', (err) => finish(opts.mapError(err)));
  src.once('close', () => {
    // closed without 'end' or 'error' (destroyed by someone else): not a whole answer
    if (!srcEnded) finish(opts.mapError(new Error('stream closed before its end')));
  });
  return out;
}

/**
 * A put's body as the drivers read it: Buffers only, its length checked against `contentLength`
 * when one was given, and any error raised while reading it remembered, so the driver can rethrow
 * that error unchanged (a FILE_TOO_LARGE from a size limit must reach the caller as it was thrown).
 */
export function trackBody(body: AsyncIterable<Buffer | string>, contentLength: number | undefined) {
  const state = { bytes: 0, failed: false, error: undefined as unknown };
  async function* chunks(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of body) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        state.bytes += buf.length;
        if (contentLength !== undefined && state.bytes > contentLength) throw new ContentLengthMismatchError(contentLength, state.bytes, true);
        yield buf;
      }
      // Thrown before the driver sees the end, so nothing is committed (no rename, no CompleteMultipartUpload).
      if (contentLength !== undefined && state.bytes !== contentLength) throw new ContentLengthMismatchError(contentLength, state.bytes, false);
    } catch (err) {
      state.failed = true;
      state.error = err;
      throw err;
    }
  }
  return { state, chunks };
}
