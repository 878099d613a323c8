/**
 * Structural checks of a PDF (pure): the header readers look for, the trailer they start from,
 * and a best-effort page count. No parsing of objects: a document is stored as sent, and these
 * checks only refuse what no reader would open (a truncated upload, a renamed file).
 */
import { PermanentError } from '../../domain/errors.js';

/** Readers accept the header anywhere in the first 1024 bytes (ISO 32000 implementation note). */
export const PDF_HEAD_BYTES = 1024;
/** …and look for the trailer in the last 1024 bytes. */
export const PDF_TAIL_BYTES = 1024;

export function checkPdfHead(head: Buffer): void {
  const at = head.subarray(0, PDF_HEAD_BYTES).indexOf('%PDF-');
  if (at === -1 || !/^%PDF-\d\.\d/.test(head.subarray(at, at + 8).toString('latin1'))) {
    throw new PermanentError('MEDIA_REJECTED', 'the PDF has no %PDF- header in its first 1024 bytes');
  }
}

/** `startxref`, then `%%EOF` last: a file cut anywhere (an interrupted upload) loses them. */
export function checkPdfTail(tail: Buffer): void {
  const t = tail.subarray(Math.max(0, tail.length - PDF_TAIL_BYTES)).toString('latin1');
  const eof = t.lastIndexOf('%%EOF');
  if (eof === -1) throw new PermanentError('MEDIA_REJECTED', 'the PDF has no %%EOF trailer in its last 1024 bytes (truncated?)');
  if (t.slice(eof + 5).trim().replace(/\0/g, '') !== '') {
    // Some writers pad after %%EOF with whitespace or NULs; anything else means it was not the end.
    throw new PermanentError('MEDIA_REJECTED', 'the PDF has data after its last %%EOF');
  }
  if (t.lastIndexOf('startxref', eof) === -1) throw new PermanentError('MEDIA_REJECTED', 'the PDF has no startxref before its %%EOF');
}

export interface PdfPageCounter {
  push(chunk: Buffer): void;
  /** The page count, or null when it cannot be told without decompressing object streams. */
  result(): number | null;
}

const OVERLAP = 256;
const PAGES_COUNT = /\/Type\s*\/Pages\b[^>]*?\/Count\s+(\d+)|\/Count\s+(\d+)[^>]*?\/Type\s*\/Pages\b/g;
const PAGE = /\/Type\s*\/Page(?![A-Za-z])/g;

/**
 * Streams the file once. The page tree root's `/Count` is the page count, and it is the largest
 * `/Count` of any `/Type /Pages` node; without one (object streams hide them), `/Type /Page`
 * objects are counted. A match is counted only when it ends in the new bytes, so the overlap kept
 * between chunks never counts one twice.
 */
export function createPdfPageCounter(): PdfPageCounter {
  let carry = '';
  let maxCount: number | null = null;
  let pages = 0;
  let hasObjectStreams = false;
  return {
    push(chunk: Buffer): void {
      const text = carry + chunk.toString('latin1');
      const fresh = carry.length;
      if (!hasObjectStreams && /\/Type\s*\/ObjStm/.test(text)) hasObjectStreams = true;
      for (const m of text.matchAll(PAGES_COUNT)) {
        if (m.index + m[0].length <= fresh) continue;
        const n = Number(m[1] ?? m[2]);
        if (Number.isSafeInteger(n)) maxCount = Math.max(maxCount ?? 0, n);
      }
      for (const m of text.matchAll(PAGE)) {
        if (m.index + m[0].length > fresh) pages += 1;
      }
      carry = text.slice(-OVERLAP);
    },
    result(): number | null {
      if (maxCount !== null && maxCount > 0) return maxCount;
      // Page objects inside compressed object streams are invisible: a count would be a guess.
      if (hasObjectStreams) return null;
      return pages > 0 ? pages : null;
    },
  };
}
