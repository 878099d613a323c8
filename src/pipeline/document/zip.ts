/**
 * The zip central directory, read from bytes (pure): the structure OOXML documents live in. Only
 * what a document needs is supported — one disk, no zip64, stored or deflated entries — and
 * anything else is refused rather than half-understood.
 */
import { PermanentError } from '../../domain/errors.js';

export interface EndOfCentralDirectory {
  entryCount: number;
  centralDirectorySize: number;
  centralDirectoryOffset: number;
  /** Absolute offset of the EOCD record in the file. */
  offset: number;
}

export interface ZipEntry {
  name: string;
  flags: number;
  method: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

const EOCD_SIG = 0x06054b50;
const CDH_SIG = 0x02014b50;
const EOCD_MIN = 22;
/** The EOCD sits in the last 22 bytes plus at most a 65535-byte comment. */
export const EOCD_SEARCH_BYTES = EOCD_MIN + 0xffff;

const reject = (reason: string): never => {
  throw new PermanentError('MEDIA_REJECTED', `the document's zip structure is invalid: ${reason}`);
};

/** `tail` is the end of the file, starting at absolute offset `tailOffset`; `fileSize` the whole size. */
export function findEndOfCentralDirectory(tail: Buffer, tailOffset: number, fileSize: number): EndOfCentralDirectory {
  for (let i = tail.length - EOCD_MIN; i >= 0; i--) {
    if (tail.readUInt32LE(i) !== EOCD_SIG) continue;
    const commentLength = tail.readUInt16LE(i + 20);
    // The record must end exactly at the end of the file (a signature inside the comment does not).
    if (i + EOCD_MIN + commentLength !== tail.length) continue;
    const disk = tail.readUInt16LE(i + 4);
    const cdDisk = tail.readUInt16LE(i + 6);
    const entriesOnDisk = tail.readUInt16LE(i + 8);
    const entryCount = tail.readUInt16LE(i + 10);
    const centralDirectorySize = tail.readUInt32LE(i + 12);
    const centralDirectoryOffset = tail.readUInt32LE(i + 16);
    if (disk !== 0 || cdDisk !== 0 || entriesOnDisk !== entryCount) reject('multi-disk archives are not documents');
    if (entryCount === 0xffff || centralDirectorySize === 0xffffffff || centralDirectoryOffset === 0xffffffff) {
      reject('zip64 archives are not accepted for documents');
    }
    const offset = tailOffset + i;
    if (centralDirectoryOffset + centralDirectorySize > offset) reject('the central directory overlaps its end record');
    if (offset + EOCD_MIN + commentLength !== fileSize) reject('trailing bytes after the end record');
    return { entryCount, centralDirectorySize, centralDirectoryOffset, offset };
  }
  return reject('no end of central directory record');
}

export function parseCentralDirectory(cd: Buffer, expectedCount: number): ZipEntry[] {
  const entries: ZipEntry[] = [];
  let p = 0;
  while (p < cd.length) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CDH_SIG) reject(`bad central directory header at entry ${entries.length}`);
    const flags = cd.readUInt16LE(p + 8);
    const method = cd.readUInt16LE(p + 10);
    const crc32 = cd.readUInt32LE(p + 16);
    const compressedSize = cd.readUInt32LE(p + 20);
    const uncompressedSize = cd.readUInt32LE(p + 24);
    const nameLength = cd.readUInt16LE(p + 28);
    const extraLength = cd.readUInt16LE(p + 30);
    const commentLength = cd.readUInt16LE(p + 32);
    const localHeaderOffset = cd.readUInt32LE(p + 42);
    const end = p + 46 + nameLength + extraLength + commentLength;
    if (end > cd.length) reject('a central directory entry runs past its end');
    // Bit 11: UTF-8 name; otherwise CP437, of which OOXML part names use only the ASCII subset.
    const nameBytes = cd.subarray(p + 46, p + 46 + nameLength);
    const name = flags & 0x800 ? nameBytes.toString('utf8') : nameBytes.toString('latin1');
    if (compressedSize === 0xffffffff || uncompressedSize === 0xffffffff || localHeaderOffset === 0xffffffff) {
      reject('zip64 entries are not accepted for documents');
    }
    entries.push({ name, flags, method, crc32, compressedSize, uncompressedSize, localHeaderOffset });
    p = end;
  }
  if (entries.length !== expectedCount) reject(`the end record announces ${expectedCount} entries, the directory has ${entries.length}`);
  return entries;
}
