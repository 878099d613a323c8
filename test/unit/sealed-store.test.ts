/** Whole-object and ranged reads of sealed objects from a store: what a download and a Range request see. */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { BlobStore, ByteRange, PutResult } from '../../src/storage/blob-store.js';
import { BlobNotFoundError } from '../../src/storage/blob-store.js';
import {
  MAX_HEADER_SIZE,
  SEGMENT_SIZE,
  SealedFormatError,
  createSealStream,
  sealedSize,
  type Keyring,
  type SealContext,
} from '../../src/storage/sealed-format.js';
import { openObject, openRange } from '../../src/storage/sealed-store.js';

const TAG = 16;
const SEALED_SEGMENT = SEGMENT_SIZE + TAG;

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const keyring: Keyring = { activeKeyId: 'k1', keys: new Map([['k1', k1]]) };
const ctx: SealContext = { purpose: 'media', appId: 'app_one', mediaId: 'med_one' };
/** Header size for key id "k1". */
const HEADER = sealedSize(0, 2) - TAG;

function* chunksOf(buf: Buffer, sizes: readonly number[]): Generator<Buffer> {
  let off = 0;
  for (let i = 0; off < buf.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield buf.subarray(off, off + n);
    off += n;
  }
}

async function collect(r: Readable): Promise<{ out: Buffer; error: unknown }> {
  const parts: Buffer[] = [];
  try {
    for await (const c of r) parts.push(c as Buffer);
    return { out: Buffer.concat(parts), error: undefined };
  } catch (error) {
    return { out: Buffer.concat(parts), error };
  }
}

/** An in-memory BlobStore that serves ranges like S3 (end clamped to the size) and records what was asked. */
class MemoryStore implements BlobStore {
  readonly driver = 'fs' as const;
  readonly objects = new Map<string, Buffer>();
  requests: { range?: ByteRange; served: number }[] = [];

  async put(key: string, body: Readable): Promise<PutResult> {
    const parts: Buffer[] = [];
    for await (const c of body) parts.push(c as Buffer);
    const buf = Buffer.concat(parts);
    this.objects.set(key, buf);
    return { bytes: buf.length };
  }
  async get(key: string, range?: ByteRange): Promise<Readable> {
    const obj = this.objects.get(key);
    if (!obj) throw new BlobNotFoundError(key);
    const slice = range ? obj.subarray(range.start, range.end + 1) : obj;
    this.requests.push({ ...(range ? { range } : {}), served: slice.length });
    return Readable.from(chunksOf(slice, [10_000, 3, 65_536]));
  }
  async stat(key: string): Promise<{ size: number } | null> {
    const obj = this.objects.get(key);
    return obj ? { size: obj.length } : null;
  }
  async exists(key: string): Promise<boolean> {
    return this.objects.has(key);
  }
  async delete(keys: readonly string[]): Promise<void> {
    for (const k of keys) this.objects.delete(k);
  }
  async *list(prefix: string): AsyncIterable<{ key: string; size: number; lastModified: Date }> {
    for (const [key, v] of this.objects) if (key.startsWith(prefix)) yield { key, size: v.length, lastModified: new Date(0) };
  }
  async ping(): Promise<void> {}
  async close(): Promise<void> {}
}

describe('openRange and openObject', () => {
  const size = 5 * SEGMENT_SIZE + 1234;
  const plain = randomBytes(size);
  const exact = randomBytes(3 * SEGMENT_SIZE);
  const storeP = (async () => {
    const store = new MemoryStore();
    const { stream } = createSealStream(keyring, ctx);
    await store.put('obj', Readable.from([plain]).pipe(stream));
    const s2 = createSealStream(keyring, ctx);
    await store.put('exact', Readable.from([exact]).pipe(s2.stream));
    return store;
  })();

  async function checkRange(key: string, source: Buffer, start: number, end: number): Promise<void> {
    const store = await storeP;
    store.requests = [];
    const { out, error } = await collect(await openRange(store, key, keyring, ctx, { start, end }));
    expect(error, `${start}-${end}`).toBeUndefined();
    expect(out.equals(source.subarray(start, end + 1)), `${start}-${end}`).toBe(true);
    // One read for the header, one for the segments the range touches (plus one byte to learn whether the last is final).
    expect(store.requests).toHaveLength(2);
    const [head, body] = store.requests;
    expect(head!.range).toEqual({ start: 0, end: MAX_HEADER_SIZE - 1 });
    const first = Math.floor(start / SEGMENT_SIZE);
    const last = Math.floor(end / SEGMENT_SIZE);
    expect(body!.range).toEqual({ start: HEADER + first * SEALED_SEGMENT, end: HEADER + (last + 1) * SEALED_SEGMENT });
    expect(body!.served).toBeLessThanOrEqual((last - first + 1) * SEALED_SEGMENT + 1);
  }

  it('returns exact slices, reading only the needed segments', async () => {
    const S = SEGMENT_SIZE;
    const ranges: [number, number][] = [
      [0, 0],
      [size - 1, size - 1],
      [0, size - 1],
      [S - 1, S],
      [S - 10, 2 * S + 10],
      [S, 2 * S - 1],
      [2 * S, 2 * S],
      [5 * S, size - 1],
      [5 * S - 1, 5 * S],
      [123, 456],
    ];
    for (let i = 0; i < 30; i++) {
      const a = Math.floor(Math.random() * size);
      const b = Math.floor(Math.random() * size);
      ranges.push([Math.min(a, b), Math.max(a, b)]);
    }
    for (const [start, end] of ranges) await checkRange('obj', plain, start, end);
  });

  it('handles a final segment that is a full one', async () => {
    const n = exact.length;
    for (const [start, end] of [[n - 1, n - 1], [0, n - 1], [SEGMENT_SIZE - 1, n - 1], [2 * SEGMENT_SIZE, 2 * SEGMENT_SIZE + 5]] as const) {
      await checkRange('exact', exact, start, end);
    }
  });

  it('ignores damage outside the range and rejects damage inside it', async () => {
    const store = await storeP;
    const damaged = Buffer.from(store.objects.get('obj')!);
    damaged[HEADER + 3 * SEALED_SEGMENT + 100]! ^= 1;
    store.objects.set('bad', damaged);
    const ok = await collect(await openRange(store, 'bad', keyring, ctx, { start: 0, end: 3 * SEGMENT_SIZE - 1 }));
    expect(ok.error).toBeUndefined();
    expect(ok.out.equals(plain.subarray(0, 3 * SEGMENT_SIZE))).toBe(true);
    const bad = await collect(await openRange(store, 'bad', keyring, ctx, { start: 2 * SEGMENT_SIZE, end: 4 * SEGMENT_SIZE }));
    expect(bad.error).toBeInstanceOf(SealedFormatError);
    expect(bad.out.length).toBe(SEGMENT_SIZE);

    // Dropping the final segment makes the (now last) segment fail as final.
    store.objects.set('cut', store.objects.get('obj')!.subarray(0, HEADER + 5 * SEALED_SEGMENT));
    const cut = await collect(await openRange(store, 'cut', keyring, ctx, { start: 4 * SEGMENT_SIZE, end: size - 1 }));
    expect(cut.error).toBeInstanceOf(SealedFormatError);
  });

  it('refuses a range past the end, a bad range, and another context', async () => {
    const store = await storeP;
    const past = await collect(await openRange(store, 'obj', keyring, ctx, { start: size - 10, end: size + 10 }));
    expect(past.error).toBeInstanceOf(RangeError);
    await expect(openRange(store, 'obj', keyring, ctx, { start: 5, end: 4 })).rejects.toThrow(RangeError);
    await expect(openRange(store, 'obj', keyring, { ...ctx, mediaId: 'med_two' }, { start: 0, end: 0 })).rejects.toBeInstanceOf(SealedFormatError);
  });

  it('opens a whole object, and rejects header faults before returning', async () => {
    const store = await storeP;
    const { out, error } = await collect(await openObject(store, 'obj', keyring, ctx));
    expect(error).toBeUndefined();
    expect(out.equals(plain)).toBe(true);
    await expect(openObject(store, 'obj', keyring, { ...ctx, appId: 'app_two' })).rejects.toBeInstanceOf(SealedFormatError);
    await expect(openObject(store, 'obj', { activeKeyId: 'k9', keys: new Map([['k9', k2]]) }, ctx)).rejects.toMatchObject({ reason: 'unknown-key' });
  });
});
