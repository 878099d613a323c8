import { open } from 'node:fs/promises';
import { fileTypeFromBuffer } from 'file-type';
import { canonicalMime } from '../domain/policies.js';

/** How many leading bytes the sniffers look at; file-type needs ~4 KiB, OOXML detection more. */
export const SNIFF_BYTES = 64 * 1024;

export interface Sniffed {
  /** Canonical MIME essence (`canonicalMime`), or null when the bytes match no known format. */
  mime: string | null;
  ext: string | null;
  /** The detector's own answer (e.g. `audio/ogg; codecs=opus`), kept for the media row. */
  raw: string | null;
}

/**
 * Decides the type from bytes only, never from a name or a declared type. `complete` says whether
 * `head` is the whole content, which matters for the text check: a UTF-8 sequence cut at the end
 * of a partial head is not an error.
 */
export async function sniffBuffer(head: Uint8Array, complete: boolean): Promise<Sniffed> {
  const ft = await fileTypeFromBuffer(head);
  if (ft) return { mime: canonicalMime(ft.mime), ext: ft.ext, raw: ft.mime };
  if (head.length > 0 && looksLikeText(head, complete)) return { mime: 'text/plain', ext: 'txt', raw: 'text/plain' };
  return { mime: null, ext: null, raw: null };
}

export async function sniffFile(path: string): Promise<Sniffed> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const len = Math.min(size, SNIFF_BYTES);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, 0);
    return await sniffBuffer(buf, len === size);
  } finally {
    await fh.close();
  }
}

/** Valid UTF-8, no NUL and few control characters: what a `.txt` document may hold. */
export function looksLikeText(buf: Uint8Array, complete: boolean): boolean {
  let end = buf.length;
  if (!complete) {
    // Drop a multi-byte sequence cut by the head's end (at most 3 bytes).
    let i = end - 1;
    let back = 0;
    while (i >= 0 && back < 3 && (buf[i]! & 0xc0) === 0x80) {
      i--;
      back++;
    }
    if (i >= 0 && buf[i]! >= 0xc0) end = i;
  }
  const slice = buf.subarray(0, end);
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(slice);
  } catch {
    return false;
  }
  let control = 0;
  for (const b of slice) {
    if (b === 0) return false;
    if (b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c) control++;
  }
  return control <= slice.length / 100;
}
