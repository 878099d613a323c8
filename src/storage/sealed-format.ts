/**
 * The encrypted object format (DESIGN.md, "Encryption at rest"). Every object in the store, staging
 * included, is written as:
 *
 * ```
 * header   "MFE1" | version u8 (=1) | keyIdLen u8 (1..64) | keyId utf8 | noncePrefix (7)
 *          | wrapNonce (12) | wrapped data key (32) | wrap tag (16)            = 73 + keyIdLen bytes
 * segments ciphertext (64 KiB, the last 0..64 KiB) | tag (16), repeated; at least one segment
 * ```
 *
 * - The data key is random per object and wrapped (AES-256-GCM) by the master key named in the header.
 *   The wrap's AAD is the header up to the wrap nonce plus the context (purpose, appId, mediaId), so
 *   any change to the header, or a copy of the object under another media, app or purpose, fails to
 *   unwrap. The segments carry no AAD of their own: binding them to the data key is enough (the key is
 *   unique to the object), and it leaves rotation free to re-wrap the header without re-encrypting the
 *   payload.
 * - Segment i is sealed with nonce = noncePrefix || u32be(i) || final flag (1 on the last segment).
 *   Reordering changes i, truncation at a segment boundary leaves a last segment sealed with flag 0,
 *   and appending leaves the real last segment read with flag 0: all three fail the tag.
 * - A segment's plaintext is only emitted once its tag has verified. Because the final flag is part
 *   of the nonce, the opener only starts a segment once it knows whether another byte follows it.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { ByteRange } from './blob-store.js';

export const SEGMENT_SIZE = 64 * 1024;

export interface Keyring {
  activeKeyId: string;
  keys: ReadonlyMap<string, Buffer>;
}

export interface SealContext {
  purpose: 'media' | 'staging' | 'variant';
  appId: string;
  mediaId: string;
}

/** What went wrong, for metrics and logs; the message says it in words. */
export type SealedFormatReason =
  | 'bad-magic'
  | 'unsupported-version'
  | 'malformed'
  | 'unknown-key'
  | 'unwrap-failed'
  | 'segment-auth'
  | 'truncated'
  | 'too-large';

/** The sealed bytes are not a valid object for this keyring and context. Never transient: do not retry. */
export class SealedFormatError extends Error {
  readonly reason: SealedFormatReason;
  constructor(message: string, reason: SealedFormatReason = 'malformed') {
    super(message);
    this.name = 'SealedFormatError';
    this.reason = reason;
  }
}

const MAGIC = Buffer.from('MFE1', 'latin1');
const VERSION = 1;
const TAG_SIZE = 16;
const KEY_SIZE = 32;
const NONCE_SIZE = 12;
const NONCE_PREFIX_SIZE = 7;
const MAX_KEY_ID_BYTES = 64;
const WRAPPED_KEY_SIZE = NONCE_SIZE + KEY_SIZE + TAG_SIZE;
/** Header size without the key id. */
const FIXED_HEADER_SIZE = MAGIC.length + 1 + 1 + NONCE_PREFIX_SIZE + WRAPPED_KEY_SIZE;
/** The largest header there can be: a ranged read fetches this many bytes to be sure it has the header. */
export const MAX_HEADER_SIZE = FIXED_HEADER_SIZE + MAX_KEY_ID_BYTES;
const SEALED_SEGMENT_SIZE = SEGMENT_SIZE + TAG_SIZE;
/** The counter is 32 bits: 2^32 segments of 64 KiB (256 TiB) is the most one object can hold. */
const MAX_SEGMENTS = 2 ** 32;
/**
 * Bytes per cipher.update/hash.update call. bench/crypto.bench.ts measured whole 64 KiB segments
 * 5-10% faster than 16 KiB slices in paired runs here (each update allocates its output, so fewer,
 * larger ones win; 64 KiB still sits in L2 between the hash and the cipher), and they hand the next
 * stream one buffer per segment instead of four.
 */
const DEFAULT_UPDATE_SLICE = SEGMENT_SIZE;
const PURPOSES: ReadonlySet<string> = new Set(['media', 'staging', 'variant']);

/** Size of a sealed object, for Content-Length and for checking a stored object's size. */
export function sealedSize(plainBytes: number, keyIdLength: number): number {
  if (!Number.isSafeInteger(plainBytes) || plainBytes < 0) throw new RangeError(`plainBytes must be a non-negative integer, got ${plainBytes}`);
  if (!Number.isInteger(keyIdLength) || keyIdLength < 1 || keyIdLength > MAX_KEY_ID_BYTES) {
    throw new RangeError(`keyIdLength must be 1..${MAX_KEY_ID_BYTES} bytes, got ${keyIdLength}`);
  }
  const segments = Math.max(1, Math.ceil(plainBytes / SEGMENT_SIZE));
  return FIXED_HEADER_SIZE + keyIdLength + plainBytes + segments * TAG_SIZE;
}

// ---------------------------------------------------------------------------------------------
// Keys and context

/** Parses `id1:base64,id2:base64` (each key exactly 32 bytes) into a keyring. Messages never contain key material. */
export function parseMasterKeys(spec: string, activeKeyId: string): Keyring {
  const keys = new Map<string, Buffer>();
  const entries = spec.split(',').map((e) => e.trim()).filter((e) => e !== '');
  if (entries.length === 0) throw new Error('master keys: no keys given (expected "id:base64,...")');
  entries.forEach((entry, i) => {
    const colon = entry.indexOf(':');
    if (colon < 0) throw new Error(`master keys: entry ${i + 1} has no ":" (expected "id:base64")`);
    const id = entry.slice(0, colon).trim();
    const b64 = entry.slice(colon + 1).trim();
    checkKeyId(id, `master keys: entry ${i + 1}`);
    if (keys.has(id)) throw new Error(`master keys: key id "${id}" appears twice`);
    keys.set(id, decodeKey(id, b64));
  });
  if (!keys.has(activeKeyId)) {
    throw new Error(`master keys: active key id "${activeKeyId}" is not among the keys (${[...keys.keys()].join(', ')})`);
  }
  return { activeKeyId, keys };
}

function decodeKey(id: string, b64: string): Buffer {
  // Buffer.from(…, 'base64') skips characters it does not know, so a typo would silently give a
  // different key: check the alphabet, then that the text is the canonical encoding of what it decodes to.
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) && !/^[A-Za-z0-9_-]+={0,2}$/.test(b64)) {
    throw new Error(`master keys: key "${id}" is not valid base64`);
  }
  const key = Buffer.from(b64, 'base64');
  const canonical = key.toString(b64.includes('-') || b64.includes('_') ? 'base64url' : 'base64');
  if (canonical.replace(/=+$/, '') !== b64.replace(/=+$/, '')) throw new Error(`master keys: key "${id}" is not valid base64`);
  if (key.length !== KEY_SIZE) throw new Error(`master keys: key "${id}" is ${key.length} bytes, expected ${KEY_SIZE}`);
  return key;
}

function checkKeyId(id: string, where: string): void {
  if (id === '') throw new Error(`${where}: empty key id`);
  const n = Buffer.byteLength(id, 'utf8');
  if (n > MAX_KEY_ID_BYTES) throw new Error(`${where}: key id is ${n} bytes, at most ${MAX_KEY_ID_BYTES}`);
  if (/[,:\s]/.test(id)) throw new Error(`${where}: key id "${id}" contains ",", ":" or whitespace`);
}

function masterKey(keyring: Keyring, keyId: string): Buffer | undefined {
  const key = keyring.keys.get(keyId);
  // A short master key is a configuration fault, not a property of the object being opened.
  if (key !== undefined && key.length !== KEY_SIZE) throw new Error(`master key "${keyId}" is ${key.length} bytes, expected ${KEY_SIZE}`);
  return key;
}

/** Length-prefixed so that no two different contexts encode to the same bytes. */
function encodeContext(ctx: SealContext): Buffer {
  if (!PURPOSES.has(ctx.purpose)) throw new TypeError(`seal context: unknown purpose "${String(ctx.purpose)}"`);
  const parts = [ctx.purpose, ctx.appId, ctx.mediaId].map((s, i) => {
    if (typeof s !== 'string' || s === '') throw new TypeError(`seal context: ${['purpose', 'appId', 'mediaId'][i]} must be a non-empty string`);
    const b = Buffer.from(s, 'utf8');
    if (b.length > 0xffff) throw new TypeError('seal context: field longer than 65535 bytes');
    return b;
  });
  const out = Buffer.allocUnsafe(parts.reduce((n, p) => n + 2 + p.length, 0));
  let off = 0;
  for (const p of parts) {
    off = out.writeUInt16BE(p.length, off);
    off += p.copy(out, off);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Header

/**
 * A parsed header with its data key unwrapped. Whoever holds one either hands it to
 * createRangeOpenStream, which zeroes the key when the stream ends, or zeroes `dataKey` itself.
 */
export interface SealedHeader {
  readonly headerSize: number;
  readonly keyId: string;
  readonly dataKey: Buffer;
  readonly noncePrefix: Buffer;
}

function buildHeader(keyId: string, master: Buffer, dataKey: Buffer, noncePrefix: Buffer, ctx: Buffer): Buffer {
  const id = Buffer.from(keyId, 'utf8');
  const header = Buffer.alloc(FIXED_HEADER_SIZE + id.length);
  let off = MAGIC.copy(header, 0);
  off = header.writeUInt8(VERSION, off);
  off = header.writeUInt8(id.length, off);
  off += id.copy(header, off);
  off += noncePrefix.copy(header, off);
  const wrapNonce = randomBytes(NONCE_SIZE);
  const wrapAadEnd = off;
  off += wrapNonce.copy(header, off);
  const cipher = createCipheriv('aes-256-gcm', master, wrapNonce, { authTagLength: TAG_SIZE });
  cipher.setAAD(Buffer.concat([header.subarray(0, wrapAadEnd), ctx]));
  off += cipher.update(dataKey).copy(header, off);
  cipher.final();
  cipher.getAuthTag().copy(header, off);
  return header;
}

/** Parses and unwraps; null while `buf` may still be the start of a longer header. */
function parseHeader(buf: Buffer, keyring: Keyring, ctx: Buffer): SealedHeader | null {
  const magicSeen = Math.min(buf.length, MAGIC.length);
  if (!buf.subarray(0, magicSeen).equals(MAGIC.subarray(0, magicSeen))) throw new SealedFormatError('not a sealed object (bad magic)', 'bad-magic');
  if (buf.length < MAGIC.length + 2) return null;
  const version = buf[MAGIC.length]!;
  if (version !== VERSION) throw new SealedFormatError(`unsupported sealed format version ${version}`, 'unsupported-version');
  const idLen = buf[MAGIC.length + 1]!;
  if (idLen < 1 || idLen > MAX_KEY_ID_BYTES) throw new SealedFormatError(`bad key id length ${idLen} in header`, 'malformed');
  const headerSize = FIXED_HEADER_SIZE + idLen;
  if (buf.length < headerSize) return null;

  let off = MAGIC.length + 2;
  let keyId: string;
  try {
    keyId = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(off, off + idLen));
  } catch {
    throw new SealedFormatError('key id in header is not utf-8', 'malformed');
  }
  off += idLen;
  const noncePrefix = Buffer.from(buf.subarray(off, off + NONCE_PREFIX_SIZE));
  off += NONCE_PREFIX_SIZE;
  const wrapAadEnd = off;
  const master = masterKey(keyring, keyId);
  if (master === undefined) throw new SealedFormatError(`sealed with unknown master key id ${JSON.stringify(keyId)}`, 'unknown-key');

  const decipher = createDecipheriv('aes-256-gcm', master, buf.subarray(off, off + NONCE_SIZE), { authTagLength: TAG_SIZE });
  off += NONCE_SIZE;
  decipher.setAAD(Buffer.concat([buf.subarray(0, wrapAadEnd), ctx]));
  decipher.setAuthTag(buf.subarray(off + KEY_SIZE, off + KEY_SIZE + TAG_SIZE));
  let dataKey: Buffer;
  try {
    dataKey = Buffer.concat([decipher.update(buf.subarray(off, off + KEY_SIZE)), decipher.final()]);
  } catch {
    throw new SealedFormatError(
      `cannot unwrap the data key with master key ${JSON.stringify(keyId)}: wrong key, wrong context (purpose/appId/mediaId) or tampered header`,
      'unwrap-failed',
    );
  }
  return { headerSize, keyId, dataKey, noncePrefix };
}

// ---------------------------------------------------------------------------------------------
// Byte queue: holds views of the incoming chunks so segments are assembled without concatenation.

class ByteQueue {
  private chunks: (Buffer | undefined)[] = [];
  private head = 0;
  private offset = 0;
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.length += b.length;
  }

  /** Hands the next `n` bytes to `fn` as views, in order, and drops them. */
  consume(n: number, fn: (view: Buffer) => void): void {
    this.length -= n;
    while (n > 0) {
      const c = this.chunks[this.head]!;
      const take = Math.min(c.length - this.offset, n);
      fn(this.offset === 0 && take === c.length ? c : c.subarray(this.offset, this.offset + take));
      n -= take;
      this.offset += take;
      if (this.offset === c.length) {
        // Release consumed chunks at once: a caller may write chunks of many megabytes.
        this.chunks[this.head++] = undefined;
        this.offset = 0;
      }
    }
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head >= 1024) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  /** Copies out the next `n` bytes and drops them (tags, headers: a few bytes). */
  take(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    this.consume(n, (v) => {
      off += v.copy(out, off);
    });
    return out;
  }

  /** Copies up to `n` leading bytes without dropping them. */
  peek(n: number): Buffer {
    const out = Buffer.allocUnsafe(Math.min(n, this.length));
    let off = 0;
    for (let i = this.head; i < this.chunks.length && off < out.length; i++) {
      const c = this.chunks[i]!;
      off += c.copy(out, off, i === this.head ? this.offset : 0);
    }
    return out;
  }
}

function segmentNonce(iv: Buffer, index: number, final: boolean): Buffer {
  if (index >= MAX_SEGMENTS) throw new SealedFormatError('object exceeds 2^32 segments', 'too-large');
  iv.writeUInt32BE(index, NONCE_PREFIX_SIZE);
  iv[NONCE_SIZE - 1] = final ? 1 : 0;
  return iv;
}

// ---------------------------------------------------------------------------------------------
// Sealing

export interface SealResult {
  /** SHA-256 of the plaintext, hex. */
  sha256: string;
  plainBytes: number;
  sealedBytes: number;
  keyId: string;
}

/** Tuning for benchmarks; production code passes nothing. */
export interface SealTuning {
  /** Bytes per cipher/hash update call (default: a whole 64 KiB segment). */
  updateSlice?: number;
}

class SealTransform extends Transform {
  private readonly queue = new ByteQueue();
  private readonly hash = createHash('sha256');
  private readonly iv = Buffer.alloc(NONCE_SIZE);
  private header: Buffer | null;
  private segment = 0;
  private plainBytes = 0;
  private sealedBytes = 0;
  private settled = false;

  constructor(
    private readonly dataKey: Buffer,
    noncePrefix: Buffer,
    header: Buffer,
    private readonly keyId: string,
    private readonly slice: number,
    private readonly resolve: (r: SealResult) => void,
    private readonly reject: (e: Error) => void,
  ) {
    super({ readableHighWaterMark: SEALED_SEGMENT_SIZE, writableHighWaterMark: SEGMENT_SIZE });
    noncePrefix.copy(this.iv, 0);
    this.header = header;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.pushHeader();
      this.queue.push(chunk);
      // A full segment is only known not to be the last once a byte beyond it has arrived.
      while (this.queue.length > SEGMENT_SIZE) this.sealSegment(SEGMENT_SIZE, false);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.pushHeader();
      this.sealSegment(this.queue.length, true);
      this.settled = true;
      this.resolve({ sha256: this.hash.digest('hex'), plainBytes: this.plainBytes, sealedBytes: this.sealedBytes, keyId: this.keyId });
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    if (!this.settled) {
      this.settled = true;
      this.reject(err ?? new Error('seal stream was destroyed before its end'));
    }
    this.dataKey.fill(0);
    cb(err);
  }

  private pushHeader(): void {
    if (this.header === null) return;
    this.push(this.header);
    this.sealedBytes += this.header.length;
    this.header = null;
  }

  private sealSegment(n: number, final: boolean): void {
    const cipher = createCipheriv('aes-256-gcm', this.dataKey, segmentNonce(this.iv, this.segment, final), { authTagLength: TAG_SIZE });
    const { slice, hash } = this;
    this.queue.consume(n, (view) => {
      for (let off = 0; off < view.length; off += slice) {
        const s = off === 0 && view.length <= slice ? view : view.subarray(off, off + slice);
        // Hash the slice right before encrypting it, while it is still in cache.
        hash.update(s);
        this.push(cipher.update(s));
      }
    });
    cipher.final();
    this.push(cipher.getAuthTag());
    this.segment++;
    this.plainBytes += n;
    this.sealedBytes += n + TAG_SIZE;
  }
}

/** Plaintext in, sealed bytes out; hashes the plaintext (SHA-256) in the same pass. */
export function createSealStream(
  keyring: Keyring,
  ctx: SealContext,
  tuning: SealTuning = {},
): { stream: Transform; result: Promise<SealResult> } {
  const keyId = keyring.activeKeyId;
  checkKeyId(keyId, 'active master key');
  const master = masterKey(keyring, keyId);
  if (master === undefined) throw new Error(`active master key id "${keyId}" is not in the keyring`);
  const slice = tuning.updateSlice ?? DEFAULT_UPDATE_SLICE;
  if (!Number.isInteger(slice) || slice < 1) throw new RangeError(`updateSlice must be a positive integer, got ${slice}`);

  const dataKey = randomBytes(KEY_SIZE);
  const noncePrefix = randomBytes(NONCE_PREFIX_SIZE);
  const header = buildHeader(keyId, master, dataKey, noncePrefix, encodeContext(ctx));
  let resolve!: (r: SealResult) => void;
  let reject!: (e: Error) => void;
  const result = new Promise<SealResult>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // Callers that learn of a failure through pipeline() need not also await `result`: without this an
  // unawaited rejection would crash the process.
  result.catch(() => {});
  const stream = new SealTransform(dataKey, noncePrefix, header, keyId, slice, resolve, reject);
  return { stream, result };
}

// ---------------------------------------------------------------------------------------------
// Opening

interface OpenWindow extends SegmentSpan {
  /** Already parsed (a ranged read fetches the header on its own). */
  header: SealedHeader;
}

/** Where a plaintext range lies in the segments. */
export interface SegmentSpan {
  /** Index of the first segment the input starts with. */
  firstSegment: number;
  /** Index of the last segment needed; input after it is ignored. */
  lastSegment: number;
  /** Plaintext bytes to drop from the start of the first segment. */
  skip: number;
  /** Plaintext bytes to emit in all. */
  length: number;
}

class OpenTransform extends Transform {
  private readonly queue = new ByteQueue();
  private readonly iv = Buffer.alloc(NONCE_SIZE);
  private dataKey: Buffer | null = null;
  private segment = 0;
  private lastSegment = Infinity;
  private skip = 0;
  private remaining = Infinity;
  private done = false;
  private readonly ranged: boolean;

  /** What unwraps the header when the input starts with one; null when the header came parsed. */
  private readonly unwrap: { keyring: Keyring; ctx: Buffer } | null;

  constructor(from: { keyring: Keyring; ctx: Buffer } | OpenWindow) {
    super({ readableHighWaterMark: SEGMENT_SIZE, writableHighWaterMark: SEALED_SEGMENT_SIZE });
    const window = 'header' in from ? from : undefined;
    this.unwrap = 'header' in from ? null : from;
    this.ranged = window !== undefined;
    if (window !== undefined) {
      this.useHeader(window.header);
      this.segment = window.firstSegment;
      this.lastSegment = window.lastSegment;
      this.skip = window.skip;
      this.remaining = window.length;
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      if (this.done) return cb();
      this.queue.push(chunk);
      if (this.dataKey === null && !this.readHeader()) return cb();
      // The final flag is in the nonce: a segment is opened as non-final only once a byte after it is here.
      while (!this.done && this.queue.length > SEALED_SEGMENT_SIZE) this.openSegment(SEALED_SEGMENT_SIZE, false);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      if (this.dataKey === null) {
        throw new SealedFormatError(this.queue.length === 0 ? 'empty object' : 'object ends inside its header', 'truncated');
      }
      if (!this.done) {
        if (this.queue.length < TAG_SIZE) {
          throw new SealedFormatError(`object ends ${this.queue.length === 0 ? 'before' : 'inside'} segment ${this.segment}`, 'truncated');
        }
        this.openSegment(this.queue.length, true);
      }
      if (this.remaining > 0 && this.remaining !== Infinity) {
        // The last segment verified as final, so this is the object's true end, not a truncation.
        throw new RangeError(`range extends ${this.remaining} bytes past the end of the object`);
      }
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.dataKey?.fill(0);
    cb(err);
  }

  private useHeader(h: SealedHeader): void {
    this.dataKey = h.dataKey;
    h.noncePrefix.copy(this.iv, 0);
  }

  private readHeader(): boolean {
    const h = parseHeader(this.queue.peek(MAX_HEADER_SIZE), this.unwrap!.keyring, this.unwrap!.ctx);
    if (h === null) return false;
    this.queue.consume(h.headerSize, () => {});
    this.useHeader(h);
    this.emit('header', { keyId: h.keyId });
    return true;
  }

  private openSegment(n: number, final: boolean): void {
    const index = this.segment;
    const decipher = createDecipheriv('aes-256-gcm', this.dataKey!, segmentNonce(this.iv, index, final), { authTagLength: TAG_SIZE });
    const plain: Buffer[] = [];
    this.queue.consume(n - TAG_SIZE, (view) => {
      for (let off = 0; off < view.length; off += DEFAULT_UPDATE_SLICE) {
        plain.push(decipher.update(off === 0 && view.length <= DEFAULT_UPDATE_SLICE ? view : view.subarray(off, off + DEFAULT_UPDATE_SLICE)));
      }
    });
    decipher.setAuthTag(this.queue.take(TAG_SIZE));
    try {
      decipher.final();
    } catch {
      throw new SealedFormatError(
        `segment ${index} failed authentication (tampered, truncated, reordered, or not this object's data)`,
        'segment-auth',
      );
    }
    // Only now, with the tag verified, may any of this segment's plaintext leave.
    for (let p of plain) {
      if (this.skip > 0) {
        if (p.length <= this.skip) {
          this.skip -= p.length;
          continue;
        }
        p = p.subarray(this.skip);
        this.skip = 0;
      }
      if (p.length > this.remaining) p = p.subarray(0, this.remaining);
      this.remaining -= p.length;
      if (p.length > 0) this.push(p);
    }
    this.segment++;
    if (final || (this.ranged && index >= this.lastSegment)) this.done = true;
  }
}

/** Sealed bytes in, plaintext out. Never emits a byte of a segment before its tag is verified; errors with SealedFormatError. */
export function createOpenStream(keyring: Keyring, ctx: SealContext): Transform {
  return new OpenTransform({ keyring, ctx: encodeContext(ctx) });
}

/**
 * Parses the header at the start of `bytes` (the object's first MAX_HEADER_SIZE bytes, or all of a
 * shorter object) and unwraps its data key. Errors with SealedFormatError.
 */
export function openSealedHeader(bytes: Buffer, keyring: Keyring, ctx: SealContext): SealedHeader {
  const h = parseHeader(bytes, keyring, encodeContext(ctx));
  if (h === null) throw new SealedFormatError(bytes.length === 0 ? 'empty object' : 'object ends inside its header', 'truncated');
  return h;
}

/** The segments that hold plaintext [range.start, range.end] (inclusive). RangeError for a range no object can have. */
export function segmentSpan(range: ByteRange): SegmentSpan {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new RangeError(`bad range ${start}-${end}`);
  }
  const first = Math.floor(start / SEGMENT_SIZE);
  const last = Math.floor(end / SEGMENT_SIZE);
  if (last >= MAX_SEGMENTS) throw new RangeError(`range end ${end} is past the largest possible object`);
  return { firstSegment: first, lastSegment: last, skip: start - first * SEGMENT_SIZE, length: end - start + 1 };
}

/**
 * The sealed bytes (inclusive offsets) a span needs. One byte past the last needed segment tells
 * whether it is the final one (the final flag is in its nonce); if the object ends there, the store
 * returns less and the segment opens as final.
 */
export function sealedRangeOf(span: SegmentSpan, headerSize: number): ByteRange {
  return {
    start: headerSize + span.firstSegment * SEALED_SEGMENT_SIZE,
    end: headerSize + (span.lastSegment + 1) * SEALED_SEGMENT_SIZE,
  };
}

/**
 * The sealed bytes of `sealedRangeOf(span, header.headerSize)` in, the span's plaintext out; errors
 * with SealedFormatError, or RangeError when the object ends before the span does. Takes the
 * header's data key and zeroes it when the stream ends.
 */
export function createRangeOpenStream(header: SealedHeader, span: SegmentSpan): Transform {
  return new OpenTransform({ header, ...span });
}


// ---------------------------------------------------------------------------------------------
// Sealing an object segment by segment, across requests and processes (resumable uploads)

/**
 * The header of a new object whose segments will be sealed one at a time, maybe by other processes
 * (`sealSegment`): whoever keeps these bytes can go on with the same object after a restart, since
 * the data key inside is wrapped by the master key. The finished object is `header || segments`.
 */
export function newSealedHeader(keyring: Keyring, ctx: SealContext): Buffer {
  const keyId = keyring.activeKeyId;
  checkKeyId(keyId, 'active master key');
  const master = masterKey(keyring, keyId);
  if (master === undefined) throw new Error(`active master key id "${keyId}" is not in the keyring`);
  const dataKey = randomBytes(KEY_SIZE);
  try {
    return buildHeader(keyId, master, dataKey, randomBytes(NONCE_PREFIX_SIZE), encodeContext(ctx));
  } finally {
    dataKey.fill(0);
  }
}

/** How many segments an object of `plainBytes` has (at least one: an empty object has an empty final segment). */
export function segmentCount(plainBytes: number): number {
  return Math.max(1, Math.ceil(plainBytes / SEGMENT_SIZE));
}

/** Sealed bytes of one whole (non-final, SEGMENT_SIZE) segment. */
export const SEALED_SEGMENT_BYTES = SEALED_SEGMENT_SIZE;

/**
 * Seals segment `index` of the object whose header `header` was opened from (openSealedHeader):
 * exactly what createSealStream writes for that segment. `final` must be true for the object's last
 * segment and only for it; every other segment must be SEGMENT_SIZE bytes.
 */
export function sealSegment(header: SealedHeader, index: number, final: boolean, plain: Buffer): Buffer {
  if (plain.length > SEGMENT_SIZE || (!final && plain.length !== SEGMENT_SIZE)) {
    throw new RangeError(`segment ${index}: ${plain.length} bytes (a non-final segment has ${SEGMENT_SIZE})`);
  }
  const iv = Buffer.alloc(NONCE_SIZE);
  header.noncePrefix.copy(iv, 0);
  const cipher = createCipheriv('aes-256-gcm', header.dataKey, segmentNonce(iv, index, final), { authTagLength: TAG_SIZE });
  const out = Buffer.allocUnsafe(plain.length + TAG_SIZE);
  const n = cipher.update(plain).copy(out, 0);
  cipher.final();
  cipher.getAuthTag().copy(out, n);
  return out;
}
