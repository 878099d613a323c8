/**
 * OOXML (DOCX, XLSX, PPTX) checks on the zip's entry list (pure): the parts a reader needs, and
 * the limits against zip bombs, applied to the sizes the directory declares. The declared sizes
 * are then held to the truth by inflating each entry (verify-zip-entries.ts).
 */
import { PermanentError } from '../../domain/errors.js';
import type { ZipEntry } from './zip.js';

export interface ZipLimits {
  maxEntries: number;
  /** All entries inflated together: what a reader (or an indexer, a previewer) would allocate. */
  maxTotalUncompressedBytes: number;
  /** Per entry. Real XML compresses 5–30x; a bomb compresses 1000x. */
  maxRatio: number;
  /**
   * Entries smaller than this are exempt from the ratio: a 20 KB run of identical table cells may
   * compress 200x and still cannot hurt anyone.
   */
  ratioExemptBytes: number;
}

export const DOCUMENT_ZIP_LIMITS: ZipLimits = {
  maxEntries: 10_000,
  maxTotalUncompressedBytes: 100_000_000,
  maxRatio: 100,
  ratioExemptBytes: 1_000_000,
};

const OOXML_MAIN_PART: Readonly<Record<string, string>> = {
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'word/document.xml',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xl/workbook.xml',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'ppt/presentation.xml',
};

const rejectBomb = (reason: string): never => {
  throw new PermanentError('MEDIA_REJECTED', `the document looks like a zip bomb: ${reason}`);
};
const rejectStructure = (reason: string): never => {
  throw new PermanentError('MEDIA_REJECTED', `the document's zip structure is invalid: ${reason}`);
};

/** Limits and sanity of any document zip. */
export function checkZipEntries(entries: readonly ZipEntry[], limits: ZipLimits): void {
  if (entries.length === 0) rejectStructure('it has no entries');
  if (entries.length > limits.maxEntries) rejectBomb(`${entries.length} entries, over ${limits.maxEntries}`);
  const names = new Set<string>();
  let total = 0;
  for (const e of entries) {
    // Two entries of one name read differently by different readers: a known smuggling trick.
    if (names.has(e.name)) rejectStructure(`duplicate entry ${JSON.stringify(e.name)}`);
    names.add(e.name);
    if (e.name.startsWith('/') || e.name.includes('\\') || e.name.split('/').includes('..') || e.name.includes('\0')) {
      rejectStructure(`unsafe entry name ${JSON.stringify(e.name)}`);
    }
    if (e.flags & 0x1) rejectStructure(`entry ${JSON.stringify(e.name)} is encrypted`);
    if (e.method !== 0 && e.method !== 8) rejectStructure(`entry ${JSON.stringify(e.name)} uses compression method ${e.method}`);
    if (e.method === 0 && e.compressedSize !== e.uncompressedSize) rejectStructure(`stored entry ${JSON.stringify(e.name)} has two sizes`);
    total += e.uncompressedSize;
    if (total > limits.maxTotalUncompressedBytes) {
      rejectBomb(`it inflates to more than ${limits.maxTotalUncompressedBytes / 1e6} MB`);
    }
    if (e.uncompressedSize > limits.ratioExemptBytes) {
      const ratio = e.uncompressedSize / Math.max(1, e.compressedSize);
      if (ratio > limits.maxRatio) rejectBomb(`entry ${JSON.stringify(e.name)} expands ${Math.round(ratio)}:1, over ${limits.maxRatio}:1`);
    }
  }
}

/** The parts every OOXML reader opens first, for the sniffed flavour. */
export function checkOoxmlParts(entries: readonly ZipEntry[], mime: string): void {
  const main = OOXML_MAIN_PART[mime];
  if (!main) rejectStructure(`${mime} is not an OOXML type`);
  const names = new Set(entries.map((e) => e.name));
  for (const required of ['[Content_Types].xml', '_rels/.rels', main!]) {
    if (!names.has(required)) {
      throw new PermanentError('MEDIA_REJECTED', `the document is missing its ${required} part`);
    }
  }
}
