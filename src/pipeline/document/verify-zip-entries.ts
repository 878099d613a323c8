import { createReadStream } from 'node:fs';
import { crc32, createInflateRaw } from 'node:zlib';
import { PermanentError } from '../../domain/errors.js';
import { readRange } from './file-range.js';
import type { ZipEntry } from './zip.js';

const LOCAL_SIG = 0x04034b50;

const reject = (reason: string): never => {
  throw new PermanentError('MEDIA_REJECTED', `the document's zip structure is invalid: ${reason}`);
};

/**
 * Holds the central directory to the truth: every entry is inflated as a stream and must produce
 * exactly its declared size and CRC. A bomb that declares small sizes is stopped as soon as it
 * inflates one byte past its declaration, so the work is bounded by the declared total, which the
 * OOXML limits already bounded. Memory is a zlib window per entry.
 */
export async function verifyZipEntries(path: string, entries: readonly ZipEntry[], centralDirectoryOffset: number, signal?: AbortSignal): Promise<void> {
  for (const e of entries) {
    signal?.throwIfAborted();
    const header = await readRange(path, e.localHeaderOffset, 30);
    if (header.length < 30 || header.readUInt32LE(0) !== LOCAL_SIG) reject(`entry ${JSON.stringify(e.name)} has no local header`);
    if (header.readUInt16LE(8) !== e.method) reject(`entry ${JSON.stringify(e.name)} has two compression methods`);
    const dataStart = e.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
    const dataEnd = dataStart + e.compressedSize;
    if (dataEnd > centralDirectoryOffset) reject(`entry ${JSON.stringify(e.name)} runs into the central directory`);
    await inflateEntry(path, e, dataStart, signal);
  }
}

async function inflateEntry(path: string, e: ZipEntry, dataStart: number, signal?: AbortSignal): Promise<void> {
  const raw = createReadStream(path, e.compressedSize > 0 ? { start: dataStart, end: dataStart + e.compressedSize - 1 } : { start: dataStart, end: dataStart - 1 });
  let produced = 0;
  let crc = 0;
  const consume = (chunk: Buffer): void => {
    produced += chunk.length;
    if (produced > e.uncompressedSize) reject(`entry ${JSON.stringify(e.name)} inflates past its declared ${e.uncompressedSize} bytes`);
    crc = crc32(chunk, crc);
  };
  if (e.compressedSize === 0) {
    raw.destroy();
  } else if (e.method === 0) {
    for await (const chunk of raw) {
      signal?.throwIfAborted();
      consume(chunk as Buffer);
    }
  } else {
    const inflate = createInflateRaw();
    raw.on('error', (err) => inflate.destroy(err));
    raw.pipe(inflate);
    try {
      for await (const chunk of inflate) {
        signal?.throwIfAborted();
        consume(chunk as Buffer);
      }
    } catch (err) {
      raw.destroy();
      inflate.destroy();
      if (err instanceof PermanentError || (err instanceof Error && err.name === 'AbortError')) throw err;
      reject(`entry ${JSON.stringify(e.name)} does not inflate (${err instanceof Error ? err.message : String(err)})`);
    }
  }
  if (produced !== e.uncompressedSize) reject(`entry ${JSON.stringify(e.name)} inflates to ${produced} bytes, not its declared ${e.uncompressedSize}`);
  if ((crc >>> 0) !== e.crc32) reject(`entry ${JSON.stringify(e.name)} fails its CRC`);
}
