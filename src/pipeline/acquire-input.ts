import { constants as fsConstants, createWriteStream } from 'node:fs';
import { open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { PermanentError } from '../domain/errors.js';
import { inboxPrefix, isInboxKeyOf, stagingKey } from '../domain/ids.js';
import type { IngestSource } from '../domain/sources.js';
import { BlobNotFoundError, type BlobStore } from '../storage/blob-store.js';
import type { Keyring } from '../storage/sealed-format.js';
import { openObject } from '../storage/sealed-store.js';
import { openUrl } from '../net/fetch-source.js';
import { SizeLimiter } from './limit-size.js';

export interface AcquireDeps {
  store: BlobStore;
  keyring: Keyring;
  allowPrivateUrls: boolean;
  fileSourceRoot?: string;
  /** URL_FETCH_DEADLINE_SECONDS and URL_STALL_SECONDS; openUrl's defaults when absent. */
  urlFetchDeadlineSeconds?: number;
  urlStallSeconds?: number;
}

export interface AcquiredInput {
  /**
   * The plaintext, when it came to at most `inMemoryMaxBytes`: held in memory, so no file was
   * written for it. Otherwise null and the plaintext is the scratch file at `path`.
   */
  buffer: Buffer | null;
  /** The scratch file (in the job's scratch directory), when the input was not kept in memory. */
  path: string | null;
  bytes: number;
  contentType: string | null;
  filename: string | null;
}

/**
 * Brings a job's source to the worker as plaintext, enforcing `maxBytes` while the bytes move:
 * into memory when the whole input fits `inMemoryMaxBytes` (a phone photo: nothing touches the
 * disk), else into the job's scratch directory (os.tmpdir() only), which `scratch()` makes when the
 * first file is needed. An input that outgrows the memory bound moves to the file on the way.
 */
export async function acquireInput(
  deps: AcquireDeps,
  input: {
    appId: string;
    mediaId: string;
    source: IngestSource;
    /** The job's scratch directory, made on first use. */
    scratch: () => Promise<string>;
    maxBytes: number;
    /** 0 (the default): always a scratch file. */
    inMemoryMaxBytes?: number;
    signal?: AbortSignal;
  },
): Promise<AcquiredInput> {
  let body: Readable;
  let contentType: string | null = null;
  let filename: string | null = null;
  const src = input.source;
  if (src.type === 'storage') {
    if (src.key === stagingKey(input.appId, input.mediaId)) {
      // Our own sealed staging object: only the one made for this media may be opened.
      body = await openStored(() => openObject(deps.store, src.key, deps.keyring, { purpose: 'staging', appId: input.appId, mediaId: input.mediaId }));
    } else if (isInboxKeyOf(input.appId, src.key)) {
      body = await openStored(() => deps.store.get(src.key));
      filename = path.posix.basename(src.key);
    } else {
      // Deny by default: a job may read its own staging object or its own app's inbox, nothing else
      // of the store (other apps, stored media, keys or anything an operator keeps beside them).
      throw new PermanentError('VALIDATION_FAILED', `a storage source must be a key under ${inboxPrefix(input.appId)}`, { field: 'source.key' });
    }
  } else if (src.type === 'url') {
    const fetched = await openUrl(src.url, {
      maxBytes: input.maxBytes,
      allowPrivateNetworks: deps.allowPrivateUrls,
      signal: input.signal,
      totalTimeoutMs: deps.urlFetchDeadlineSeconds === undefined ? undefined : deps.urlFetchDeadlineSeconds * 1000,
      stallTimeoutMs: deps.urlStallSeconds === undefined ? undefined : deps.urlStallSeconds * 1000,
    });
    body = fetched.body;
    contentType = fetched.contentType;
    filename = fetched.filename;
  } else {
    body = await openLocalFile(src.path, deps.fileSourceRoot);
    filename = path.basename(src.path);
  }
  const limiter = new SizeLimiter(input.maxBytes);
  const memoryMax = input.inMemoryMaxBytes ?? 0;
  if (memoryMax <= 0) {
    const out = path.join(await input.scratch(), 'input');
    await pipeline(body, limiter, createWriteStream(out, { mode: 0o600 }), { signal: input.signal });
    return { buffer: null, path: out, bytes: limiter.bytes, contentType, filename };
  }
  let held: Buffer[] = [];
  let heldBytes = 0;
  let out: string | null = null;
  // The sink's own failure (no scratch directory, a full disk) is the cause; the pipeline would
  // report the abort it causes upstream instead.
  let sinkFailure: { error: unknown } | null = null;
  try {
    await pipeline(
      body,
      limiter,
      async (source: AsyncIterable<Buffer>) => {
        let fh: FileHandle | null = null;
        try {
          for await (const chunk of source) {
            if (fh) {
              await writeAll(fh, [chunk]);
              continue;
            }
            held.push(chunk);
            heldBytes += chunk.length;
            if (heldBytes > memoryMax) {
              out = path.join(await input.scratch(), 'input');
              fh = await open(out, 'wx', 0o600);
              await writeAll(fh, held);
              held = [];
            }
          }
        } catch (err) {
          sinkFailure ??= { error: err };
          throw err;
        } finally {
          await fh?.close();
        }
      },
      { signal: input.signal },
    );
  } catch (err) {
    throw sinkFailure ? (sinkFailure as { error: unknown }).error : err;
  }
  if (out) return { buffer: null, path: out, bytes: limiter.bytes, contentType, filename };
  return { buffer: held.length === 1 ? held[0]! : Buffer.concat(held, heldBytes), path: null, bytes: limiter.bytes, contentType, filename };
}

async function writeAll(fh: FileHandle, bufs: Buffer[]): Promise<void> {
  let rest = bufs;
  while (rest.length > 0) {
    const total = rest.reduce((n, b) => n + b.length, 0);
    const { bytesWritten } = await fh.writev(rest);
    if (bytesWritten === total) return;
    // A short write (rare on regular files): go on from where it stopped.
    rest = [Buffer.concat(rest).subarray(bytesWritten)];
  }
}

async function openStored(open: () => Promise<Readable>): Promise<Readable> {
  try {
    return await open();
  } catch (err) {
    if (err instanceof BlobNotFoundError) throw new PermanentError('NOT_FOUND', 'the source object is gone (expired staging or deleted)');
    throw err;
  }
}

/**
 * A producer's `file` source: refused unless FILE_SOURCE_ROOT is set. The file is opened first and
 * then judged by what was opened (the descriptor's own path, symlinks resolved by the kernel), so a
 * symlink swapped in between a check and the open cannot point the read elsewhere.
 */
async function openLocalFile(p: string, root: string | undefined): Promise<Readable> {
  if (!root) throw new PermanentError('VALIDATION_FAILED', 'file sources are disabled: the operator has not set FILE_SOURCE_ROOT', { field: 'source.path' });
  if (!path.isAbsolute(p) || p.includes('\0')) throw new PermanentError('VALIDATION_FAILED', 'file source must be an absolute path', { field: 'source.path' });
  let realRoot: string;
  try {
    realRoot = await realpath(root);
  } catch {
    // A missing root is the operator's fault, not the media's, but no file can be inside it.
    throw new PermanentError('VALIDATION_FAILED', 'FILE_SOURCE_ROOT does not exist on this worker', { field: 'source.path' });
  }
  // Judged by its name first, so a path outside the root is refused before anything is opened and
  // its answer says nothing of whether such a file exists.
  if (!isInside(path.resolve(p), path.resolve(root)) && !isInside(path.resolve(p), realRoot)) {
    throw new PermanentError('VALIDATION_FAILED', 'file source lies outside FILE_SOURCE_ROOT', { field: 'source.path' });
  }
  // O_NONBLOCK: a FIFO placed at the path must not hang the worker before it is found not to be a file.
  let fh: FileHandle;
  try {
    fh = await open(p, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch {
    throw new PermanentError('NOT_FOUND', 'file source does not exist or cannot be read', { field: 'source.path' });
  }
  try {
    const opened = await openedPath(fh, p);
    if (!isInside(opened, realRoot)) {
      throw new PermanentError('VALIDATION_FAILED', 'file source lies outside FILE_SOURCE_ROOT', { field: 'source.path' });
    }
    const st = await fh.stat();
    if (!st.isFile()) throw new PermanentError('VALIDATION_FAILED', 'file source is not a regular file', { field: 'source.path' });
    return fh.createReadStream({ autoClose: true });
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
}

function isInside(p: string, root: string): boolean {
  return p === root || p.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}

/** Where an open descriptor really points: /proc on Linux; elsewhere the resolved path (best effort). */
async function openedPath(fh: FileHandle, given: string): Promise<string> {
  try {
    return await readlink(`/proc/self/fd/${fh.fd}`);
  } catch {
    return realpath(given);
  }
}
