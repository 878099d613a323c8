import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type GetObjectCommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { StorageError } from '../domain/errors.js';
import {
  BlobDeleteError,
  BlobNotFoundError,
  RangeNotSatisfiableError,
  assertBlobKey,
  assertBlobPrefix,
  assertByteRange,
  guardReadable,
  trackBody,
  type BlobStore,
  type ByteRange,
  type PutResult,
} from './blob-store.js';

export interface S3StoreOptions {
  /** For S3-compatible stores (MinIO, s3rver); omit for AWS. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** Omit both to use the SDK's default credential chain (env, profile, instance role). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Path-style URLs (`<endpoint>/<bucket>/<key>`): needed by most S3-compatible stores. */
  forcePathStyle?: boolean;
  /** Multipart part size; 8 MiB by default, at least 5 MiB (S3's minimum). Memory per put ≈ (queueSize + 1) × partSize. */
  partSizeBytes?: number;
  /** Parts uploaded concurrently per put; 2 by default. */
  queueSize?: number;
}

const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
const DEFAULT_QUEUE_SIZE = 2;
const DELETE_BATCH = 1000; // DeleteObjects' limit
/** DeleteObjects calls one `delete` keeps in flight (S3 takes thousands of requests per second per prefix). */
const DELETE_CALLS_IN_FLIGHT = 4;
const CONNECTION_TIMEOUT_MS = 3_000;
/** Whole request until response headers (an 8 MiB part must fit in it), and the longest a socket may idle mid-body. */
const REQUEST_TIMEOUT_MS = 30_000;

interface SdkErrorShape {
  name?: string;
  message?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}
const sdkError = (err: unknown): SdkErrorShape => (typeof err === 'object' && err !== null ? (err as SdkErrorShape) : {});
const statusOf = (err: unknown): number | undefined => sdkError(err).$metadata?.httpStatusCode;

function describe(err: unknown): string {
  const { name, message } = sdkError(err);
  const status = statusOf(err);
  return `${name ?? 'Error'}${status ? ` (HTTP ${status})` : ''}: ${message ?? String(err)}`;
}

/** Only a missing key is "not found": NoSuchBucket (also a 404) is a misconfiguration, i.e. a storage fault. */
function isMissingKey(err: unknown): boolean {
  const { name, Code } = sdkError(err);
  if (name === 'NoSuchKey' || Code === 'NoSuchKey') return true;
  // HEAD responses carry no body, hence no error code: the SDK names them after the status
  return name === 'NotFound' && statusOf(err) === 404;
}

function parseContentRange(value: string | undefined): { start: number; end: number; size: number | undefined } | undefined {
  const m = value ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value.trim()) : null;
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), size: m[3] === '*' ? undefined : Number(m[3]) };
}

/**
 * The many-machine driver. One S3Client (and one keep-alive agent) per store; create one store per
 * process. Checksums are only sent where S3 requires them (STACK.md gotcha 2: the SDK's default
 * aws-chunked checksums are stored as content by s3rver and some S3-compatible stores). Retries are
 * bounded (3 attempts) and every request has connection and request timeouts, so an unreachable store
 * fails in seconds with a StorageError instead of hanging a worker.
 */
export function createS3Store(opts: S3StoreOptions): BlobStore {
  const bucket = opts.bucket;
  const partSize = opts.partSizeBytes ?? DEFAULT_PART_SIZE;
  const queueSize = opts.queueSize ?? DEFAULT_QUEUE_SIZE;
  if (partSize < 5 * 1024 * 1024) throw new RangeError('partSizeBytes must be at least 5 MiB');
  if (!Number.isInteger(queueSize) || queueSize < 1) throw new RangeError('queueSize must be a positive integer');

  const client = new S3Client({
    region: opts.region,
    endpoint: opts.endpoint,
    forcePathStyle: opts.forcePathStyle,
    credentials:
      opts.accessKeyId !== undefined && opts.secretAccessKey !== undefined
        ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey }
        : undefined,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    requestHandler: {
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      throwOnRequestTimeout: true,
      socketTimeout: REQUEST_TIMEOUT_MS,
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 64 }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 64 }),
    },
  });

  function fault(op: string, key: string | undefined, err: unknown): StorageError {
    if (err instanceof StorageError) return err;
    return new StorageError(`s3 ${op}${key === undefined ? '' : ` ${key}`} failed: ${describe(err)}`, err);
  }

  async function put(key: string, body: Readable, opts: { signal?: AbortSignal; contentLength?: number } = {}): Promise<PutResult> {
    assertBlobKey(key);
    const { signal, contentLength } = opts;
    if (signal?.aborted) {
      body.destroy();
      throw signal.reason;
    }

    // Errors thrown while reading the body are the body's and are rethrown unchanged, even when
    // lib-storage reports something else (it throws the AbortMultipartUpload error if that fails too).
    const tracked = trackBody(body as AsyncIterable<Buffer | string>, contentLength);
    const bodyFailure = tracked.state;

    // An abort fails the body, which makes lib-storage stop, abort the multipart upload, and reject:
    // put settles only after that clean-up, so nothing is left behind when it rejects.
    const onAbort = (): void => {
      body.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted', { cause: signal?.reason }));
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    // lib-storage buffers one part per uploader plus the one being filled: memory is bounded by
    // (queueSize + 1) × partSize whatever the object's size. Bodies smaller than a part go as one PutObject.
    const upload = new Upload({
      client,
      params: { Bucket: bucket, Key: key, Body: Readable.from(tracked.chunks(), { objectMode: false }) },
      partSize,
      queueSize,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
      return { bytes: tracked.state.bytes };
    } catch (err) {
      if (bodyFailure.failed) throw bodyFailure.error;
      throw fault('put', key, err);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async function get(key: string, range?: ByteRange): Promise<Readable> {
    assertBlobKey(key);
    if (range) assertByteRange(range);
    let res: GetObjectCommandOutput;
    try {
      res = await client.send(
        new GetObjectCommand({ Bucket: bucket, Key: key, Range: range ? `bytes=${range.start}-${range.end}` : undefined }),
      );
    } catch (err) {
      if (isMissingKey(err)) throw new BlobNotFoundError(key);
      if (range && (statusOf(err) === 416 || sdkError(err).name === 'InvalidRange')) {
        throw new RangeNotSatisfiableError(key, range, undefined);
      }
      throw fault('get', key, err);
    }
    const body = res.Body;
    if (!(body instanceof Readable)) throw new StorageError(`s3 get ${key}: response has no readable body`);
    const mapError = (err: unknown): StorageError => fault('read', key, err);
    if (!range) return guardReadable(body, { expected: res.ContentLength, mapError });

    // Trust but verify the range the server sent: a server may ignore Range (200, whole object) or send
    // a wider one (s3rver 3.7.1 answers `bytes=0-0` with the whole object); skip and trim to what was asked.
    const served = parseContentRange(res.ContentRange);
    const servedStart = served?.start ?? 0;
    const size = served?.size ?? (res.$metadata.httpStatusCode === 200 ? res.ContentLength : undefined);
    if (size !== undefined && range.start >= size) {
      body.destroy();
      throw new RangeNotSatisfiableError(key, range, size);
    }
    if (servedStart > range.start) {
      body.destroy();
      throw new StorageError(`s3 get ${key}: asked for bytes ${range.start}-${range.end}, got ${res.ContentRange ?? 'no Content-Range'}`);
    }
    const last = size === undefined ? range.end : Math.min(range.end, size - 1);
    return guardReadable(body, {
      skip: range.start - servedStart,
      take: last - range.start + 1,
      expected: res.ContentLength,
      mapError,
    });
  }

  async function statKey(key: string): Promise<{ size: number } | null> {
    assertBlobKey(key);
    try {
      const res = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { size: res.ContentLength ?? 0 };
    } catch (err) {
      if (isMissingKey(err)) return null;
      throw fault('stat', key, err);
    }
  }

  /**
   * DeleteObjects of up to 1000 keys each, `DELETE_CALLS_IN_FLIGHT` at once: one call is a round trip
   * plus the server's work, and a sweep of a backlog deletes thousands of keys per batch.
   */
  async function del(keys: readonly string[]): Promise<void> {
    for (const key of keys) assertBlobKey(key); // validate every key before deleting any
    const unique = [...new Set(keys)];
    const chunks: string[][] = [];
    for (let i = 0; i < unique.length; i += DELETE_BATCH) chunks.push(unique.slice(i, i + DELETE_BATCH));
    const failed: string[] = [];
    let firstCause: unknown;
    let requestFailure: unknown;
    let next = 0;
    const caller = async (): Promise<void> => {
      // After a failed request, later chunks are not sent: the store is likely down, and what was
      // not sent is reported as not deleted.
      while (next < chunks.length && requestFailure === undefined) {
        const batch = chunks[next++]!;
        let errors;
        try {
          const res = await client.send(
            new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
          );
          errors = res.Errors ?? [];
        } catch (err) {
          requestFailure ??= err;
          failed.push(...batch);
          continue;
        }
        // A 200 can still carry per-key failures (AccessDenied, InternalError, SlowDown...): never ignore them.
        for (const e of errors) {
          if (e.Code === 'NoSuchKey') continue; // absent is deleted, as far as we are concerned
          failed.push(e.Key ?? '(no key)');
          firstCause ??= e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_CALLS_IN_FLIGHT, chunks.length) }, caller));
    if (requestFailure !== undefined) {
      // the whole request failed: its keys and every chunk not sent are not known to be deleted
      const notDone = [...failed, ...chunks.slice(next).flat()];
      throw new BlobDeleteError(`s3 delete failed for ${notDone.length} of ${unique.length} keys: ${describe(requestFailure)}`, notDone, requestFailure);
    }
    if (failed.length > 0) {
      const first = firstCause as { Code?: string; Message?: string } | undefined;
      throw new BlobDeleteError(
        `s3 delete failed for ${failed.length} of ${unique.length} keys (${first?.Code ?? 'error'}: ${first?.Message ?? ''}): ${failed.slice(0, 10).join(', ')}${failed.length > 10 ? ', …' : ''}`,
        failed,
        firstCause,
      );
    }
  }

  async function* list(prefix: string): AsyncIterable<{ key: string; size: number; lastModified: Date }> {
    assertBlobPrefix(prefix);
    let token: string | undefined;
    do {
      let res;
      try {
        res = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, ContinuationToken: token }));
      } catch (err) {
        throw fault('list', prefix, err);
      }
      for (const o of res.Contents ?? []) {
        if (o.Key !== undefined) yield { key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified ?? new Date(0) };
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  return {
    driver: 's3',
    put,
    get,
    stat: statKey,
    async exists(key) {
      return (await statKey(key)) !== null;
    },
    delete: del,
    list,
    async ping() {
      try {
        await client.send(new HeadBucketCommand({ Bucket: bucket }));
      } catch (err) {
        throw fault('ping', bucket, err);
      }
    },
    async close() {
      client.destroy();
    },
  };
}
