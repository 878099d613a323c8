import { open, stat } from 'node:fs/promises';
import { fileTypeFromBuffer, fileTypeFromFile } from 'file-type';
import { canonicalMime } from '../domain/policies.js';
import { readRange } from './document/file-range.js';
import { EOCD_SEARCH_BYTES, findEndOfCentralDirectory, parseCentralDirectory } from './document/zip.js';

/** How many leading bytes an upload is judged on before anything is kept; file-type needs ~4 KiB, OOXML detection more. */
export const SNIFF_BYTES = 64 * 1024;

export interface Sniffed {
  /** Canonical MIME essence (`canonicalMime`), or null when the bytes match no known format. */
  mime: string | null;
  ext: string | null;
  /** The detector's own answer (e.g. `audio/ogg; codecs=opus`), kept for the media row. */
  raw: string | null;
  /**
   * Only a header was seen: the part that proves the format lies past the first bytes (a TIFF's
   * directory, an OOXML zip's telltale entries). The worker's whole-file sniff decides.
   */
  provisional?: true;
}

/**
 * Decides the type from bytes only, never from a name or a declared type. `complete` says whether
 * `head` is the whole content: a partial head may show a format's header without its proof, and a
 * UTF-8 sequence cut at its end is not an error.
 */
export async function sniffBuffer(head: Uint8Array, complete: boolean): Promise<Sniffed> {
  const ft = await fileTypeFromBuffer(head);
  if (ft) {
    const sniffed: Sniffed = { mime: canonicalMime(ft.mime), ext: ft.ext, raw: ft.mime };
    return !complete && ft.mime === 'application/zip' ? { ...sniffed, provisional: true } : sniffed;
  }
  // libtiff, libvips and ffmpeg write the pixels first and the image directory after them, where
  // file-type cannot follow a partial head: the header alone stands for TIFF until the whole file is seen.
  if (!complete && isTiffHeader(head)) return { mime: 'image/tiff', ext: 'tif', raw: 'image/tiff', provisional: true };
  if (head.length > 0 && looksLikeText(head, complete)) return { mime: 'text/plain', ext: 'txt', raw: 'text/plain' };
  return { mime: null, ext: null, raw: null };
}

/**
 * The worker's sniff, on the whole file: file-type reads wherever the format needs (a TIFF's
 * directory at the end, an MP4 whose `moov` follows the media data, a zip's entries past the first
 * ones), and a zip it cannot place is judged by its central directory.
 */
export async function sniffFile(path: string): Promise<Sniffed> {
  const ft = await fileTypeFromFile(path);
  if (ft) {
    if (ft.mime === 'application/zip') {
      const ooxml = await ooxmlFromCentralDirectory(path).catch(() => null);
      if (ooxml) return { mime: ooxml, ext: OOXML_EXT[ooxml]!, raw: ooxml };
    }
    return { mime: canonicalMime(ft.mime), ext: ft.ext, raw: ft.mime };
  }
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const len = Math.min(size, SNIFF_BYTES);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, 0);
    if (len > 0 && looksLikeText(buf, len === size)) return { mime: 'text/plain', ext: 'txt', raw: 'text/plain' };
    return { mime: null, ext: null, raw: null };
  } finally {
    await fh.close();
  }
}

/**
 * The worker's sniff of a whole input held in memory: the same answers as `sniffFile` on a file of
 * these bytes, without one.
 */
export async function sniffBytes(bytes: Buffer): Promise<Sniffed> {
  const ft = await fileTypeFromBuffer(bytes);
  if (ft) {
    if (ft.mime === 'application/zip') {
      const ooxml = ooxmlFromCentralDirectoryBytes(bytes);
      if (ooxml) return { mime: ooxml, ext: OOXML_EXT[ooxml]!, raw: ooxml };
    }
    return { mime: canonicalMime(ft.mime), ext: ft.ext, raw: ft.mime };
  }
  const len = Math.min(bytes.length, SNIFF_BYTES);
  if (len > 0 && looksLikeText(bytes.subarray(0, len), len === bytes.length)) return { mime: 'text/plain', ext: 'txt', raw: 'text/plain' };
  return { mime: null, ext: null, raw: null };
}

/** `II*\0` or `MM\0*`: a classic TIFF header (BigTIFF file-type recognises from the header alone). */
export function isTiffHeader(head: Uint8Array): boolean {
  if (head.length < 8) return false;
  const le = head[0] === 0x49 && head[1] === 0x49 && head[2] === 0x2a && head[3] === 0x00;
  const be = head[0] === 0x4d && head[1] === 0x4d && head[2] === 0x00 && head[3] === 0x2a;
  return le || be;
}

const OOXML_MAIN_PARTS: readonly (readonly [string, string])[] = [
  ['word/document.xml', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'],
  ['xl/workbook.xml', 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'],
  ['ppt/presentation.xml', 'application/vnd.openxmlformats-officedocument.presentationml.presentation'],
];
const OOXML_EXT: Readonly<Record<string, string>> = {
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'pptx',
};

/** The OOXML flavour a zip's entry names show (its content types and one main part), or null. */
export function ooxmlFromEntryNames(names: Iterable<string>): string | null {
  const set = new Set(names);
  if (!set.has('[Content_Types].xml')) return null;
  return OOXML_MAIN_PARTS.find(([part]) => set.has(part))?.[1] ?? null;
}

/** Past this a central directory is not a document's (10,000 entries of ordinary names fit well within). */
const MAX_CENTRAL_DIRECTORY_BYTES = 4 * 1024 * 1024;

/**
 * Streaming zip writers put each entry's sizes after its data, so a scan of entries from the start
 * cannot skip a large first entry; the central directory at the end lists every name.
 */
async function ooxmlFromCentralDirectory(path: string): Promise<string | null> {
  const { size } = await stat(path);
  const tailStart = Math.max(0, size - EOCD_SEARCH_BYTES);
  const eocd = findEndOfCentralDirectory(await readRange(path, tailStart, size - tailStart), tailStart, size);
  if (eocd.centralDirectorySize > MAX_CENTRAL_DIRECTORY_BYTES) return null;
  const cd = await readRange(path, eocd.centralDirectoryOffset, eocd.centralDirectorySize);
  if (cd.length !== eocd.centralDirectorySize) return null;
  return ooxmlFromEntryNames(parseCentralDirectory(cd, eocd.entryCount).map((e) => e.name));
}

function ooxmlFromCentralDirectoryBytes(bytes: Buffer): string | null {
  try {
    const size = bytes.length;
    const tailStart = Math.max(0, size - EOCD_SEARCH_BYTES);
    const eocd = findEndOfCentralDirectory(bytes.subarray(tailStart), tailStart, size);
    if (eocd.centralDirectorySize > MAX_CENTRAL_DIRECTORY_BYTES) return null;
    const cd = bytes.subarray(eocd.centralDirectoryOffset, eocd.centralDirectoryOffset + eocd.centralDirectorySize);
    if (cd.length !== eocd.centralDirectorySize) return null;
    return ooxmlFromEntryNames(parseCentralDirectory(cd, eocd.entryCount).map((e) => e.name));
  } catch {
    return null;
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
