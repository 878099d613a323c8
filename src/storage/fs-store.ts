import { randomBytes } from 'node:crypto';
import { constants as fsConstants, stat as statCallback, unlink as unlinkCallback } from 'node:fs';
import { access, mkdir, open, opendir, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { StorageError } from '../domain/errors.js';
import {
  BlobDeleteError,
  BlobNotFoundError,
  InvalidBlobKeyError,
  RangeNotSatisfiableError,
  assertBlobKey,
  assertBlobPrefix,
  assertByteRange,
  guardReadable,
  trackBody,
  type BlobStore,
  type ByteRange,
  type PutOptions,
  type PutResult,
} from './blob-store.js';

/** Writes are gathered up to this size before one `writev`, so tiny body chunks do not cost a syscall each. */
const WRITE_BATCH_BYTES = 256 * 1024;
const READ_CHUNK_BYTES = 64 * 1024;
const DELETE_CONCURRENCY = 16;
/** Keys of one delete in one directory from which the directory is looked up before unlinking them (one stat against that many unlinks). */
const DIR_LOOKUP_MIN_KEYS = 8;

/** Codes that mean "nothing there" when looking a key up (a file where a directory was expected, too). */
const ABSENT = new Set(['ENOENT', 'ENOTDIR']);

const codeOf = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;

/**
 * unlink and stat that resolve with their error instead of rejecting: a sweep unlinks every media's
 * staging key, almost always absent, and the promise API captures a new stack trace for each
 * ENOENT (a third of what its unlinks cost the main thread, in a profile).
 */
const unlinkQuietly = (file: string): Promise<NodeJS.ErrnoException | null> => new Promise((resolve) => unlinkCallback(file, resolve));
const statQuietly = (file: string): Promise<NodeJS.ErrnoException | null> => new Promise((resolve) => statCallback(file, (err) => resolve(err)));

/**
 * The one-machine driver: `<root>/<key>`. A put streams into `.<name>.<random>.tmp` beside the final
 * file, fsyncs it, renames it into place and fsyncs the directory, so a reader (or a crash) sees the
 * old object or the new one, never a part. Every unexpected I/O fault becomes a `StorageError`.
 */
export function createFsStore(opts: { root: string }): BlobStore {
  const root = path.resolve(opts.root);

  function fault(op: string, key: string, err: unknown): StorageError {
    if (err instanceof StorageError) return err;
    const code = codeOf(err);
    const why = err instanceof Error ? err.message : String(err);
    return new StorageError(`fs ${op} ${key} failed${code ? ` (${code})` : ''}: ${why}`, err);
  }

  /** Defence in depth: keys come from our domain, but a bad one must never escape `root`. */
  function fileOf(key: string): string {
    assertBlobKey(key);
    const file = path.resolve(root, ...key.split('/'));
    if (!file.startsWith(root + path.sep)) throw new InvalidBlobKeyError(key, 'resolves outside the store root');
    return file;
  }

  /** Removes empty directories from `dir` up to (not including) root. Best effort: stops at the first that stays. */
  async function pruneEmptyDirs(dir: string): Promise<void> {
    let current = dir;
    // Top-level folders (`objects/`, `staging/`) stay: every put goes through them, and removing them
    // only makes concurrent puts race to recreate them.
    while (current.startsWith(root + path.sep) && path.dirname(current) !== root) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (ENOTEMPTY/EEXIST), already gone, or not ours to remove
      }
      current = path.dirname(current);
    }
  }

  /**
   * Opens a fresh temp file, creating its directory when it is missing; retries when a concurrent
   * delete pruned the directory. The directory is almost always there already (every put of an app
   * goes to the same one), so the open is tried first: a mkdir per put is a syscall for nothing.
   */
  async function openTemp(dir: string, tmp: string): Promise<FileHandle> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await open(tmp, 'wx');
      } catch (err) {
        if (codeOf(err) !== 'ENOENT' || attempt >= 5) throw err;
      }
      try {
        // A recursive mkdir fails with ENOENT when a parent it just made is pruned before it makes the child.
        await mkdir(dir, { recursive: true });
      } catch (err) {
        if (codeOf(err) !== 'ENOENT') throw err;
      }
    }
  }

  async function writeAll(fh: FileHandle, bufs: Buffer[], total: number): Promise<void> {
    const { bytesWritten } = await fh.writev(bufs);
    if (bytesWritten === total) return;
    // a short write (rare on regular files): finish the remainder plainly
    let rest = Buffer.concat(bufs).subarray(bytesWritten);
    while (rest.length > 0) {
      const r = await fh.write(rest);
      rest = rest.subarray(r.bytesWritten);
    }
  }

  async function fsyncDirNow(dir: string): Promise<void> {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  /**
   * Group commit of directory fsyncs: every put of an app renames into the same directory, and one
   * fsync of it makes every rename done before it started durable. A caller joins the next fsync
   * that starts after its rename (never one already running, which may have missed it), so puts
   * in flight together share one instead of queueing one each behind the others.
   */
  const dirSyncs = new Map<string, { running: Promise<void> | null; next: Promise<void> | null }>();
  function fsyncDir(dir: string): Promise<void> {
    let state = dirSyncs.get(dir);
    if (!state) dirSyncs.set(dir, (state = { running: null, next: null }));
    const s = state;
    if (s.next) return s.next;
    const start = (): Promise<void> => {
      const p = fsyncDirNow(dir).finally(() => {
        if (s.running === p) s.running = null;
        if (!s.running && !s.next) dirSyncs.delete(dir);
      });
      s.running = p;
      return p;
    };
    if (!s.running) return start();
    const next = s.running.catch(() => undefined).then(() => {
      s.next = null;
      return start();
    });
    s.next = next;
    return next;
  }

  async function put(key: string, body: Readable, opts: PutOptions = {}): Promise<PutResult> {
    const file = fileOf(key);
    const { signal, contentLength } = opts;
    const dir = path.dirname(file);
    const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(8).toString('hex')}.tmp`);

    // Errors thrown while reading the body are the body's: they are rethrown unchanged (a size limit's
    // FILE_TOO_LARGE must reach the caller as it was thrown). An abort destroys the body with the signal's
    // reason, so it takes the same path.
    const tracked = trackBody(body as AsyncIterable<Buffer | string>, contentLength);
    const bodyFailure = tracked.state;

    if (signal?.aborted) {
      body.destroy();
      throw signal.reason;
    }
    const onAbort = (): void => {
      body.destroy(signal?.reason instanceof Error ? signal.reason : new Error('aborted', { cause: signal?.reason }));
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    let fh: FileHandle | undefined;
    let bytes = 0;
    let renamed = false;
    try {
      fh = await openTemp(dir, tmp);
      // One batch is written while the next is read.
      let pending: Promise<void> = Promise.resolve();
      let batch: Buffer[] = [];
      let batchBytes = 0;
      for await (const buf of tracked.chunks()) {
        batch.push(buf);
        batchBytes += buf.length;
        bytes += buf.length;
        if (batchBytes >= WRITE_BATCH_BYTES) {
          await pending;
          pending = writeAll(fh, batch, batchBytes);
          pending.catch(() => undefined); // observed at the next await; avoids an unhandled rejection meanwhile
          batch = [];
          batchBytes = 0;
        }
      }
      await pending;
      if (batchBytes > 0) await writeAll(fh, batch, batchBytes);
      if (opts.fresh) {
        signal?.throwIfAborted();
        // Nothing trusts this key before the put returns, so it is named before its bytes are
        // durable: the file's fsync and the directory's then run at once, not one after the other.
        // A crash in between can leave a part at the key, which nothing points at.
        await rename(tmp, file);
        renamed = true;
        const synced = await Promise.allSettled([fh.sync(), fsyncDir(dir)]);
        const failed = synced.find((r) => r.status === 'rejected');
        if (failed) throw (failed as PromiseRejectedResult).reason;
        await fh.close();
        fh = undefined;
        return { bytes };
      }
      await fh.sync();
      await fh.close();
      fh = undefined;
      signal?.throwIfAborted();
      await rename(tmp, file);
      renamed = true;
      await fsyncDir(dir);
      return { bytes };
    } catch (err) {
      if (fh) await fh.close().catch(() => undefined);
      if (!renamed) {
        await unlink(tmp).catch(() => undefined);
        await pruneEmptyDirs(dir);
      } else if (opts.fresh) {
        // Named but never made durable: the put failed, so the object must not stay.
        await unlink(file).catch(() => undefined);
      }
      if (bodyFailure.failed) throw bodyFailure.error;
      if (signal?.aborted && !renamed) throw signal.reason;
      throw fault('put', key, err);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async function get(key: string, range?: ByteRange): Promise<Readable> {
    const file = fileOf(key);
    if (range) assertByteRange(range);
    let fh: FileHandle;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      if (ABSENT.has(codeOf(err) ?? '') || codeOf(err) === 'EISDIR') throw new BlobNotFoundError(key);
      throw fault('get', key, err);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new BlobNotFoundError(key);
      let start = 0;
      let end: number | undefined;
      if (range) {
        if (range.start >= st.size) throw new RangeNotSatisfiableError(key, range, st.size);
        start = range.start;
        end = Math.min(range.end, st.size - 1);
      }
      // the stream owns the handle from here (autoClose)
      const src = fh.createReadStream({ start, end, highWaterMark: READ_CHUNK_BYTES });
      return guardReadable(src, { mapError: (err) => fault('read', key, err) });
    } catch (err) {
      await fh.close().catch(() => undefined);
      if (err instanceof BlobNotFoundError || err instanceof RangeNotSatisfiableError) throw err;
      throw fault('get', key, err);
    }
  }

  async function statKey(key: string): Promise<{ size: number } | null> {
    const file = fileOf(key);
    try {
      const st = await stat(file);
      return st.isFile() ? { size: st.size } : null;
    } catch (err) {
      if (ABSENT.has(codeOf(err) ?? '')) return null;
      throw fault('stat', key, err);
    }
  }

  /**
   * Deletes keys, `DELETE_CONCURRENCY` unlinks at a time, then prunes each directory that lost a file
   * once: a sweep batch deletes hundreds of keys from a handful of directories, and trying to remove
   * a directory after every file is a failing rmdir per file. A directory that many keys share
   * (`DIR_LOOKUP_MIN_KEYS`) is looked up first: when it is gone (an app's staging folder with no upload in flight, where a
   * sweep deletes every media's staging key), none of its keys is there and one lookup replaces
   * their unlinks.
   */
  async function del(keys: readonly string[]): Promise<void> {
    const files = new Map<string, string>();
    for (const key of keys) files.set(key, fileOf(key)); // validate every key before deleting any
    const byDir = new Map<string, Array<[string, string]>>();
    for (const entry of files) {
      const dir = path.dirname(entry[1]);
      const list = byDir.get(dir);
      if (list) list.push(entry);
      else byDir.set(dir, [entry]);
    }
    const queue: Array<[string, string]> = [];
    await Promise.all(
      [...byDir].map(async ([dir, entries]) => {
        if (entries.length >= DIR_LOOKUP_MIN_KEYS && ABSENT.has(codeOf(await statQuietly(dir)) ?? '')) return;
        queue.push(...entries);
      }),
    );
    const failed: string[] = [];
    let firstCause: unknown;
    const emptied = new Set<string>();
    async function worker(): Promise<void> {
      for (let next = queue.pop(); next; next = queue.pop()) {
        const [key, file] = next;
        const err = await unlinkQuietly(file);
        if (!err) emptied.add(path.dirname(file));
        else if (!ABSENT.has(codeOf(err) ?? '')) {
          failed.push(key);
          firstCause ??= err;
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, queue.length) }, worker));
    const dirs = [...emptied];
    await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, dirs.length) }, async () => {
      for (let dir = dirs.pop(); dir; dir = dirs.pop()) await pruneEmptyDirs(dir);
    }));
    if (failed.length > 0) {
      const code = codeOf(firstCause);
      throw new BlobDeleteError(
        `fs delete failed for ${failed.length} of ${files.size} keys${code ? ` (${code})` : ''}: ${failed.slice(0, 10).join(', ')}${failed.length > 10 ? ', …' : ''}`,
        failed,
        firstCause,
      );
    }
  }

  async function* list(prefix: string): AsyncIterable<{ key: string; size: number; lastModified: Date }> {
    assertBlobPrefix(prefix);
    // walk only the directory the prefix names fully; filter by the string prefix below it
    const slash = prefix.lastIndexOf('/');
    const baseRel = slash >= 0 ? prefix.slice(0, slash) : '';
    const baseDir = baseRel ? path.resolve(root, ...baseRel.split('/')) : root;

    async function* walk(dir: string, rel: string): AsyncGenerator<{ key: string; size: number; lastModified: Date }> {
      let entries;
      try {
        entries = await opendir(dir);
      } catch (err) {
        if (ABSENT.has(codeOf(err) ?? '')) return;
        throw fault('list', prefix, err);
      }
      try {
        for await (const ent of entries) {
          if (ent.name.startsWith('.')) continue; // temp files of puts in flight
          const key = rel ? `${rel}/${ent.name}` : ent.name;
          const full = path.join(dir, ent.name);
          if (ent.isDirectory()) {
            if (key.startsWith(prefix) || prefix.startsWith(`${key}/`)) yield* walk(full, key);
          } else if (ent.isFile() && key.startsWith(prefix)) {
            try {
              const st = await stat(full);
              yield { key, size: st.size, lastModified: st.mtime };
            } catch (err) {
              if (!ABSENT.has(codeOf(err) ?? '')) throw err; // deleted while we walked: skip it
            }
          }
        }
      } catch (err) {
        throw fault('list', prefix, err);
      }
    }
    yield* walk(baseDir, baseRel);
  }

  return {
    driver: 'fs',
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
        await mkdir(root, { recursive: true });
        const st = await stat(root);
        if (!st.isDirectory()) throw Object.assign(new Error(`${root} is not a directory`), { code: 'ENOTDIR' });
        await access(root, fsConstants.W_OK);
      } catch (err) {
        throw fault('ping', root, err);
      }
    },
    async close() {
      // nothing held open between calls: every stream returned by get closes its own handle
    },
  };
}
