/**
 * The one contract every BlobStore driver must keep (CONVENTIONS.md rule 8). Run it from a `*.test.ts`
 * with a factory that makes a store over a real backend.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentError, StorageError } from '../../src/domain/errors.js';
import {
  BlobNotFoundError,
  ContentLengthMismatchError,
  InvalidBlobKeyError,
  RangeNotSatisfiableError,
  type BlobStore,
} from '../../src/storage/blob-store.js';

export interface BlobStoreSubject {
  store: BlobStore;
  cleanup(): Promise<void>;
  /** The driver's multipart part size, so range reads can straddle part boundaries (default 5 MiB). */
  partSizeBytes?: number;
  /** What a failed put may have left behind for `key`: fs temp files, s3 pending multipart uploads. */
  leftovers?(key: string): Promise<string[]>;
}

const MiB = 1024 * 1024;

// ---- deterministic content: byte i of every object is TABLE[i % TABLE.length] -----------------
// The table's length is prime, so no part or chunk size lines up with it: a part stored at the wrong
// offset, twice, or not at all changes the bytes.
const TABLE = randomBytes(1_000_003);
const TABLE2 = Buffer.concat([TABLE, TABLE]);

export function patternBytes(offset: number, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let written = 0;
  while (written < length) {
    const at = (offset + written) % TABLE.length;
    const n = Math.min(length - written, TABLE.length);
    TABLE2.copy(out, written, at, at + n);
    written += n;
  }
  return out;
}

/** A body generated as it is read, never held whole; optionally failing with `error` once `failAt` bytes went out. */
export function patternStream(
  total: number,
  opts: { chunkBytes?: number; failAt?: number; error?: Error; onChunk?: (chunk: Buffer) => void } = {},
): Readable {
  const chunk = opts.chunkBytes ?? 64 * 1024;
  let offset = 0;
  return new Readable({
    highWaterMark: chunk,
    read() {
      if (opts.failAt !== undefined && offset >= opts.failAt) {
        this.destroy(opts.error ?? new Error('body failed'));
        return;
      }
      if (offset >= total) {
        this.push(null);
        return;
      }
      const n = Math.min(chunk, total - offset, opts.failAt !== undefined ? Math.max(1, opts.failAt - offset) : Infinity);
      const buf = patternBytes(offset, n);
      opts.onChunk?.(buf);
      this.push(buf);
      offset += n;
    },
  });
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Hashes a stream into a sink that keeps nothing. */
export async function sha256Of(stream: Readable): Promise<{ hex: string; bytes: number }> {
  const h = createHash('sha256');
  let bytes = 0;
  await pipeline(
    stream,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        h.update(chunk);
        bytes += chunk.length;
        cb();
      },
    }),
  );
  return { hex: h.digest('hex'), bytes };
}

/** Peak RSS growth over the baseline at start, sampled every few milliseconds. */
export function rssSampler(): { stop(): number } {
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  return {
    stop() {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage.rss());
      return peak - base;
    },
  };
}

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

async function collect(store: BlobStore, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const o of store.list(prefix)) out.set(o.key, o.size);
  return out;
}

export function blobStoreContract(name: string, make: () => Promise<BlobStoreSubject>): void {
  describe(`BlobStore contract: ${name}`, () => {
    let subject: BlobStoreSubject;
    let store: BlobStore;
    // every run writes under its own prefix, so a shared external bucket stays usable
    const run = `t${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
    const key = (rest: string): string => `objects/${run}/${rest}`;
    const leftovers = async (k: string): Promise<string[]> => (subject.leftovers ? subject.leftovers(k) : []);

    beforeAll(async () => {
      subject = await make();
      store = subject.store;
    });
    afterAll(async () => {
      await subject?.cleanup();
    });

    it('reports its driver and answers ping', async () => {
      expect(store.driver).toBe(name);
      await expect(store.ping()).resolves.toBeUndefined();
    });

    it.each([
      ['0 bytes', 0],
      ['1 byte', 1],
      ['binary, 70 KB', 70_001],
      ['5 MB', 5_000_000],
    ])('round-trips a put and a get: %s', async (_label, size) => {
      const k = key(`rt/${size}.bin`);
      const data = size === 70_001 ? randomBytes(size) : patternBytes(0, size);
      const put = await store.put(k, Readable.from([data]), { contentLength: size });
      expect(put.bytes).toBe(size);
      expect(await store.stat(k)).toEqual({ size });
      expect(await store.exists(k)).toBe(true);
      const got = await readAll(await store.get(k));
      expect(got.length).toBe(size);
      expect(got.equals(data)).toBe(true);
    });

    it('replaces an existing object whole', async () => {
      const k = key('replace.bin');
      await store.put(k, Readable.from([Buffer.from('first version, longer')]));
      await store.put(k, Readable.from([Buffer.from('second')]));
      expect((await readAll(await store.get(k))).toString()).toBe('second');
    });

    it('puts a fresh key (nothing points at it yet) whole, and leaves nothing when its body fails', async () => {
      const k = key('fresh/ok.bin');
      const data = randomBytes(200_000);
      expect((await store.put(k, Readable.from([data]), { fresh: true })).bytes).toBe(data.length);
      expect((await readAll(await store.get(k))).equals(data)).toBe(true);
      const bad = key('fresh/failing.bin');
      const bodyError = new Error('client went away');
      await expect(store.put(bad, patternStream(3 * MiB, { failAt: 1 * MiB, error: bodyError }), { fresh: true })).rejects.toBe(bodyError);
      expect(await store.exists(bad)).toBe(false);
      expect(await leftovers(bad)).toEqual([]);
    });

    it('takes bodies of many small chunks, and string chunks', async () => {
      const k = key('small-chunks.bin');
      const data = patternBytes(7, 300_000);
      const chunks: Buffer[] = [];
      for (let i = 0; i < data.length; i += 1000) chunks.push(data.subarray(i, i + 1000));
      await store.put(k, Readable.from(chunks));
      expect((await readAll(await store.get(k))).equals(data)).toBe(true);
      const s = key('string-chunks.bin');
      await store.put(s, Readable.from(['héllo ', 'wörld'], { objectMode: true }));
      expect((await readAll(await store.get(s))).toString('utf8')).toBe('héllo wörld');
    });

    // RSS growth under 64 MB for a 50 MB object alone cannot tell streaming from buffering (a driver
    // holding the whole 50 MB once stays under 64 MB, and freed memory it reuses does not show): the
    // 160 MB case can, since buffering it would exceed the bound whatever the baseline.
    it.each([
      ['50 MB', 50 * MiB],
      ['160 MB', 160 * MiB],
    ])('streams a %s put and get with RSS growth under 64 MB each', async (label, size) => {
      const k = key(`big/${size}.bin`);
      // The expected hash is taken from the chunks as they are generated: computing it beforehand would
      // leave that much freed memory for the put to reuse unseen by RSS.
      const expected = createHash('sha256');
      const body = patternStream(size, { onChunk: (c) => expected.update(c) });

      const putRss = rssSampler();
      const put = await store.put(k, body);
      const putGrowth = putRss.stop();
      expect(put.bytes).toBe(size);

      const getRss = rssSampler();
      const got = await sha256Of(await store.get(k));
      const getGrowth = getRss.stop();
      await store.delete([k]);

      expect(got.bytes).toBe(size);
      expect(got.hex).toBe(expected.digest('hex'));
      console.info(`[${name}] ${label} put RSS +${(putGrowth / MiB).toFixed(1)} MiB, get RSS +${(getGrowth / MiB).toFixed(1)} MiB`);
      expect(putGrowth).toBeLessThan(64 * MiB);
      expect(getGrowth).toBeLessThan(64 * MiB);
    });

    describe('ranges', () => {
      let part: number;
      let size: number;
      const k = key('ranges/obj.bin');

      beforeAll(async () => {
        part = subject.partSizeBytes ?? 5 * MiB;
        size = 2 * part + 12_345; // three parts on s3: two full, one short
        await store.put(k, patternStream(size));
      });

      const ranges = (): Array<[string, number, number]> => [
        ['first byte', 0, 0],
        ['first 10 bytes', 0, 9],
        ['last byte', size - 1, size - 1],
        ['middle', 1_000_003, 1_000_003 + 4095],
        ['across the first part boundary', part - 100, part + 99],
        ['across both part boundaries', part - 1, 2 * part],
        ['from a boundary exactly', 2 * part, 2 * part + 10],
        ['whole object as a range', 0, size - 1],
      ];

      it('reads inclusive ranges, including across part boundaries', async () => {
        for (const [label, start, end] of ranges()) {
          const got = await readAll(await store.get(k, { start, end }));
          expect(got.length, label).toBe(end - start + 1);
          expect(got.equals(patternBytes(start, end - start + 1)), label).toBe(true);
        }
      });

      it('clamps an end past the last byte', async () => {
        const got = await readAll(await store.get(k, { start: size - 5, end: size + 1000 }));
        expect(got.equals(patternBytes(size - 5, 5))).toBe(true);
      });

      it('refuses a range starting at or past the end, and any range of an empty object', async () => {
        await expect(store.get(k, { start: size, end: size + 10 })).rejects.toBeInstanceOf(RangeNotSatisfiableError);
        await expect(store.get(k, { start: size + 100, end: size + 200 })).rejects.toBeInstanceOf(RangeNotSatisfiableError);
        const empty = key('ranges/empty.bin');
        await store.put(empty, Readable.from([Buffer.alloc(0)]));
        await expect(store.get(empty, { start: 0, end: 0 })).rejects.toBeInstanceOf(RangeNotSatisfiableError);
      });

      it('refuses a malformed range', async () => {
        await expect(store.get(k, { start: 10, end: 9 })).rejects.toBeInstanceOf(RangeError);
        await expect(store.get(k, { start: -1, end: 9 })).rejects.toBeInstanceOf(RangeError);
        await expect(store.get(k, { start: 0.5, end: 9 })).rejects.toBeInstanceOf(RangeError);
      });

      it('lets a reader stop early', async () => {
        const stream = await store.get(k);
        const first = await new Promise<Buffer>((resolve, reject) => {
          stream.once('data', resolve);
          stream.once('error', reject);
        });
        stream.destroy();
        expect(first.equals(patternBytes(0, first.length))).toBe(true);
        // the store is still usable after an abandoned read
        expect((await readAll(await store.get(k, { start: 1, end: 3 }))).equals(patternBytes(1, 3))).toBe(true);
      });
    });

    it('answers a missing key: get → BlobNotFoundError, stat → null, exists → false', async () => {
      const k = key('missing/nothing-here.bin');
      const err = await store.get(k).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BlobNotFoundError);
      expect((err as BlobNotFoundError).key).toBe(k);
      await expect(store.get(k, { start: 0, end: 10 })).rejects.toBeInstanceOf(BlobNotFoundError);
      expect(await store.stat(k)).toBeNull();
      expect(await store.exists(k)).toBe(false);
    });

    describe('a body that fails midway', () => {
      it.each([
        ['early, within the first part', 1 * MiB],
        ['late, after two parts went up', 0], // computed from the part size below
      ])('rejects with the body’s own error and leaves nothing: %s', async (label, at) => {
        const failAt = at || 2 * (subject.partSizeBytes ?? 5 * MiB) + 3 * MiB;
        const k = key(`failing/${failAt}.bin`);
        const bodyError = new PermanentError('FILE_TOO_LARGE', 'over the limit for this kind');
        const err = await store.put(k, patternStream(failAt + 10 * MiB, { failAt, error: bodyError })).catch((e: unknown) => e);
        expect(err, label).toBe(bodyError);
        expect(await store.exists(k)).toBe(false);
        expect(await leftovers(k)).toEqual([]);
      });

      it('leaves an existing object at the key untouched', async () => {
        const k = key('failing/existing.bin');
        await store.put(k, Readable.from([Buffer.from('keep me')]));
        const bodyError = new Error('client went away');
        await expect(store.put(k, patternStream(8 * MiB, { failAt: 3 * MiB, error: bodyError }))).rejects.toBe(bodyError);
        expect((await readAll(await store.get(k))).toString()).toBe('keep me');
        expect(await leftovers(k)).toEqual([]);
      });

      it('on abort, rejects with the signal’s reason and leaves nothing', async () => {
        const k = key('failing/aborted.bin');
        const ac = new AbortController();
        const reason = new Error('job cancelled');
        // 6 MiB (more than one s3 part), then the body stalls; abort once the driver has begun writing
        const body = new Readable({ read() {} });
        body.push(patternBytes(0, 6 * MiB));
        const put = store.put(k, body, { signal: ac.signal });
        put.catch(() => undefined);
        if (subject.leftovers) {
          const deadline = Date.now() + 10_000;
          while ((await leftovers(k)).length === 0) {
            if (Date.now() > deadline) throw new Error('the put never started writing');
            await new Promise((r) => setTimeout(r, 10));
          }
        }
        ac.abort(reason);
        await expect(put).rejects.toBe(reason);
        expect(body.destroyed).toBe(true);
        expect(await store.exists(k)).toBe(false);
        expect(await leftovers(k)).toEqual([]);
      });

      it('rejects a body whose length differs from contentLength', async () => {
        const short = key('failing/short.bin');
        await expect(store.put(short, Readable.from([Buffer.alloc(100)]), { contentLength: 101 })).rejects.toBeInstanceOf(
          ContentLengthMismatchError,
        );
        const long = key('failing/long.bin');
        await expect(store.put(long, patternStream(6 * MiB), { contentLength: 1000 })).rejects.toBeInstanceOf(
          ContentLengthMismatchError,
        );
        expect(await store.exists(short)).toBe(false);
        expect(await store.exists(long)).toBe(false);
        expect(await leftovers(short)).toEqual([]);
        expect(await leftovers(long)).toEqual([]);
      });
    });

    it('deletes 2,500 keys in batches, absent keys included', async () => {
      const prefix = key('batch/');
      const keys = Array.from({ length: 2500 }, (_, i) => `${prefix}${String(i % 7)}/k${String(i).padStart(5, '0')}.bin`);
      const started = Date.now();
      await mapLimit(keys, 16, async (k) => {
        await store.put(k, Readable.from([Buffer.from(k)]));
      });
      const putMs = Date.now() - started;
      expect((await collect(store, prefix)).size).toBe(2500);

      const absent = Array.from({ length: 20 }, (_, i) => `${prefix}absent/${i}.bin`);
      const t = Date.now();
      await store.delete([...keys, ...absent, keys[0] as string]);
      console.info(`[${name}] 2,500 puts (16 at a time) ${putMs} ms, delete ${Date.now() - t} ms`);

      expect((await collect(store, prefix)).size).toBe(0);
      for (const k of [keys[0], keys[999], keys[1000], keys[2499]] as string[]) expect(await store.exists(k)).toBe(false);
    }, 120_000);

    it('treats deleting absent keys, and no keys, as success', async () => {
      await expect(store.delete([key('never/1.bin'), key('never/2.bin')])).resolves.toBeUndefined();
      await expect(store.delete([])).resolves.toBeUndefined();
      const k = key('twice.bin');
      await store.put(k, Readable.from([Buffer.from('x')]));
      await store.delete([k]);
      await store.delete([k]);
      expect(await store.exists(k)).toBe(false);
    });

    it('lists by prefix, as a string prefix, with sizes and dates', async () => {
      const base = key('list/');
      const objects: Record<string, number> = {
        [`${base}a/1.bin`]: 1,
        [`${base}a/2.bin`]: 22,
        [`${base}a/deeper/3.bin`]: 333,
        [`${base}ab/4.bin`]: 4,
        [`${base}b/5.bin`]: 5,
      };
      const before = Date.now() - 60_000;
      for (const [k, size] of Object.entries(objects)) await store.put(k, Readable.from([patternBytes(0, size)]));

      expect(Object.fromEntries(await collect(store, base))).toEqual(objects);
      expect([...(await collect(store, `${base}a/`)).keys()].sort()).toEqual([`${base}a/1.bin`, `${base}a/2.bin`, `${base}a/deeper/3.bin`]);
      expect([...(await collect(store, `${base}a`)).keys()].sort()).toEqual([
        `${base}a/1.bin`,
        `${base}a/2.bin`,
        `${base}a/deeper/3.bin`,
        `${base}ab/4.bin`,
      ]);
      expect([...(await collect(store, `${base}a/2`)).keys()]).toEqual([`${base}a/2.bin`]);
      expect((await collect(store, `${base}zzz/`)).size).toBe(0);
      for await (const o of store.list(`${base}b/`)) {
        expect(o.lastModified).toBeInstanceOf(Date);
        expect(o.lastModified.getTime()).toBeGreaterThan(before);
      }
    });

    it('refuses unsafe keys in every operation, before touching the backend', async () => {
      const bad = [
        '../escape.bin',
        `objects/${run}/../../escape.bin`,
        `objects/${run}/a/../b.bin`,
        '/etc/passwd',
        `objects\\${run}\\x.bin`,
        `objects/${run}/nul\u0000.bin`,
        `objects/${run}/.hidden.tmp`,
        `objects/${run}//double.bin`,
        `objects/${run}/trailing/`,
        '',
      ];
      for (const k of bad) {
        await expect(store.put(k, Readable.from([Buffer.from('x')])), JSON.stringify(k)).rejects.toBeInstanceOf(InvalidBlobKeyError);
        await expect(store.get(k), JSON.stringify(k)).rejects.toBeInstanceOf(InvalidBlobKeyError);
        await expect(store.stat(k), JSON.stringify(k)).rejects.toBeInstanceOf(InvalidBlobKeyError);
        await expect(store.exists(k), JSON.stringify(k)).rejects.toBeInstanceOf(InvalidBlobKeyError);
        await expect(store.delete([key('fine.bin'), k]), JSON.stringify(k)).rejects.toBeInstanceOf(InvalidBlobKeyError);
      }
      await expect(collect(store, '../')).rejects.toBeInstanceOf(InvalidBlobKeyError);
      // an invalid key is a caller bug, not a storage fault to retry
      const err = await store.get('../escape.bin').catch((e: unknown) => e);
      expect(err).not.toBeInstanceOf(StorageError);
    });
  });
}
