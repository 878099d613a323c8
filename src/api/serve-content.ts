import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { MediaRow } from '../db/repos/media.js';
import { AppError } from '../domain/errors.js';
import { downloadFilename } from '../domain/filename.js';
import { integrityFailuresTotal } from '../metrics.js';
import type { Runtime } from '../runtime.js';
import { BlobNotFoundError } from '../storage/blob-store.js';
import { SealedFormatError } from '../storage/sealed-format.js';
import { openObject, openRange } from '../storage/sealed-store.js';

export type RangeSpec = { start: number; end: number } | 'unsatisfiable' | null;

/** One `bytes=` range (first-last, first-, -suffix). Several ranges are answered whole (RFC 9110 allows it). */
export function parseRange(header: string | undefined, size: number): RangeSpec {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return header.includes(',') ? null : 'unsatisfiable';
  const [, a, b] = m as unknown as [string, string, string];
  if (a === '' && b === '') return 'unsatisfiable';
  if (size === 0) return 'unsatisfiable';
  if (a === '') {
    const n = Number(b);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

/**
 * A Content-Disposition that cannot break out of the header, name a path, spoof its extension or
 * throw on any stored name (rows from before names were sanitised included): an ASCII fallback plus
 * the RFC 5987 `filename*`, both from `downloadFilename`, whose output is always well-formed UTF-16.
 */
export function contentDisposition(name: string | null, fallbackBase: string, mime: string | null): string {
  const safe = downloadFilename(name, mime, fallbackBase);
  const ascii = safe.replace(/[^A-Za-z0-9._ ()-]/gu, '_');
  const encoded = encodeURIComponent(safe).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

/**
 * Streams a ready media's bytes, decrypted as they go. The first segment is authenticated before
 * any header is sent, so a damaged start is an error response; damage further on aborts the body.
 */
export async function serveContent(rt: Runtime, req: FastifyRequest, reply: FastifyReply, row: MediaRow): Promise<FastifyReply> {
  if (row.status !== 'ready' || row.size_bytes === null || !row.checksum) {
    throw new AppError('NOT_FOUND', `media ${row.id} has no content yet (status ${row.status})`);
  }
  if (row.expires_at.getTime() <= Date.now()) throw new AppError('EXPIRED', 'media is past its expiry');
  const size = row.size_bytes;
  const etag = `"${row.checksum}"`;
  reply
    .header('content-type', row.mime_type ?? 'application/octet-stream')
    .header('etag', etag)
    .header('accept-ranges', 'bytes')
    .header('content-disposition', contentDisposition(row.original_name ?? row.name, row.id, row.mime_type))
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'private, max-age=0, must-revalidate')
    .header('x-mediaflow-checksum-sha256', row.checksum);
  const inm = req.headers['if-none-match'];
  if (inm && (inm === etag || inm.split(',').map((s) => s.trim()).includes(etag))) return reply.code(304).send();
  const ifRange = req.headers['if-range'];
  const range = ifRange && ifRange !== etag ? null : parseRange(req.headers.range, size);
  if (range === 'unsatisfiable') {
    reply.header('content-range', `bytes */${size}`);
    throw Object.assign(new AppError('VALIDATION_FAILED', 'range not satisfiable', { size }), { status: 416 });
  }
  const ctx = { purpose: 'media' as const, appId: row.app_id, mediaId: row.id };
  let body: Readable;
  try {
    body = range ? await openRange(rt.store, row.storage_key, rt.keyring, ctx, range) : await openObject(rt.store, row.storage_key, rt.keyring, ctx);
    body = await firstChunkVerified(body);
  } catch (err) {
    throw mapReadError(rt, req, row, err);
  }
  body.on('error', (err) => {
    // Headers are gone: the only honest signal left is an aborted body.
    mapReadError(rt, req, row, err);
  });
  if (range) {
    reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${size}`).header('content-length', range.end - range.start + 1);
  } else {
    reply.code(200).header('content-length', size);
  }
  return reply.send(body);
}

function mapReadError(rt: Runtime, req: FastifyRequest, row: MediaRow, err: unknown): AppError {
  if (err instanceof SealedFormatError) {
    integrityFailuresTotal.inc();
    req.log.error({ mediaId: row.id, key: row.storage_key, event: 'integrity_failure', reason: err.message }, 'stored object failed authentication; nothing of it was served');
    return new AppError('STORAGE_UNAVAILABLE', 'the stored object failed its integrity check');
  }
  if (err instanceof BlobNotFoundError) {
    req.log.error({ mediaId: row.id, event: 'object_missing' }, 'ready media has no stored object');
    return new AppError('NOT_FOUND', 'media content is gone');
  }
  if (err instanceof AppError) return err;
  req.log.error({ err, mediaId: row.id }, 'reading stored object failed');
  void rt;
  return new AppError('STORAGE_UNAVAILABLE', 'object storage failed; retry after a short delay');
}

/** Resolves once the stream has a verified chunk buffered (or ended), rejects on its first error. */
function firstChunkVerified(s: Readable): Promise<Readable> {
  return new Promise((resolve, reject) => {
    const done = (fn: () => void) => {
      s.off('readable', onReadable);
      s.off('error', onError);
      s.off('end', onEnd);
      fn();
    };
    const onReadable = () => done(() => resolve(s));
    const onEnd = () => done(() => resolve(s));
    const onError = (e: Error) => done(() => reject(e));
    s.once('readable', onReadable);
    s.once('error', onError);
    s.once('end', onEnd);
  });
}
