/**
 * Resumable uploads (tus 1.0), the store side: what @tus/server calls to create, write, read, lock
 * and terminate an upload. No plaintext is ever at rest: each whole 64 KiB segment is sealed as it
 * arrives, in the sealed format of the media's staging object, and written to the store in parts
 * (`tus/<appId>/<uploadId>/…`); at most the one segment still being filled is held in memory, and it
 * is dropped when a request ends, so the offset reported is the end of the last sealed segment and a
 * client that resumes re-sends at most one segment. On the last byte the parts become the staging
 * object and the media is committed by commitMedia, as an upload slot's PUT does.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, Readable } from 'node:stream';
import { DataStore, Upload, type Lock, type Locker } from '@tus/utils';
import { z } from 'zod';
import type { Pool } from '../db/pool.js';
import * as mediaRepo from '../db/repos/media.js';
import * as tusRepo from '../db/repos/tus-uploads.js';
import type { TusPart, TusUploadRow } from '../db/repos/tus-uploads.js';
import { AppError } from '../domain/errors.js';
import { sanitizeFilename } from '../domain/filename.js';
import { newMediaId, stagingKey, TUS_UPLOAD_ID_PATTERN, tusPartKey, tusUploadPrefix } from '../domain/ids.js';
import type { MediaKind } from '../domain/kinds.js';
import { canonicalMime, decideKind, fileTooLarge, type KindLimits } from '../domain/policies.js';
import type { Logger } from '../log.js';
import { sniffBuffer } from '../pipeline/sniff.js';
import type { BlobStore } from '../storage/blob-store.js';
import { deletePrefix } from '../storage/delete-prefix.js';
import { newSealedHeader, openSealedHeader, sealedSize, sealSegment, SEGMENT_SIZE, segmentCount, type Keyring, type SealContext } from '../storage/sealed-format.js';
import { commitMedia, type CommitDeps } from './commit-media.js';
import { hardCapBytes, limitFor } from './limits.js';
import { mediaFieldsSchema, type MediaFields } from './media-fields.js';
import { checkOwnership } from './ownership.js';

/**
 * Segments per part object: 4 MiB of plaintext. A part is written with one put (on S3 one PutObject
 * below the driver's multipart size), so it bounds the memory a put may buffer and what a crash of
 * the API process mid-request can lose; a client that is cut off loses nothing sealed, because the
 * part in progress is closed and kept when its request ends.
 */
export const TUS_PART_SEGMENTS = 64;
/** A write lease outlives a renewal gap several times over, and frees an upload soon after its holder died. */
const LEASE_SECONDS = 20;
const RENEW_MS = 5_000;

export interface TusDeps extends CommitDeps {
  pool: Pool;
  store: BlobStore;
  keyring: Keyring;
  log: Logger;
  config: CommitDeps['config'] & { HARD_CAP_BYTES: number; UPLOAD_SLOT_TTL_SECONDS: number };
}

/** What one tus request runs with: set by the route for the length of the request (AsyncLocalStorage). */
export interface TusRequestContext {
  appId: string;
  limits: KindLimits;
  method: string;
  log: Logger;
  /** Validated by prepareTusUpload at creation, consumed by the store's create. */
  creation?: TusCreation;
  /** Write leases this request holds, by upload id. */
  leases: Map<string, HeldLease>;
  /**
   * Why the store's write failed. @tus/server answers a write that failed while the body was being
   * read as "aborted" (400), whatever the cause; the route answers this instead.
   */
  writeError?: unknown;
  /**
   * Writes still running, by upload id. @tus/server may give up on a write (and unlock) before the
   * store's write has settled; the lease is released only once it has (see LeaseLock.unlock).
   */
  writes: Map<string, Promise<unknown>>;
}

export const tusRequests = new AsyncLocalStorage<TusRequestContext>();

function requestContext(): TusRequestContext {
  const ctx = tusRequests.getStore();
  // Fail closed: nothing reaches the store outside an authenticated request.
  if (!ctx) throw new AppError('UNAUTHORIZED', 'no authenticated request');
  return ctx;
}

/** 423 Locked: another request writes to this upload now (tus clients retry it). */
export class UploadLockedError extends AppError {
  constructor() {
    super('CONFLICT', 'another request is writing to this upload; retry when it ends');
    (this as { status: number }).status = 423;
  }
}

const notFound = (): AppError => new AppError('NOT_FOUND', 'no such upload');

// ---------------------------------------------------------------------------------------------
// Creation: metadata and limits, before any byte

/**
 * The tus metadata we take. `name`/`type` are what Uppy sends for the file's name and type; they
 * stand in for `filename`/`filetype` when those are absent. Unknown keys are ignored (clients add
 * their own, e.g. Uppy's `relativePath`).
 */
const tusMetadataSchema = z.object({
  filename: z.string().max(1024).optional(),
  filetype: z.string().max(255).optional(),
  kind: mediaFieldsSchema.shape.kind,
  folderId: mediaFieldsSchema.shape.folderId,
  deviceId: mediaFieldsSchema.shape.deviceId,
  ttlSeconds: mediaFieldsSchema.shape.ttlSeconds,
  correlationId: mediaFieldsSchema.shape.correlationId,
});

const KEPT_METADATA = ['filename', 'filetype', 'name', 'type', 'kind', 'folderId', 'deviceId', 'ttlSeconds', 'correlationId'];

/** The metadata HEAD gives back: the keys we take, without NULs (which PostgreSQL text cannot hold). */
function keptMetadata(m: Record<string, string | null> | undefined): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  for (const k of KEPT_METADATA) {
    const v = m?.[k];
    if (v !== undefined) out[k] = v === null ? null : v.replace(/\u0000/g, '').slice(0, 1024);
  }
  return out;
}

export interface TusCreation {
  mediaId: string;
  length: number;
  kind: MediaKind | null;
  declaredMime: string | null;
  originalName: string | null;
  fields: MediaFields;
}

/**
 * Judges a new upload from its headers alone: metadata, the declared type against the kind, the
 * length against the kind's input limit (or the hard cap when the kind waits for the first bytes),
 * and the device and folder it names. Throws the contract's errors (400, 404, 413, 415).
 */
export async function prepareTusUpload(deps: TusDeps, ctx: TusRequestContext, length: number | undefined, metadata: Record<string, string | null> | undefined): Promise<TusCreation> {
  if (length === undefined) {
    throw new AppError('VALIDATION_FAILED', 'send Upload-Length: deferred lengths are not accepted', { fields: { 'upload-length': 'required' } });
  }
  if (!Number.isSafeInteger(length) || length < 1) throw new AppError('VALIDATION_FAILED', 'the file is empty', { fields: { 'upload-length': 'must be at least 1' } });
  const raw: Record<string, string> = {};
  for (const [k, v] of Object.entries(metadata ?? {})) if (v !== null && v !== '') raw[k] = v;
  raw.filename ??= raw.name!;
  raw.filetype ??= raw.type!;
  const parsed = tusMetadataSchema.safeParse(Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== undefined)));
  if (!parsed.success) {
    const fields: Record<string, string> = {};
    for (const i of parsed.error.issues) fields[String(i.path[0] ?? '_')] = i.message;
    throw new AppError('VALIDATION_FAILED', 'invalid Upload-Metadata', { fields });
  }
  const m = parsed.data;
  const declared = m.filetype ? canonicalMime(m.filetype) : null;
  const generic = !declared || declared === 'application/octet-stream';
  // A specific declared type decides the kind now (as for a slot); otherwise the first bytes will.
  const kind = generic ? (m.kind ?? null) : decideKind({ kind: m.kind, mime: declared, seen: 'declared' });
  const max = kind ? limitFor(deps, ctx.limits)(kind) : hardCapBytes(deps);
  if (length > max) throw fileTooLarge(max, kind ?? undefined);
  const fields: MediaFields = { kind: m.kind, folderId: m.folderId, deviceId: m.deviceId, ttlSeconds: m.ttlSeconds, correlationId: m.correlationId };
  await checkOwnership(deps.pool, ctx.appId, fields);
  return { mediaId: newMediaId(), length, kind, declaredMime: m.filetype ?? null, originalName: sanitizeFilename(m.filename), fields };
}

// ---------------------------------------------------------------------------------------------
// Locking: a lease on the upload's row, so it holds across API processes

/**
 * PATCH and DELETE take the upload's write lease; one of concurrent requests gets it and the others
 * are answered 423 at once (no waiting on a request that may be a half-open connection). HEAD reads
 * the committed state and needs none; POST names an upload nobody else knows yet.
 */
export function createTusLocker(deps: Pick<TusDeps, 'pool' | 'log'>): Locker {
  return { newLock: (id) => new LeaseLock(deps, id) };
}

export interface HeldLease {
  token: string;
  timer: NodeJS.Timeout;
}

/** Keeps a lease just taken for this request: renewed while the request works, released by its unlock. */
function holdLease(deps: Pick<TusDeps, 'pool'>, ctx: TusRequestContext, id: string, token: string): void {
  const timer = setInterval(() => {
    tusRepo.renewTusLease(deps.pool, id, token, LEASE_SECONDS).then(
      (held) => held || ctx.log.warn({ uploadId: id }, 'lost the write lease of a tus upload; its next part will not be recorded'),
      (err: unknown) => ctx.log.warn({ err, uploadId: id }, 'could not renew the write lease of a tus upload'),
    );
  }, RENEW_MS);
  timer.unref();
  ctx.leases.set(id, { token, timer });
}

class LeaseLock implements Lock {
  private ctx: TusRequestContext | null = null;

  constructor(
    private readonly deps: Pick<TusDeps, 'pool' | 'log'>,
    private readonly id: string,
  ) {}

  async lock(): Promise<void> {
    const ctx = requestContext();
    this.ctx = ctx;
    // POST: the store's create takes the lease with the row it inserts.
    if (ctx.method === 'HEAD' || ctx.method === 'POST') return;
    await ownedUpload(this.deps.pool, ctx, this.id);
    const token = randomBytes(16).toString('hex');
    if (!(await tusRepo.acquireTusLease(this.deps.pool, this.id, token, LEASE_SECONDS))) throw new UploadLockedError();
    holdLease(this.deps, ctx, this.id, token);
  }

  async unlock(): Promise<void> {
    // A write that is still closing its part needs the lease to record it.
    await this.ctx?.writes.get(this.id);
    const held = this.ctx?.leases.get(this.id);
    if (!held) return;
    clearInterval(held.timer);
    this.ctx!.leases.delete(this.id);
    await tusRepo.releaseTusLease(this.deps.pool, this.id, held.token).catch((err: unknown) => this.deps.log.warn({ err, uploadId: this.id }, 'could not release a tus lease; it expires by itself'));
  }
}

/** The upload if it is this request's app's; another app's is 404, as if it did not exist. */
async function ownedUpload(pool: Pool, ctx: TusRequestContext, id: string): Promise<TusUploadRow<MediaFields> & { limits: KindLimits }> {
  const row = TUS_UPLOAD_ID_PATTERN.test(id) ? await tusRepo.findTusUpload<MediaFields>(pool, id) : null;
  if (!row || row.app_id !== ctx.appId) throw notFound();
  return row;
}

/**
 * Checks, before anything else, that a request names an upload of its own app (404 otherwise). A
 * PATCH must carry a whole segment, or the rest of the file: fewer bytes could never be sealed, and
 * a client sending such chunks would re-send them forever (400 instead).
 */
export async function checkTusRequest(
  deps: Pick<TusDeps, 'pool'>,
  ctx: TusRequestContext,
  id: string,
  patch?: { offset: number; contentLength: number | null },
): Promise<void> {
  const row = await ownedUpload(deps.pool, ctx, id);
  if (!patch || patch.contentLength === null || row.completed_at || patch.offset !== row.sealed_offset) return;
  const least = Math.min(SEGMENT_SIZE, row.upload_length - row.sealed_offset);
  if (patch.contentLength < least) {
    throw new AppError('VALIDATION_FAILED', `a PATCH must carry at least ${least} bytes: the upload is sealed in segments of ${SEGMENT_SIZE} (set the client's chunk size to a multiple of it)`, {
      fields: { 'content-length': `at least ${least}` },
    });
  }
}

/** The media id an upload became, once complete. */
export async function tusMediaId(deps: Pick<TusDeps, 'pool'>, ctx: TusRequestContext, id: string): Promise<string | null> {
  const row = await ownedUpload(deps.pool, ctx, id);
  return row.completed_at ? row.media_id : null;
}

// ---------------------------------------------------------------------------------------------
// The data store

const sealContext = (row: Pick<TusUploadRow, 'app_id' | 'media_id'>): SealContext => ({ purpose: 'staging', appId: row.app_id, mediaId: row.media_id });

interface OpenPart {
  part: TusPart;
  body: PassThrough;
  put: Promise<unknown>;
}

/** The first bytes' verdict: the kind they make the upload, and the detector's type for the row. */
interface FirstBytes {
  kind: MediaKind;
  detectedMime: string | null;
}

export class SealedTusStore extends DataStore {
  constructor(
    private readonly deps: TusDeps,
    private readonly sweepExpired: () => Promise<number>,
  ) {
    super();
    this.extensions = ['creation', 'creation-with-upload', 'termination', 'expiration'];
  }

  override getExpiration(): number {
    return this.deps.config.UPLOAD_SLOT_TTL_SECONDS * 1000;
  }

  override deleteExpired(): Promise<number> {
    return this.sweepExpired();
  }

  override async create(upload: Upload): Promise<Upload> {
    const ctx = requestContext();
    const c = ctx.creation;
    if (!c || c.length !== upload.size) throw new Error('tus create without a validated creation');
    ctx.creation = undefined;
    const header = newSealedHeader(this.deps.keyring, { purpose: 'staging', appId: ctx.appId, mediaId: c.mediaId });
    const token = randomBytes(16).toString('hex');
    const times = await tusRepo.insertTusUpload(this.deps.pool, {
      id: upload.id,
      appId: ctx.appId,
      mediaId: c.mediaId,
      uploadLength: c.length,
      sealedHeader: header,
      kind: c.kind,
      declaredMime: c.declaredMime,
      originalName: c.originalName,
      fields: c.fields,
      metadata: keptMetadata(upload.metadata),
      ttlSeconds: this.deps.config.UPLOAD_SLOT_TTL_SECONDS,
      leaseToken: token,
      leaseSeconds: LEASE_SECONDS,
    });
    holdLease(this.deps, ctx, upload.id, token);
    upload.creation_date = times.created_at.toISOString();
    return upload;
  }

  override async getUpload(id: string): Promise<Upload> {
    const ctx = requestContext();
    const row = await ownedUpload(this.deps.pool, ctx, id);
    return new Upload({ id, size: row.upload_length, offset: row.sealed_offset, metadata: row.metadata, creation_date: row.created_at.toISOString() });
  }

  override async remove(id: string): Promise<void> {
    const ctx = requestContext();
    const row = await ownedUpload(this.deps.pool, ctx, id);
    // Bytes first: a row is what finds them again if this fails half-way.
    await deletePrefix(this.deps.store, tusUploadPrefix(row.app_id, row.id));
    await tusRepo.deleteTusUpload(this.deps.pool, row.id);
  }

  override async declareUploadLength(): Promise<void> {
    throw new AppError('VALIDATION_FAILED', 'deferred lengths are not accepted', { fields: { 'upload-length': 'required at creation' } });
  }

  override async write(stream: Readable, id: string, offset: number): Promise<number> {
    const ctx = requestContext();
    const row = await ownedUpload(this.deps.pool, ctx, id);
    const token = ctx.leases.get(id)?.token;
    if (!token) throw new UploadLockedError();
    if (row.completed_at) {
      stream.resume();
      return row.upload_length;
    }
    if (offset !== row.sealed_offset) throw new AppError('CONFLICT', `Upload-Offset ${offset} does not match the upload's offset ${row.sealed_offset}`, { offset: row.sealed_offset });
    const header = openSealedHeader(row.sealed_header, this.deps.keyring, sealContext(row));
    const writing = this.sealAll(stream, row, token, header, ctx.log).then(
      (offset) => {
        header.dataKey.fill(0);
        return offset;
      },
      (err: unknown) => {
        header.dataKey.fill(0);
        ctx.writeError = err;
        throw err;
      },
    );
    ctx.writes.set(id, writing.catch(() => undefined));
    return writing;
  }

  /** Seals whole segments as they arrive, into part objects recorded one by one; returns the offset sealed. */
  private async sealAll(
    stream: Readable,
    row: TusUploadRow<MediaFields> & { limits: KindLimits },
    token: string,
    header: ReturnType<typeof openSealedHeader>,
    log: Logger,
  ): Promise<number> {
    const length = row.upload_length;
    const total = segmentCount(length);
    const segLength = (i: number): number => Math.min(SEGMENT_SIZE, length - i * SEGMENT_SIZE);
    let seg = row.sealed_offset / SEGMENT_SIZE;
    let committed = row.sealed_offset;
    const pending: Buffer[] = [];
    let pendingBytes = 0;
    let part: OpenPart | null = null;
    let first: FirstBytes | null = null;
    const parts = [...row.parts];

    const take = (n: number): Buffer => {
      const out = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = pending[0]!;
        const k = Math.min(c.length, n - off);
        c.copy(out, off, 0, k);
        off += k;
        if (k === c.length) pending.shift();
        else pending[0] = c.subarray(k);
      }
      pendingBytes -= n;
      return out;
    };

    /** Stores a part and records it; the row must be at the part's start (parts are recorded in order). */
    const closePart = async (p: OpenPart): Promise<void> => {
      p.body.end();
      await p.put;
      const to = (p.part.seg + p.part.n) * SEGMENT_SIZE;
      const ok = await tusRepo.appendTusPart(this.deps.pool, {
        id: row.id,
        token,
        fromOffset: p.part.seg * SEGMENT_SIZE,
        toOffset: to,
        part: p.part,
        detectedMime: first?.detectedMime,
        kind: first?.kind,
      });
      if (!ok) {
        await this.deps.store.delete([p.part.key]).catch(() => undefined);
        throw new UploadLockedError();
      }
      parts.push(p.part);
      committed = to;
    };
    // A full part is stored while the next one fills: at most one part closing at a time.
    let closing: Promise<void> = Promise.resolve();
    let closeFailed: unknown = null;
    const closeLater = (p: OpenPart): void => {
      closing = closePart(p).catch(async (err: unknown) => {
        closeFailed ??= err;
        await abortPart(p);
      });
    };
    const settleClosing = async (): Promise<void> => {
      await closing;
      if (closeFailed !== null) throw closeFailed;
    };

    let failure: unknown = null;
    let refused = false;
    try {
      for await (const chunk of stream) {
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
        pending.push(buf);
        pendingBytes += buf.length;
        while (seg < total && pendingBytes >= segLength(seg)) {
          const plain = take(segLength(seg));
          try {
            if (seg === 0) {
              try {
                first = await this.judgeFirstBytes(row, plain, length <= SEGMENT_SIZE);
              } catch (err) {
                refused = true;
                throw err;
              }
            }
            part ??= this.openPart(row, seg);
            const sealed = sealSegment(header, seg, seg === total - 1, plain);
            if (!part.body.write(sealed)) await drained(part);
          } finally {
            plain.fill(0);
          }
          part.part.n++;
          seg++;
          if (seg === total) {
            const last = part;
            part = null;
            try {
              await settleClosing();
            } catch (err) {
              await abortPart(last);
              throw err;
            }
            return await this.finish(row, parts, last, first, log);
          }
          if (part.part.n >= TUS_PART_SEGMENTS) {
            const full = part;
            part = null;
            await settleClosing();
            closeLater(full);
          }
        }
      }
    } catch (err) {
      failure = err;
    }
    await closing;
    failure ??= closeFailed;
    // The request ended (or was cut): keep what was sealed, so the client resumes from it.
    if (part) {
      const p: OpenPart = part;
      if (closeFailed === null && (failure === null || (!refused && !(failure instanceof UploadLockedError)))) {
        try {
          if (p.part.n > 0) await closePart(p);
          else await abortPart(p);
        } catch (err) {
          await abortPart(p);
          failure ??= err;
        }
      } else {
        await abortPart(p);
      }
    }
    if (refused) await this.terminate(row, log);
    if (failure !== null) throw failure;
    return committed;
  }

  private openPart(row: TusUploadRow, seg: number): OpenPart {
    const part: TusPart = { key: tusPartKey(row.app_id, row.id, seg), seg, n: 0 };
    const body = new PassThrough({ highWaterMark: 2 * SEGMENT_SIZE });
    // The key is new (random tail) and no row names it before it is recorded: `fresh`.
    const put = this.deps.store.put(part.key, body, { fresh: true });
    put.catch(() => undefined);
    return { part, body, put };
  }

  /** The sniff of the first segment: a disallowed type (415) or a length over the kind's limit (413) ends the upload. */
  private async judgeFirstBytes(row: TusUploadRow & { limits: KindLimits }, head: Buffer, complete: boolean): Promise<FirstBytes> {
    const sniffed = await sniffBuffer(head, complete);
    const kind = decideKind({ kind: row.kind, mime: sniffed.mime, declared: row.declared_mime, seen: 'head' });
    const max = limitFor(this.deps, row.limits)(kind);
    if (row.upload_length > max) throw fileTooLarge(max, kind);
    return { kind, detectedMime: sniffed.raw };
  }

  /** The last segment is sealed: the parts become the staging object, and the media is committed. */
  private async finish(
    row: TusUploadRow<MediaFields>,
    parts: TusPart[],
    last: OpenPart,
    first: FirstBytes | null,
    log: Logger,
  ): Promise<number> {
    const key = stagingKey(row.app_id, row.media_id);
    // A process that died between the media's commit and the row's completion: the media is there.
    if (await mediaRepo.getMediaById(this.deps.pool, row.media_id)) {
      await abortPart(last);
      await tusRepo.completeTusUpload(this.deps.pool, row.id, row.upload_length);
      return row.upload_length;
    }
    try {
      last.body.end();
      await last.put;
      const all = [...parts, last.part];
      const keyIdBytes = row.sealed_header[5]!;
      const store = this.deps.store;
      const assembled = Readable.from(
        (async function* () {
          yield row.sealed_header;
          for (const p of all) {
            const s = await store.get(p.key);
            for await (const c of s) yield c as Buffer;
          }
        })(),
        { objectMode: false },
      );
      await store.put(key, assembled, { fresh: true, contentLength: sealedSize(row.upload_length, keyIdBytes) });
      await commitMedia(this.deps, {
        appId: row.app_id,
        mediaId: row.media_id,
        kind: first?.kind ?? row.kind,
        source: 'tus',
        declaredMime: row.declared_mime,
        detectedMime: first?.detectedMime ?? row.detected_mime,
        originalName: row.original_name,
        inputBytes: row.upload_length,
        stagingKey: key,
        fields: row.fields,
      });
    } catch (err) {
      await abortPart(last);
      await this.deps.store.delete([last.part.key, key]).catch(() => undefined);
      throw err;
    }
    await tusRepo.completeTusUpload(this.deps.pool, row.id, row.upload_length);
    log.info({ uploadId: row.id, mediaId: row.media_id, bytes: row.upload_length }, 'tus upload complete');
    await deletePrefix(this.deps.store, tusUploadPrefix(row.app_id, row.id)).catch((err: unknown) =>
      log.warn({ err, uploadId: row.id }, 'could not delete the parts of a finished tus upload; the sweep removes them when it expires'),
    );
    return row.upload_length;
  }

  /** A refused upload is over: its bytes and its row go. */
  private async terminate(row: TusUploadRow, log: Logger): Promise<void> {
    try {
      await deletePrefix(this.deps.store, tusUploadPrefix(row.app_id, row.id));
      await tusRepo.deleteTusUpload(this.deps.pool, row.id);
    } catch (err) {
      log.warn({ err, uploadId: row.id }, 'could not remove a refused tus upload; the sweep removes it when it expires');
    }
  }
}

async function drained(p: OpenPart): Promise<void> {
  await Promise.race([
    once(p.body, 'drain'),
    p.put.then(() => {
      throw new Error('the part was stored before its end');
    }),
  ]);
}

async function abortPart(p: OpenPart): Promise<void> {
  if (!p.body.destroyed) p.body.destroy(new Error('tus part abandoned'));
  await p.put.catch(() => undefined);
}
