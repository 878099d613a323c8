import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppError } from '../domain/errors.js';
import { stagingKey } from '../domain/ids.js';
import type { MediaKind } from '../domain/kinds.js';
import { decideKind, fileTooLarge } from '../domain/policies.js';
import type { BlobStore } from '../storage/blob-store.js';
import { createSealStream, type Keyring } from '../storage/sealed-format.js';
import { SizeLimiter } from './limit-size.js';
import { SNIFF_BYTES, sniffBuffer, type Sniffed } from './sniff.js';

export interface StageInput {
  body: Readable;
  appId: string;
  mediaId: string;
  /** The client's kind; inferred from the sniffed type when absent. */
  kind?: MediaKind;
  declaredMime?: string | null;
  /** Input limit for a kind (per-app overrides applied by the caller). */
  limitFor: (kind: MediaKind) => number;
  signal?: AbortSignal;
}

export interface StagedUpload {
  stagingKey: string;
  kind: MediaKind;
  sniffed: Sniffed;
  bytes: number;
  sha256: string;
}

/** Uploads up to this size are read whole before they are sealed; larger ones stream. */
const SMALL_UPLOAD_BYTES = 1024 * 1024;

/**
 * Sniffs the first bytes before anything is kept (415 at once), then streams the rest through the
 * kind's size cap and the sealing pass into an encrypted staging object. On any failure nothing
 * is left at the staging key: the store discards a put whose body failed.
 */
export async function stageUpload(deps: { store: BlobStore; keyring: Keyring }, input: StageInput): Promise<StagedUpload> {
  const it = input.body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const headChunks: Buffer[] = [];
  let headLen = 0;
  let ended = false;
  while (headLen < SNIFF_BYTES) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    headChunks.push(chunk);
    headLen += chunk.length;
  }
  const head = Buffer.concat(headChunks);
  if (head.length === 0) throw new AppError('VALIDATION_FAILED', 'the file is empty', { fields: { file: 'empty' } });

  const sniffed = await sniffBuffer(head, ended);
  // A provisional type (only a TIFF or zip header in these bytes) passes when the kind takes it; the
  // worker's sniff of the whole file decides, and refuses what the rest does not bear out.
  const kind = decideKind({ kind: input.kind, mime: sniffed.mime, declared: input.declaredMime, seen: 'head' });
  const limit = input.limitFor(kind);
  if (head.length > limit) throw fileTooLarge(limit);

  // A small upload (most photos and voice notes) is read whole and sealed in one call: no stream
  // plumbing per chunk. Past SMALL_UPLOAD_BYTES the rest streams through the cap as it arrives.
  const held: Buffer[] = [head];
  let heldBytes = head.length;
  while (!ended && heldBytes <= SMALL_UPLOAD_BYTES) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    const chunk = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    held.push(chunk);
    heldBytes += chunk.length;
  }
  const key = stagingKey(input.appId, input.mediaId);
  const seal = createSealStream(deps.keyring, { purpose: 'staging', appId: input.appId, mediaId: input.mediaId });
  // The staging key is this media's, new, and no row names it before the put returns: `fresh`.
  let putting: Promise<unknown>;
  let feeding: Promise<unknown>;
  if (ended) {
    if (heldBytes > limit) {
      seal.stream.destroy();
      throw fileTooLarge(limit);
    }
    seal.stream.end(held.length === 1 ? held[0] : Buffer.concat(held, heldBytes));
    feeding = Promise.resolve();
    putting = deps.store.put(key, seal.stream, { signal: input.signal, fresh: true });
  } else {
    const rest = Readable.from(
      (async function* () {
        yield* held;
        for (;;) {
          const r = await it.next();
          if (r.done) return;
          yield r.value;
        }
      })(),
      { objectMode: false },
    );
    feeding = pipeline(rest, new SizeLimiter(limit), seal.stream);
    putting = deps.store.put(key, seal.stream, { signal: input.signal, fresh: true });
  }
  // Whichever fails first decides; the other is awaited so nothing is left running.
  const [feedRes, putRes] = await Promise.allSettled([feeding, putting]);
  if (feedRes.status === 'rejected' || putRes.status === 'rejected') {
    await deps.store.delete([key]).catch(() => undefined);
    const reasons = [feedRes, putRes].filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason as unknown);
    // The meaningful cause (too large, storage down) beats the premature-close it causes on the other side.
    throw reasons.find((r) => r instanceof AppError) ?? reasons[0];
  }
  const result = await seal.result;
  return { stagingKey: key, kind, sniffed, bytes: result.plainBytes, sha256: result.sha256 };
}
