import { describe, expect, it } from 'vitest';
import { DOCUMENT_ZIP_LIMITS, checkOoxmlParts, checkZipEntries } from '../../src/pipeline/document/ooxml.js';
import { findEndOfCentralDirectory, parseCentralDirectory, type ZipEntry } from '../../src/pipeline/document/zip.js';
import { docxEntries } from '../fixtures/generate.js';
import { buildZip } from '../fixtures/zip-writer.js';

const DOCX = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';
const XLSX = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

function entriesOf(zip: Buffer): ZipEntry[] {
  const eocd = findEndOfCentralDirectory(zip, 0, zip.length);
  return parseCentralDirectory(zip.subarray(eocd.centralDirectoryOffset, eocd.centralDirectoryOffset + eocd.centralDirectorySize), eocd.entryCount);
}

describe('zip central directory', () => {
  it('reads names, methods, sizes and offsets', () => {
    const zip = buildZip([{ name: 'a.txt', data: Buffer.from('hello'), method: 0 }, { name: 'dir/b.xml', data: Buffer.alloc(1000, 0x61) }]);
    const entries = entriesOf(zip);
    expect(entries.map((e) => [e.name, e.method, e.compressedSize, e.uncompressedSize, e.localHeaderOffset])).toEqual([
      ['a.txt', 0, 5, 5, 0],
      ['dir/b.xml', 8, entries[1]!.compressedSize, 1000, 40],
    ]);
    expect(entries[1]!.compressedSize).toBeLessThan(50);
  });
  it('finds the end record behind a comment, at its absolute offset', () => {
    const zip = buildZip(docxEntries());
    const withComment = Buffer.concat([zip.subarray(0, zip.length - 2), Buffer.from([5, 0]), Buffer.from('hello')]);
    const tailStart = 10;
    const eocd = findEndOfCentralDirectory(withComment.subarray(tailStart), tailStart, withComment.length);
    expect(eocd.entryCount).toBe(3);
    expect(eocd.offset).toBe(zip.length - 22);
  });
  it('refuses no end record, trailing bytes, zip64, a count mismatch', () => {
    expect(() => findEndOfCentralDirectory(Buffer.from('not a zip at all, just some text here'), 0, 37)).toThrow(/no end of central directory/);
    const zip = buildZip(docxEntries());
    expect(() => findEndOfCentralDirectory(zip, 0, zip.length + 5)).toThrow(/trailing bytes/);
    const z64 = Buffer.from(zip);
    z64.writeUInt32LE(0xffffffff, z64.length - 22 + 16);
    expect(() => findEndOfCentralDirectory(z64, 0, z64.length)).toThrow(/zip64/);
    const eocd = findEndOfCentralDirectory(zip, 0, zip.length);
    const cd = zip.subarray(eocd.centralDirectoryOffset, eocd.centralDirectoryOffset + eocd.centralDirectorySize);
    expect(() => parseCentralDirectory(cd, 4)).toThrow(/announces 4 entries/);
    expect(() => parseCentralDirectory(cd.subarray(0, 50), 1)).toThrow(/runs past its end/);
  });
});

describe('checkZipEntries (bomb limits)', () => {
  const entry = (over: Partial<ZipEntry>): ZipEntry => ({ name: 'x.xml', flags: 0, method: 8, crc32: 0, compressedSize: 100, uncompressedSize: 1000, localHeaderOffset: 0, ...over });
  it('accepts a real document', () => {
    expect(() => checkZipEntries(entriesOf(buildZip(docxEntries())), DOCUMENT_ZIP_LIMITS)).not.toThrow();
  });
  it('per-entry ratio over 100:1 above 1 MB', () => {
    expect(() => checkZipEntries([entry({ compressedSize: 5000, uncompressedSize: 5_000_000 })], DOCUMENT_ZIP_LIMITS)).toThrow(/expands 1000:1, over 100:1/);
    expect(() => checkZipEntries([entry({ compressedSize: 50, uncompressedSize: 900_000 })], DOCUMENT_ZIP_LIMITS)).not.toThrow();
    expect(() => checkZipEntries([entry({ compressedSize: 100_000, uncompressedSize: 5_000_000 })], DOCUMENT_ZIP_LIMITS)).not.toThrow();
  });
  it('total inflated size over 100 MB, across entries', () => {
    const many = Array.from({ length: 3 }, (_, i) => entry({ name: `p${i}`, compressedSize: 40_000_000, uncompressedSize: 40_000_000, method: 0 }));
    expect(() => checkZipEntries(many, DOCUMENT_ZIP_LIMITS)).toThrow(/more than 100 MB/);
  });
  it('entry count, duplicates, unsafe names, encryption, methods, stored size mismatch', () => {
    expect(() => checkZipEntries(Array.from({ length: 10_001 }, (_, i) => entry({ name: `e${i}` })), DOCUMENT_ZIP_LIMITS)).toThrow(/10001 entries/);
    expect(() => checkZipEntries([entry({}), entry({})], DOCUMENT_ZIP_LIMITS)).toThrow(/duplicate/);
    for (const name of ['/etc/passwd', 'a/../../b', 'a\\b']) expect(() => checkZipEntries([entry({ name })], DOCUMENT_ZIP_LIMITS)).toThrow(/unsafe entry name/);
    expect(() => checkZipEntries([entry({ flags: 1 })], DOCUMENT_ZIP_LIMITS)).toThrow(/encrypted/);
    expect(() => checkZipEntries([entry({ method: 14 })], DOCUMENT_ZIP_LIMITS)).toThrow(/method 14/);
    expect(() => checkZipEntries([entry({ method: 0 })], DOCUMENT_ZIP_LIMITS)).toThrow(/two sizes/);
    expect(() => checkZipEntries([], DOCUMENT_ZIP_LIMITS)).toThrow(/no entries/);
  });
});

describe('checkOoxmlParts', () => {
  it('DOCX needs content types, package rels and word/document.xml', () => {
    const entries = entriesOf(buildZip(docxEntries()));
    expect(() => checkOoxmlParts(entries, DOCX)).not.toThrow();
    expect(() => checkOoxmlParts(entries, XLSX)).toThrow(/missing its xl\/workbook.xml part/);
    expect(() => checkOoxmlParts(entries.filter((e) => e.name !== '[Content_Types].xml'), DOCX)).toThrow(/\[Content_Types\]\.xml/);
    expect(() => checkOoxmlParts(entries, 'application/zip')).toThrow(/not an OOXML type/);
  });
});
