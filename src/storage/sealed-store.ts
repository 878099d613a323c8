/**
 * Reading sealed objects out of a BlobStore. The format itself (sealed-format.ts) knows nothing of
 * stores; this is where a whole-object or ranged read meets it.
 */
import { pipeline, type Readable } from 'node:stream';
import type { BlobStore, ByteRange } from './blob-store.js';
import {
  MAX_HEADER_SIZE,
  SealedFormatError,
  createOpenStream,
  createRangeOpenStream,
  openSealedHeader,
  sealedRangeOf,
  segmentSpan,
  type Keyring,
  type SealContext,
  type SealedHeader,
} from './sealed-format.js';

/** Opens a whole object from the store. Header faults (wrong key, wrong context, bad magic) reject here, before any byte. */
export async function openObject(store: BlobStore, key: string, keyring: Keyring, ctx: SealContext): Promise<Readable> {
  const opener = createOpenStream(keyring, ctx);
  const body = await store.get(key);
  const headerRead = new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      opener.off('header', onHeader).off('error', done).off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onHeader = (): void => done();
    const onClose = (): void => done(opener.errored ?? new SealedFormatError('object closed before its header', 'truncated'));
    opener.once('header', onHeader).once('error', done).once('close', onClose);
  });
  // Errors reach the caller through `opener`, which pipeline destroys with them.
  pipeline(body, opener, () => {});
  await headerRead;
  return opener;
}

/**
 * Opens [range.start, range.end] (inclusive, plaintext offsets) reading only the header and the
 * needed segments. The range must lie within the object: callers clamp it with the size they know.
 */
export async function openRange(
  store: BlobStore,
  key: string,
  keyring: Keyring,
  ctx: SealContext,
  range: ByteRange,
): Promise<Readable> {
  const span = segmentSpan(range);
  const header = await readHeader(store, key, keyring, ctx);
  let body: Readable;
  try {
    body = await store.get(key, sealedRangeOf(span, header.headerSize));
  } catch (err) {
    header.dataKey.fill(0);
    throw err;
  }
  const opener = createRangeOpenStream(header, span);
  pipeline(body, opener, () => {});
  return opener;
}

async function readHeader(store: BlobStore, key: string, keyring: Keyring, ctx: SealContext): Promise<SealedHeader> {
  const body = await store.get(key, { start: 0, end: MAX_HEADER_SIZE - 1 });
  const parts: Buffer[] = [];
  let got = 0;
  try {
    for await (const chunk of body) {
      const b = chunk as Buffer;
      parts.push(b);
      got += b.length;
      if (got >= MAX_HEADER_SIZE) break;
    }
  } finally {
    body.destroy();
  }
  return openSealedHeader(Buffer.concat(parts, got), keyring, ctx);
}
