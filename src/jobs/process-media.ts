import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { UnrecoverableError } from 'bullmq';
import { AppError, PermanentError } from '../domain/errors.js';
import { sanitizeFilename } from '../domain/filename.js';
import { newEventId, newRunId, runStorageKey, runVariantKey, stagingKey } from '../domain/ids.js';
import { canonicalMime, decideKind, fileTooLarge, type KindLimits } from '../domain/policies.js';
import * as appsRepo from '../db/repos/apps.js';
import * as mediaRepo from '../db/repos/media.js';
import { insertReferences } from '../db/repos/references.js';
import { DEFAULT_REFERENCE_GRACE_SECONDS, liveUntil } from '../domain/references.js';
import type { MediaRow } from '../db/repos/media.js';
import { withTransaction, type Pool, type Queryable } from '../db/pool.js';
import { newMediaRow } from '../ingest/commit-media.js';
import { deliveredLimitFor, hardCapBytes, limitFor } from '../ingest/limits.js';
import { checkOwnership } from '../ingest/ownership.js';
import type { Logger } from '../log.js';
import { bytesStoredTotal, processingSeconds } from '../metrics.js';
import { acquireInput, type AcquireDeps } from '../pipeline/acquire-input.js';
import { sealBufferToStore, sealFileToStore } from '../pipeline/encrypt.js';
import { decodesInMemory, normalize } from '../pipeline/normalize.js';
import { sniffBytes, sniffFile } from '../pipeline/sniff.js';
import type { IngestPayload } from '../queue/payloads.js';
import type { Queues } from '../queue/queues.js';
import type { Runtime } from '../runtime.js';
import type { BlobStore } from '../storage/blob-store.js';
import type { Keyring } from '../storage/sealed-format.js';
import { dispatchDelivery, eventBody, recordMediaEvent } from '../webhooks/emit.js';
import type { JobContext } from './job-context.js';
import { decideFailure } from './failure.js';
import { makeScratchDir } from './scratch.js';

export interface ProcessDeps {
  pool: Pool;
  store: BlobStore;
  keyring: Keyring;
  log: Logger;
  config: {
    DEFAULT_TTL_SECONDS: number;
    MAX_RETENTION_SECONDS: number;
    ALLOW_PRIVATE_URLS: boolean;
    FILE_SOURCE_ROOT?: string;
    HARD_CAP_BYTES: number;
    URL_FETCH_DEADLINE_SECONDS?: number;
    URL_STALL_SECONDS?: number;
    /** Live time of the references a producer's job carries past their `sendAt` (issue 15). */
    REFERENCE_GRACE_SECONDS?: number;
  };
  /** Present: media.ready/media.failed webhooks are recorded with the state change and dispatched after it. */
  queues?: Queues;
}

export interface ProcessContext {
  attempt: number;
  finalAttempt: boolean;
  signal?: AbortSignal;
  onProgress?: (percent: number) => Promise<void> | void;
}

export type ProcessOutcome = 'ready' | 'failed' | 'skipped';

/**
 * The `ingest` job: a producer that enqueued without a media id gets one from the job's id, and a
 * media that ends `failed` fails the job for good (the row says why; another attempt would change
 * nothing).
 */
export async function processMediaJob(rt: Runtime, payload: IngestPayload, job: JobContext): Promise<ProcessOutcome> {
  const outcome = await processMedia(
    { ...rt, log: job.log },
    { ...payload, mediaId: payload.mediaId ?? `med_q${job.id}` },
    { attempt: job.attempt, finalAttempt: job.finalAttempt, signal: job.signal, onProgress: job.progress },
  );
  if (outcome === 'failed') throw new UnrecoverableError('media rejected');
  return outcome;
}

/**
 * Inputs up to this size are held in memory from the staging object to the stored one when the
 * image step can decode them where they are: no scratch directory, no plaintext file, no re-read.
 * Phone photos are well under it; a 50 MB input goes through a scratch file as before.
 */
export const IN_MEMORY_MAX_BYTES = 2 * 1024 * 1024;

/**
 * The media-ingest handler: the worker's only logic is this composition of steps. Safe to run
 * twice, even at once (a stalled job handed to a second worker while its first run still works):
 * a row already past `processing` is left alone, every transition is conditional on this run's
 * claim (the latest claim wins), and each run writes under keys of its own, which the row points
 * at only once that run commits.
 */
export async function processMedia(deps: ProcessDeps, payload: IngestPayload, ctx: ProcessContext): Promise<ProcessOutcome> {
  const mediaId = payload.mediaId!;
  // This run's claim on the row and the name of everything it writes (see claimForProcessing).
  const runId = newRunId();
  const log = deps.log.child({ mediaId, appId: payload.appId, attempt: ctx.attempt, runId });
  const started = process.hrtime.bigint();
  // Milliseconds per step, logged with the result: where a slow job spent its time.
  const timings: Record<string, number> = {};
  let mark = performance.now();
  const lap = (step: string) => {
    const now = performance.now();
    timings[step] = Math.round((now - mark) * 10) / 10;
    mark = now;
  };
  const acquireDeps: AcquireDeps = {
    store: deps.store,
    keyring: deps.keyring,
    allowPrivateUrls: deps.config.ALLOW_PRIVATE_URLS,
    fileSourceRoot: deps.config.FILE_SOURCE_ROOT,
    urlFetchDeadlineSeconds: deps.config.URL_FETCH_DEADLINE_SECONDS,
    urlStallSeconds: deps.config.URL_STALL_SECONDS,
  };
  // An upload's own staging object is read into memory while the claim is made: the job needs both
  // and neither waits for the other. Only reading is done before the claim; an input too large for
  // memory is read again after it, into the scratch directory.
  const src = payload.source;
  const early =
    src.type === 'storage' && src.key === stagingKey(payload.appId, mediaId)
      ? acquireInput(acquireDeps, { appId: payload.appId, mediaId, source: src, scratch: () => Promise.reject(new NeedsScratch()), maxBytes: hardCapBytes(deps), inMemoryMaxBytes: IN_MEMORY_MAX_BYTES, signal: ctx.signal })
      : null;
  early?.catch(() => undefined);
  const claimed = await claim(deps, payload, runId, log);
  if (!claimed) {
    await early?.catch(() => undefined);
    return 'skipped';
  }
  const row = claimed.row;
  lap('claim');
  // Made when the first file is needed: a small image held in memory never needs one.
  let scratchDir: string | null = null;
  const scratch = async (): Promise<string> => (scratchDir ??= await makeScratchDir(mediaId));
  // Keys this run wrote (or began to write): run-unique, so deleting them never touches another run's objects.
  const written: string[] = [];
  try {
    const appLimits = claimed.appLimits as KindLimits;
    // Two limits: what may come in (413 past it) and what is delivered, which normalization makes fit.
    const limitOf = limitFor(deps, appLimits);
    // A kind not yet known (inferred below) can only be held to the hard cap while the input arrives.
    const maxBytes = row.kind ? limitOf(row.kind) : hardCapBytes(deps);
    let input = early ? await early.catch((err: unknown) => (err instanceof NeedsScratch ? null : Promise.reject(err))) : null;
    // Read before the kind's limit was known: held to it now, as the read itself would have.
    if (input && input.bytes > maxBytes) throw fileTooLarge(maxBytes);
    input ??= await acquireInput(acquireDeps, {
      appId: row.app_id,
      mediaId,
      source: payload.source,
      scratch,
      maxBytes,
      // Only an image (or a kind still unknown) may stay in memory; the other kinds' tools read files.
      inMemoryMaxBytes: !row.kind || row.kind === 'image' ? IN_MEMORY_MAX_BYTES : 0,
      signal: ctx.signal,
    });
    lap('acquire');
    const sniffed = input.buffer ? await sniffBytes(input.buffer) : await sniffFile(input.path!);
    const declared = row.declared_mime ?? (input.contentType ? canonicalMime(input.contentType) : null);
    const kind = decideKind({ kind: row.kind, mime: sniffed.mime, declared, seen: 'whole' });
    if (input.bytes > limitOf(kind)) throw fileTooLarge(limitOf(kind), kind);
    if (!row.kind && !(await mediaRepo.setKindForRun(deps.pool, mediaId, runId, kind))) {
      log.warn('another run took this media over; this run stops');
      return 'skipped';
    }
    let inputPath = input.path;
    let inputBuffer = input.buffer;
    if (inputBuffer && !decodesInMemory(kind, sniffed.mime!)) {
      // Held in memory while its kind was unknown, but its step reads a file.
      inputPath = path.join(await scratch(), 'input');
      await writeFile(inputPath, inputBuffer, { mode: 0o600, flag: 'wx' });
      inputBuffer = null;
    }
    await ctx.onProgress?.(10);
    lap('sniff');

    const out = await normalize({
      inputPath: inputPath ?? '',
      inputBuffer: inputBuffer ?? undefined,
      sniffedMime: sniffed.mime!,
      kind,
      deliveredLimitBytes: deliveredLimitFor(appLimits)(kind),
      // An in-memory image writes nothing: its step never asks for the directory.
      scratchDir: inputBuffer ? '' : await scratch(),
      log,
      signal: ctx.signal,
      onProgress: (p) => void ctx.onProgress?.(10 + Math.round(p * 0.8)),
    });
    lap('normalize');
    log.debug({ transform: out.transform, from: sniffed.mime, to: out.mimeType }, 'normalized');

    const objectKey = runStorageKey(row.app_id, mediaId, runId);
    // Recorded before the put: a put that fails after the store kept the bytes still leaves nothing behind.
    written.push(objectKey);
    const sealCtx = { purpose: 'media', appId: row.app_id, mediaId } as const;
    const sealed = out.outputBuffer
      ? await sealBufferToStore(deps, { bytes: out.outputBuffer, key: objectKey, ctx: sealCtx, signal: ctx.signal })
      : await sealFileToStore(deps, { path: out.outputPath, key: objectKey, ctx: sealCtx, signal: ctx.signal });
    const variants: MediaRow['variants'] = [];
    for (const v of out.variants) {
      const key = runVariantKey(row.app_id, mediaId, runId, v.name);
      written.push(key);
      const vs = await sealFileToStore(deps, { path: v.path, key, ctx: { purpose: 'variant', appId: row.app_id, mediaId }, signal: ctx.signal });
      variants.push({ name: v.name, key, mimeType: v.mimeType, bytes: vs.plainBytes });
    }
    lap('store');
    const fields: mediaRepo.ReadyFields = {
      storageKey: objectKey,
      mimeType: out.mimeType,
      detectedMime: sniffed.raw ?? sniffed.mime!,
      sizeBytes: sealed.plainBytes,
      storedBytes: sealed.sealedBytes,
      checksum: sealed.sha256,
      keyId: sealed.keyId,
      width: out.width,
      height: out.height,
      durationMs: out.durationMs,
      pages: out.pages,
      waveform: out.waveform,
      transform: out.transform,
      variants,
      inputBytes: input.bytes,
      originalName: sanitizeFilename(input.filename),
    };
    // The state change and its webhook outbox row in one statement: a crash loses neither alone.
    const event = deps.queues ? readyEvent({ ...row, kind }, fields) : null;
    const settled = await mediaRepo.markReadyWithEvent(deps.pool, mediaId, runId, fields, event);
    if (!settled) {
      // Taken over by another run, deleted, or settled elsewhere while we worked: nothing points at
      // what this run wrote, and nobody else will ever delete it.
      const now = await discardWritten(deps, mediaId, written, log);
      log.warn({ status: now?.status }, 'media changed state during processing; result discarded');
      return 'skipped';
    }
    await removeStaging(deps, row, log);
    lap('commit');
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    processingSeconds.labels(kind, out.transform).observe(seconds);
    bytesStoredTotal.labels(kind).inc(sealed.plainBytes);
    log.info({ seconds, sizeBytes: sealed.plainBytes, transform: out.transform, from: sniffed.mime, to: out.mimeType, inMemory: !!out.outputBuffer, timings }, 'media ready');
    if (deps.queues) await dispatchDelivery({ queues: deps.queues, log }, settled.deliveryId);
    await ctx.onProgress?.(100);
    return 'ready';
  } catch (err) {
    // An outage (storage, database) is never the media's fault: decideFailure keeps it queued past
    // the last attempt, for the reconciler to hand to the queue again.
    const decision = decideFailure(err, ctx);
    if (decision.final) {
      const e = err instanceof AppError ? err : new AppError('INTERNAL', 'processing failed after all retries');
      if (decision.kind !== 'permanent') log.error({ err }, 'processing failed on the final attempt');
      else log.info({ code: e.code, reason: e.message }, 'media rejected');
      const { row: failed, delivery } = await settle(deps, (c) => mediaRepo.markFailed(c, mediaId, e.code, e.message, { claimToken: runId }), 'media.failed');
      await discardWritten(deps, mediaId, written, log);
      if (!failed) {
        // Another run owns the row (or it settled): the staging object is its input, not ours to remove.
        log.warn('media changed state during processing; this run\'s failure is not recorded');
        return 'skipped';
      }
      await removeStaging(deps, row, log);
      if (deps.queues) await dispatchDelivery({ queues: deps.queues, log }, delivery);
      return 'failed';
    }
    // Transient: back to queued so the reconciler and readers see it waits for a retry; the retry
    // writes under its own keys, so what this run wrote would otherwise stay behind.
    await mediaRepo.requeueForRun(deps.pool, mediaId, runId).catch(() => undefined);
    await discardWritten(deps, mediaId, written, log);
    throw err;
  } finally {
    if (scratchDir) await rm(scratchDir, { recursive: true, force: true });
  }
}

/** The early read of a staging object needed a scratch file: it is done again once the job is claimed. */
class NeedsScratch extends Error {}

/**
 * This run's claim on the row, with the app's limits, in one round trip when the row is there to
 * claim. Otherwise the row says why not: a producer's job whose row does not exist yet (made here,
 * then claimed), another app's media, or one already settled (a duplicate delivery).
 */
async function claim(deps: ProcessDeps, payload: IngestPayload, runId: string, log: Logger): Promise<{ row: MediaRow; appLimits: Record<string, unknown> } | null> {
  const mediaId = payload.mediaId!;
  const claimed = await mediaRepo.claimForRun(deps.pool, mediaId, payload.appId, runId);
  if (claimed) return claimed;
  let row = await mediaRepo.getMediaById(deps.pool, mediaId);
  if (!row) row = await createRowForProducerJob(deps, payload, log);
  if (!row) return null;
  if (row.app_id !== payload.appId) {
    log.error('job app does not own this media; ignored');
    return null;
  }
  if (row.status !== 'queued' && row.status !== 'processing') {
    log.info({ status: row.status }, 'media already settled; duplicate delivery ignored');
    return null;
  }
  return mediaRepo.claimForRun(deps.pool, mediaId, payload.appId, runId);
}

/** The `media.ready` event of the row as `markReadyWithEvent` will leave it (the claimed row plus the fields it sets). */
function readyEvent(row: MediaRow, f: mediaRepo.ReadyFields): { id: string; body: unknown } {
  const id = newEventId();
  return { id, body: eventBody(id, 'media.ready', { ...row, mime_type: f.mimeType, size_bytes: f.sizeBytes, checksum: f.checksum }) };
}

/**
 * Deletes what this run wrote, except what the row points at: a commit whose answer was lost (the
 * connection dropped after COMMIT) keeps its objects. The keys are this run's own, so no other
 * run's objects are touched. When the row cannot be read nothing is deleted: a leftover is found by
 * `mediaflow orphans`, a deleted committed object could not come back. Returns the row as read.
 */
async function discardWritten(deps: ProcessDeps, mediaId: string, written: readonly string[], log: Logger): Promise<MediaRow | null> {
  try {
    const now = await mediaRepo.getMediaById(deps.pool, mediaId);
    const kept = new Set(now ? [now.storage_key, ...now.variants.map((v) => v.key)] : []);
    const doomed = written.filter((k) => !kept.has(k));
    if (doomed.length > 0) await deps.store.delete(doomed);
    return now;
  } catch (err) {
    log.warn({ err }, 'could not delete the objects of a discarded run; `mediaflow orphans --fix` removes them');
    return null;
  }
}

/** The state change and its webhook outbox row, in one transaction: a crash loses neither alone. */
async function settle(
  deps: ProcessDeps,
  change: (c: Queryable) => Promise<MediaRow | null>,
  event: 'media.ready' | 'media.failed',
): Promise<{ row: MediaRow | null; delivery: string | null }> {
  return withTransaction(deps.pool, async (c) => {
    const row = await change(c);
    const delivery = row && deps.queues ? await recordMediaEvent(c, row, event) : null;
    return { row, delivery };
  });
}

async function removeStaging(deps: ProcessDeps, row: MediaRow, log: Logger): Promise<void> {
  const key = stagingKey(row.app_id, row.id);
  try {
    // markReady/markFailed already cleared staging_key; only the object remains.
    await deps.store.delete([key]);
  } catch (err) {
    // The sweeper removes staging older than an hour: a leftover here is retried there.
    log.warn({ err }, 'could not delete staging object');
  }
}

/** A producer enqueued directly (no HTTP): the worker makes the row the API would have made. */
async function createRowForProducerJob(deps: ProcessDeps, payload: IngestPayload, log: Logger): Promise<MediaRow | null> {
  const app = await appsRepo.getApp(deps.pool, payload.appId);
  if (!app) {
    log.error('producer job names an unknown app; dropped');
    throw new PermanentError('NOT_FOUND', `unknown app ${payload.appId}`);
  }
  await checkOwnership(deps.pool, payload.appId, { deviceId: payload.deviceId });
  try {
    // The row and the references the job carries (issue 15) commit together: a retry after a crash
    // finds either both or neither.
    return await withTransaction(deps.pool, async (c) => {
      const row = await mediaRepo.insertMedia(
        c,
        newMediaRow(deps.config, {
          appId: payload.appId,
          mediaId: payload.mediaId!,
          kind: payload.kind ?? null,
          source: payload.source.type === 'url' ? 'url' : 'queue',
          sourceUrl: payload.source.type === 'url' ? payload.source.url : null,
          declaredMime: null,
          originalName: null,
          inputBytes: null,
          stagingKey: null,
          fields: { deviceId: payload.deviceId, ttlSeconds: payload.ttlSeconds, correlationId: payload.correlationId },
        }),
      );
      if (payload.references?.length) {
        const grace = deps.config.REFERENCE_GRACE_SECONDS ?? DEFAULT_REFERENCE_GRACE_SECONDS;
        await insertReferences(c, row.id, payload.references.map((r) => ({ ref: r.ref, sendAt: new Date(r.sendAt), liveUntil: liveUntil(new Date(r.sendAt), grace) })));
      }
      return row;
    });
  } catch (err) {
    // Two deliveries raced to create it: the other one's row stands.
    if ((err as { code?: string }).code === '23505') return mediaRepo.getMediaById(deps.pool, payload.mediaId!);
    throw err;
  }
}
