/**
 * Sealing one segment at a time (resumable uploads, issue 16): an object built from
 * newSealedHeader + sealSegment, maybe across processes, is the same format createSealStream writes,
 * and opens to the same plaintext. Pure: no I/O.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  SEGMENT_SIZE,
  createOpenStream,
  newSealedHeader,
  openSealedHeader,
  sealSegment,
  sealedSize,
  segmentCount,
  type Keyring,
  type SealContext,
} from '../../src/storage/sealed-format.js';

const keyring: Keyring = { activeKeyId: 'k1', keys: new Map([['k1', randomBytes(32)]]) };
const ctx: SealContext = { purpose: 'staging', appId: 'app_one', mediaId: 'med_one' };

function sealBySegments(plain: Buffer, header: Buffer): Buffer {
  const total = segmentCount(plain.length);
  const parts = [header];
  // Each segment with a header opened afresh, as another API process would.
  for (let i = 0; i < total; i++) {
    const h = openSealedHeader(header, keyring, ctx);
    parts.push(sealSegment(h, i, i === total - 1, plain.subarray(i * SEGMENT_SIZE, (i + 1) * SEGMENT_SIZE)));
    h.dataKey.fill(0);
  }
  return Buffer.concat(parts);
}

async function open(sealed: Buffer, c: SealContext = ctx): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of Readable.from([sealed]).pipe(createOpenStream(keyring, c))) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

describe('sealing segment by segment', () => {
  it.each([1, SEGMENT_SIZE - 1, SEGMENT_SIZE, SEGMENT_SIZE + 1, 3 * SEGMENT_SIZE, 3 * SEGMENT_SIZE + 12345])('round-trips %i bytes with the size sealedSize says', async (n) => {
    const plain = randomBytes(n);
    const header = newSealedHeader(keyring, ctx);
    const sealed = sealBySegments(plain, header);
    expect(sealed.length).toBe(sealedSize(n, 2));
    expect((await open(sealed)).equals(plain)).toBe(true);
  });

  it('binds the object to its context: another media cannot open it', async () => {
    const sealed = sealBySegments(randomBytes(1000), newSealedHeader(keyring, ctx));
    await expect(open(sealed, { ...ctx, mediaId: 'med_two' })).rejects.toThrow(/unwrap/);
  });

  it('detects a missing last segment and a non-final segment sealed as final', async () => {
    const plain = randomBytes(2 * SEGMENT_SIZE + 10);
    const header = newSealedHeader(keyring, ctx);
    const sealed = sealBySegments(plain, header);
    await expect(open(sealed.subarray(0, header.length + 2 * (SEGMENT_SIZE + 16)))).rejects.toThrow(/authentication/);
    const h = openSealedHeader(header, keyring, ctx);
    const wrongFinal = Buffer.concat([header, sealSegment(h, 0, true, plain.subarray(0, SEGMENT_SIZE)), sealSegment(h, 1, true, plain.subarray(SEGMENT_SIZE, 2 * SEGMENT_SIZE))]);
    await expect(open(wrongFinal)).rejects.toThrow(/authentication/);
  });

  it('refuses a short segment that is not the last', () => {
    const h = openSealedHeader(newSealedHeader(keyring, ctx), keyring, ctx);
    expect(() => sealSegment(h, 0, false, Buffer.alloc(10))).toThrow(RangeError);
    expect(() => sealSegment(h, 0, true, Buffer.alloc(SEGMENT_SIZE + 1))).toThrow(RangeError);
  });
});
