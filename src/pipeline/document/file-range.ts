import { open } from 'node:fs/promises';

/** Reads `length` bytes at `position` (fewer at the end of the file): a document's head or tail without the rest. */
export async function readRange(path: string, position: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(Math.max(0, length));
    const { bytesRead } = await fh.read(buf, 0, buf.length, Math.max(0, position));
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}
