import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pipeline as pipelineCb } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  SEGMENT_SIZE,
  SealedFormatError,
  createOpenStream,
  createSealStream,
  parseMasterKeys,
  sealedSize,
  type Keyring,
  type SealContext,
} from '../../src/storage/sealed-format.js';

const TAG = 16;
const SEALED_SEGMENT = SEGMENT_SIZE + TAG;

const k1 = randomBytes(32);
const k2 = randomBytes(32);
const keyring: Keyring = { activeKeyId: 'k1', keys: new Map([['k1', k1]]) };
const ctx: SealContext = { purpose: 'media', appId: 'app_one', mediaId: 'med_one' };
/** Header size for key id "k1". */
const HEADER = sealedSize(0, 2) - TAG;

/** Splits `buf` into chunks of irregular sizes (seeded by the sizes list), so segment assembly across chunk edges is exercised. */
function* chunksOf(buf: Buffer, sizes: readonly number[] = [4096]): Generator<Buffer> {
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

async function seal(plain: Buffer, ring = keyring, c = ctx, sizes?: readonly number[]) {
  const { stream, result } = createSealStream(ring, c);
  const sink = collect(stream);
  await pipeline(Readable.from(chunksOf(plain, sizes)), stream);
  const { out, error } = await sink;
  if (error) throw error;
  return { sealed: out, result: await result };
}

function open(sealed: Buffer, ring = keyring, c = ctx, sizes: readonly number[] = [5000]) {
  const opener = createOpenStream(ring, c);
  pipelineCb(Readable.from(chunksOf(sealed, sizes)), opener, () => {});
  return collect(opener);
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe('seal and open', () => {
  for (const size of [0, 1, 65535, 65536, 65537, 3 * 65536, 1_000_000]) {
    it(`round-trips ${size} bytes`, async () => {
      const plain = randomBytes(size);
      const { sealed, result } = await seal(plain, keyring, ctx, [1, 7000, 65536, 100_003, 13]);
      expect(result).toEqual({ sha256: sha256(plain), plainBytes: size, sealedBytes: sealed.length, keyId: 'k1' });
      expect(sealed.length).toBe(sealedSize(size, 2));
      const { out, error } = await open(sealed, keyring, ctx, [3, 65552, 999, 70_000]);
      expect(error).toBeUndefined();
      expect(out.equals(plain)).toBe(true);
    });
  }

  it('writes one empty final segment for an empty plaintext', async () => {
    const { sealed } = await seal(Buffer.alloc(0));
    expect(sealed.length).toBe(HEADER + TAG);
    expect(sealed.subarray(0, 4).toString('latin1')).toBe('MFE1');
  });

  it('sealedSize counts the key id and one tag per segment', () => {
    expect(sealedSize(0, 64)).toBe(73 + 64 + 16);
    expect(sealedSize(SEGMENT_SIZE, 2)).toBe(75 + SEGMENT_SIZE + 16);
    expect(sealedSize(SEGMENT_SIZE + 1, 2)).toBe(75 + SEGMENT_SIZE + 1 + 32);
    expect(() => sealedSize(-1, 2)).toThrow(RangeError);
    expect(() => sealedSize(1, 65)).toThrow(RangeError);
  });

  it('leaves no 64-byte run of the plaintext in the sealed bytes', async () => {
    const plain = randomBytes(1_000_000);
    const { sealed } = await seal(plain);
    // Any 64-byte run of the plaintext contains a 32-byte block starting at a multiple of 32: index
    // those blocks by their first 8 bytes and look for each at every offset of the sealed bytes.
    const blocks = new Map<bigint, number[]>();
    for (let i = 0; i + 32 <= plain.length; i += 32) {
      const k = plain.readBigUInt64LE(i);
      const at = blocks.get(k);
      if (at) at.push(i);
      else blocks.set(k, [i]);
    }
    let found = -1;
    for (let j = 0; j + 32 <= sealed.length && found < 0; j++) {
      const at = blocks.get(sealed.readBigUInt64LE(j));
      if (at?.some((i) => sealed.compare(plain, i, i + 32, j, j + 32) === 0)) found = j;
    }
    expect(found).toBe(-1);

    const zeros = Buffer.alloc(1_000_000);
    const sealedZeros = (await seal(zeros)).sealed;
    expect(sealedZeros.indexOf(Buffer.alloc(64))).toBe(-1);
  });

  it('uses a fresh data key and nonce prefix per object', async () => {
    const plain = randomBytes(1000);
    const a = (await seal(plain)).sealed;
    const b = (await seal(plain)).sealed;
    expect(a.subarray(HEADER).equals(b.subarray(HEADER))).toBe(false);
  });
});

describe('tampering', () => {
  // 4 segments: three full, a short final one.
  const plain = randomBytes(3 * SEGMENT_SIZE + 1000);
  const sealedP = seal(plain).then((s) => s.sealed);

  /** Opens `damaged` expecting a SealedFormatError, and checks only whole segments before `segment` came out. */
  async function expectRejected(damaged: Buffer, segment: number, ring = keyring, c = ctx): Promise<SealedFormatError> {
    const { out, error } = await open(damaged, ring, c, [4096]);
    expect(error).toBeInstanceOf(SealedFormatError);
    expect(out.length).toBeLessThanOrEqual(segment * SEGMENT_SIZE);
    expect(out.length % SEGMENT_SIZE).toBe(0);
    expect(out.equals(plain.subarray(0, out.length))).toBe(true);
    return error as SealedFormatError;
  }

  it('rejects a flip of any header byte before any plaintext', async () => {
    const sealed = await sealedP;
    for (let i = 0; i < HEADER; i++) {
      for (const mask of [0x01, 0xff]) {
        const d = Buffer.from(sealed);
        d[i]! ^= mask;
        await expectRejected(d, 0);
      }
    }
  });

  it('rejects a flip in any segment body or tag, emitting nothing of that segment', async () => {
    const sealed = await sealedP;
    const segments = Math.ceil(plain.length / SEGMENT_SIZE);
    for (let s = 0; s < segments; s++) {
      const start = HEADER + s * SEALED_SEGMENT;
      const end = Math.min(start + SEALED_SEGMENT, sealed.length);
      const offsets = new Set([start, start + 1, start + 5000, end - TAG - 1, end - TAG, end - TAG + 7, end - 1].filter((o) => o < end));
      for (const at of offsets) {
        const d = Buffer.from(sealed);
        d[at]! ^= 0x01;
        const err = await expectRejected(d, s);
        expect(err.reason).toBe('segment-auth');
      }
    }
  });

  it('detects truncation at a segment boundary and inside a segment', async () => {
    const sealed = await sealedP;
    await expectRejected(sealed.subarray(0, HEADER + 3 * SEALED_SEGMENT), 3);
    await expectRejected(sealed.subarray(0, HEADER + 2 * SEALED_SEGMENT), 2);
    await expectRejected(sealed.subarray(0, sealed.length - 1), 3);
    await expectRejected(sealed.subarray(0, HEADER), 0);
    await expectRejected(sealed.subarray(0, HEADER - 1), 0);
    expect((await open(Buffer.alloc(0))).error).toBeInstanceOf(SealedFormatError);

    // When the plaintext is a whole number of segments the final segment is a full one.
    const exact = randomBytes(2 * SEGMENT_SIZE);
    const sealedExact = (await seal(exact)).sealed;
    expect(sealedExact.length).toBe(HEADER + 2 * SEALED_SEGMENT);
    const { out, error } = await open(sealedExact.subarray(0, HEADER + SEALED_SEGMENT));
    expect(error).toBeInstanceOf(SealedFormatError);
    expect(out.length).toBe(0);
  });

  it('detects swapped segments and appended bytes', async () => {
    const sealed = await sealedP;
    const seg = (i: number): Buffer => sealed.subarray(HEADER + i * SEALED_SEGMENT, HEADER + (i + 1) * SEALED_SEGMENT);
    const swapped = Buffer.concat([sealed.subarray(0, HEADER), seg(1), seg(0), sealed.subarray(HEADER + 2 * SEALED_SEGMENT)]);
    await expectRejected(swapped, 0);
    const swappedLater = Buffer.concat([sealed.subarray(0, HEADER), seg(0), seg(2), seg(1), sealed.subarray(HEADER + 3 * SEALED_SEGMENT)]);
    await expectRejected(swappedLater, 1);
    await expectRejected(Buffer.concat([sealed, Buffer.from([0])]), 3);
    await expectRejected(Buffer.concat([sealed, seg(0)]), 3);
  });

  it('refuses another context, an unknown key id and bad magic', async () => {
    const sealed = await sealedP;
    for (const other of [
      { ...ctx, appId: 'app_two' },
      { ...ctx, mediaId: 'med_two' },
      { ...ctx, purpose: 'staging' as const },
    ]) {
      expect((await expectRejected(sealed, 0, keyring, other)).reason).toBe('unwrap-failed');
    }
    // Same id, different key bytes: the wrap fails to open.
    const impostor: Keyring = { activeKeyId: 'k1', keys: new Map([['k1', k2]]) };
    expect((await expectRejected(sealed, 0, impostor)).reason).toBe('unwrap-failed');
    const other: Keyring = { activeKeyId: 'k2', keys: new Map([['k2', k2]]) };
    expect((await expectRejected(sealed, 0, other)).reason).toBe('unknown-key');
    expect((await expectRejected(Buffer.from('not a sealed object at all'), 0)).reason).toBe('bad-magic');
  });

  it('opens after rotation with the old key still in the keyring', async () => {
    const sealed = await sealedP;
    const rotated: Keyring = { activeKeyId: 'k2', keys: new Map([['k1', k1], ['k2', k2]]) };
    const { out, error } = await open(sealed, rotated);
    expect(error).toBeUndefined();
    expect(out.equals(plain)).toBe(true);
    const fresh = await seal(plain, rotated);
    expect(fresh.result.keyId).toBe('k2');
    expect(fresh.sealed.length).toBe(sealed.length);
    expect((await open(fresh.sealed, rotated)).out.equals(plain)).toBe(true);
  });

  it('rejects the result promise when the seal stream is destroyed', async () => {
    const { stream, result } = createSealStream(keyring, ctx);
    stream.on('error', () => {});
    stream.destroy(new Error('upstream failed'));
    await expect(result).rejects.toThrow('upstream failed');
  });
});

describe('parseMasterKeys', () => {
  const b64 = (b: Buffer): string => b.toString('base64');

  it('parses ids and keys', () => {
    const ring = parseMasterKeys(` k1:${b64(k1)} , k2:${b64(k2)}`, 'k2');
    expect(ring.activeKeyId).toBe('k2');
    expect(ring.keys.get('k1')!.equals(k1)).toBe(true);
    expect(ring.keys.get('k2')!.equals(k2)).toBe(true);
    expect(parseMasterKeys(`k1:${k1.toString('base64url')}`, 'k1').keys.get('k1')!.equals(k1)).toBe(true);
  });

  it('names the problem', () => {
    expect(() => parseMasterKeys(`k1:${b64(k1).slice(0, -4)}!!!!`, 'k1')).toThrow(/"k1" is not valid base64/);
    expect(() => parseMasterKeys(`k1:${b64(k1).replace(/.$/, '*')}`, 'k1')).toThrow(/not valid base64/);
    expect(() => parseMasterKeys(`k1:${b64(randomBytes(16))}`, 'k1')).toThrow(/"k1" is 16 bytes, expected 32/);
    expect(() => parseMasterKeys(`k1:${b64(k1)}`, 'k2')).toThrow(/active key id "k2"/);
    expect(() => parseMasterKeys('', 'k1')).toThrow(/no keys/);
    expect(() => parseMasterKeys(b64(k1), 'k1')).toThrow(/no ":"/);
    expect(() => parseMasterKeys(`k1:${b64(k1)},k1:${b64(k2)}`, 'k1')).toThrow(/appears twice/);
    expect(() => parseMasterKeys(`${'x'.repeat(65)}:${b64(k1)}`, 'k1')).toThrow(/at most 64/);
  });

  it('never puts key material in a message', () => {
    const short = b64(randomBytes(16));
    let message = '';
    try {
      parseMasterKeys(`k1:${short}`, 'k1');
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/16 bytes/);
    expect(message).not.toContain(short);
  });
});
