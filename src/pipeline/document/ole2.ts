/**
 * Legacy Office (DOC, XLS, PPT) is an OLE2 compound file; its 512-byte header is checked (pure).
 * Its streams are not walked: the format is stored as sent, and the header is what tells a
 * compound file from a file that only starts with the magic.
 */
import { PermanentError } from '../../domain/errors.js';

const MAGIC = Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]);
export const OLE2_HEADER_BYTES = 512;

export function checkOle2Header(head: Buffer, fileSize: number): void {
  const reject = (reason: string): never => {
    throw new PermanentError('MEDIA_REJECTED', `the document is not a valid OLE2 compound file: ${reason}`);
  };
  if (head.length < OLE2_HEADER_BYTES || fileSize < OLE2_HEADER_BYTES) reject('shorter than its header');
  if (!head.subarray(0, 8).equals(MAGIC)) reject('bad signature');
  const major = head.readUInt16LE(26);
  const byteOrder = head.readUInt16LE(28);
  const sectorShift = head.readUInt16LE(30);
  const miniSectorShift = head.readUInt16LE(32);
  if (byteOrder !== 0xfffe) reject('bad byte order mark');
  if (!((major === 3 && sectorShift === 9) || (major === 4 && sectorShift === 12))) reject(`version ${major} with ${1 << Math.min(sectorShift, 30)}-byte sectors`);
  if (miniSectorShift !== 6) reject('bad mini sector size');
  const sectorSize = 1 << sectorShift;
  const fatSectors = head.readUInt32LE(44);
  // A compound file holds at least its FAT and one directory sector after the header sector.
  if (fatSectors === 0 || fileSize < sectorSize * (1 + fatSectors + 1)) {
    reject('too short for its allocation table');
  }
}
