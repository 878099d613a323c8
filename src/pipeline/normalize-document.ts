import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { PermanentError } from '../domain/errors.js';
import { canonicalMime } from '../domain/policies.js';
import { readRange } from './document/file-range.js';
import { checkOle2Header, OLE2_HEADER_BYTES } from './document/ole2.js';
import { checkOoxmlParts, checkZipEntries, DOCUMENT_ZIP_LIMITS } from './document/ooxml.js';
import { checkPdfHead, checkPdfTail, createPdfPageCounter, PDF_HEAD_BYTES, PDF_TAIL_BYTES } from './document/pdf.js';
import { createTextValidator } from './document/text.js';
import { verifyZipEntries } from './document/verify-zip-entries.js';
import { EOCD_SEARCH_BYTES, findEndOfCentralDirectory, parseCentralDirectory } from './document/zip.js';
import { createProgressThrottle } from './ffmpeg/progress.js';
import type { NormalizeInput, NormalizeOutput } from './normalize-types.js';

const OLE2 = new Set(['application/msword', 'application/vnd.ms-excel', 'application/vnd.ms-powerpoint', 'application/x-cfb']);
const OOXML = new Set([
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
]);

/**
 * Documents are stored as sent, after the structural checks of their format: PDF header and
 * trailer (page count best-effort), OOXML zip structure and bomb limits with every entry inflated
 * against its declaration, OLE2 header, UTF-8 text. Each check streams or reads head and tail only.
 */
export async function normalizeDocument(input: NormalizeInput): Promise<NormalizeOutput> {
  const mime = canonicalMime(input.sniffedMime);
  const size = (await stat(input.inputPath)).size;
  let pages: number | null = null;

  if (mime === 'application/pdf') {
    checkPdfHead(await readRange(input.inputPath, 0, PDF_HEAD_BYTES));
    checkPdfTail(await readRange(input.inputPath, size - PDF_TAIL_BYTES, PDF_TAIL_BYTES));
    const counter = createPdfPageCounter();
    for await (const chunk of createReadStream(input.inputPath, { highWaterMark: 256 * 1024 })) {
      input.signal?.throwIfAborted();
      counter.push(chunk as Buffer);
    }
    pages = counter.result();
  } else if (OOXML.has(mime)) {
    const tailStart = Math.max(0, size - EOCD_SEARCH_BYTES);
    const eocd = findEndOfCentralDirectory(await readRange(input.inputPath, tailStart, size - tailStart), tailStart, size);
    const cd = await readRange(input.inputPath, eocd.centralDirectoryOffset, eocd.centralDirectorySize);
    if (cd.length !== eocd.centralDirectorySize) throw new PermanentError('MEDIA_REJECTED', "the document's zip central directory is truncated");
    const entries = parseCentralDirectory(cd, eocd.entryCount);
    checkZipEntries(entries, DOCUMENT_ZIP_LIMITS);
    checkOoxmlParts(entries, mime);
    await verifyZipEntries(input.inputPath, entries, eocd.centralDirectoryOffset, input.signal);
  } else if (OLE2.has(mime)) {
    checkOle2Header(await readRange(input.inputPath, 0, OLE2_HEADER_BYTES), size);
  } else if (mime === 'text/plain') {
    const validator = createTextValidator();
    for await (const chunk of createReadStream(input.inputPath, { highWaterMark: 256 * 1024 })) {
      input.signal?.throwIfAborted();
      validator.push(chunk as Buffer);
    }
    validator.end();
  } else {
    throw new PermanentError('UNSUPPORTED_MEDIA_TYPE', `${mime} is not a document type this service accepts`);
  }

  createProgressThrottle(input.onProgress)(100);
  input.log.info({ transform: 'kept', mime, bytes: size, pages }, 'document checked');
  return {
    outputPath: input.inputPath,
    mimeType: mime,
    transform: 'kept',
    width: null,
    height: null,
    durationMs: null,
    pages,
    waveform: null,
    variants: [],
  };
}
