/**
 * Sniffing reads as much as the format needs. Real: files written by ffmpeg and sharp (libtiff,
 * x264) and zips built byte by byte, in a temp dir; file-type reading them from disk. What an upload
 * sees is the first 64 KiB (`sniffBuffer` on the head), what the worker sees is the whole file
 * (`sniffFile`); `decideKind` is the rule both feed.
 */
import { copyFile, mkdtemp, open, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileTypeFromFile } from 'file-type';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideKind } from '../../src/domain/policies.js';
import { isTiffHeader, ooxmlFromEntryNames, SNIFF_BYTES, sniffBuffer, sniffBytes, sniffFile } from '../../src/pipeline/sniff.js';
import { fixture } from '../fixtures/generate.js';
import { buildZip } from '../fixtures/zip-writer.js';
import { incompressible, makeDocxLargeFirstEntry, makeDocxStreamed, makeMp4MoovAtEnd, makeTiffByFfmpeg, makeTiffBySharp } from '../fixtures/sniff-media.js';

const DOCX = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'mf-sniff-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The first bytes an upload is judged on. */
async function headOf(file: string): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(SNIFF_BYTES);
    const { bytesRead } = await fh.read(buf, 0, SNIFF_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Offsets of an ISO BMFF file's top-level boxes, by type. */
function topLevelBoxes(bytes: Buffer): Record<string, number> {
  const out: Record<string, number> = {};
  for (let p = 0; p + 8 <= bytes.length; ) {
    const size = bytes.readUInt32BE(p);
    out[bytes.toString('latin1', p + 4, p + 8)] = p;
    if (size < 8) break;
    p += size;
  }
  return out;
}

describe('TIFF: the image directory after the pixels', () => {
  it.each([
    ['ffmpeg', makeTiffByFfmpeg],
    ['sharp (libtiff)', makeTiffBySharp],
  ])('written by %s, ≈ 400 KB: provisional from the first bytes, image/tiff from the whole file', async (_by, make) => {
    const file = await make(dir);
    const bytes = await readFile(file);
    // The premise: a TIFF bigger than the head whose directory offset points past it.
    expect(bytes.length).toBeGreaterThan(SNIFF_BYTES);
    expect(bytes.length).toBeLessThan(500_000);
    const ifd = bytes[0] === 0x49 ? bytes.readUInt32LE(4) : bytes.readUInt32BE(4);
    expect(ifd).toBeGreaterThan(SNIFF_BYTES);

    const head = await sniffBuffer(await headOf(file), false);
    expect(head).toMatchObject({ mime: 'image/tiff', provisional: true });
    expect(decideKind({ kind: 'image', mime: head.mime, declared: 'image/tiff', seen: 'head' })).toBe('image');
    expect(decideKind({ mime: head.mime, seen: 'head' })).toBe('image');
    // Stickers take no TIFF: refused at once, provisional or not.
    expect(() => decideKind({ kind: 'sticker', mime: head.mime, seen: 'head' })).toThrow(/not accepted for kind sticker/);

    const whole = await sniffFile(file);
    expect(whole).toEqual({ mime: 'image/tiff', ext: 'tif', raw: 'image/tiff' });
    expect(decideKind({ kind: 'image', mime: whole.mime, seen: 'whole' })).toBe('image');
  });

  it('a TIFF header whose directory is not there passes the upload and is refused by the whole-file sniff', async () => {
    const file = path.join(dir, 'cut.tiff');
    await copyFile(await makeTiffByFfmpeg(dir), file);
    await truncate(file, 200_000);
    expect((await sniffBuffer(await headOf(file), false)).mime).toBe('image/tiff');
    const whole = await sniffFile(file);
    expect(whole.mime).toBeNull();
    expect(() => decideKind({ kind: 'image', mime: whole.mime, seen: 'whole' })).toThrow(/not in a recognised format/);
  });

  it('a whole file seen at upload is judged as it is: a small TIFF with a dangling directory is refused at once', async () => {
    const tiny = Buffer.concat([Buffer.from([0x49, 0x49, 0x2a, 0x00, 0x00, 0x00, 0x01, 0x00]), Buffer.alloc(1000)]);
    expect(isTiffHeader(tiny)).toBe(true);
    expect((await sniffBuffer(tiny, true)).mime).toBeNull();
  });

  it.each([
    ['little-endian', [0x49, 0x49, 0x2a, 0x00], true],
    ['big-endian', [0x4d, 0x4d, 0x00, 0x2a], true],
    ['wrong version', [0x49, 0x49, 0x2b, 0x01], false],
    ['JPEG', [0xff, 0xd8, 0xff, 0xe0], false],
  ])('TIFF header test: %s', (_name, magic, expected) => {
    expect(isTiffHeader(Buffer.concat([Buffer.from(magic), Buffer.alloc(12)]))).toBe(expected);
  });
});

describe('MP4 with its moov after the media data', () => {
  it('is video/mp4 from the first bytes and from the whole file', async () => {
    const file = await makeMp4MoovAtEnd(dir);
    const bytes = await readFile(file);
    const boxes = topLevelBoxes(bytes);
    expect(bytes.length).toBeGreaterThan(SNIFF_BYTES);
    expect(boxes.moov).toBeGreaterThan(boxes.mdat!);
    expect(boxes.moov).toBeGreaterThan(SNIFF_BYTES);
    expect((await sniffBuffer(await headOf(file), false)).mime).toBe('video/mp4');
    expect((await sniffFile(file)).mime).toBe('video/mp4');
  });
});

describe('ZIP-based documents', () => {
  it('a DOCX whose parts start past the first 64 KiB: a provisional zip at upload, DOCX from the whole file', async () => {
    const file = await makeDocxLargeFirstEntry(dir);
    expect((await stat(file)).size).toBeGreaterThan(SNIFF_BYTES);
    const head = await sniffBuffer(await headOf(file), false);
    expect(head).toMatchObject({ mime: 'application/zip', provisional: true });
    expect(decideKind({ kind: 'document', mime: head.mime, declared: DOCX, seen: 'head' })).toBe('document');
    const whole = await sniffFile(file);
    expect(whole).toEqual({ mime: DOCX, ext: 'docx', raw: DOCX });
    expect(decideKind({ kind: 'document', mime: whole.mime, declared: DOCX, seen: 'whole' })).toBe('document');
  });

  it('a DOCX from a streaming writer is placed by its central directory', async () => {
    const file = await makeDocxStreamed(dir);
    // The premise: walking entries from the start does not get past the 1.5 MB first one.
    expect((await fileTypeFromFile(file))?.mime).toBe('application/zip');
    expect(await sniffFile(file)).toEqual({ mime: DOCX, ext: 'docx', raw: DOCX });
  });

  it('a zip that is no Office document stays a zip, which no kind accepts', async () => {
    const file = path.join(dir, 'photos.zip');
    await writeFile(file, buildZip([{ name: 'a.bin', data: incompressible(100_000), method: 0 }, { name: 'word/document.xml', data: Buffer.from('<x/>') }]));
    const whole = await sniffFile(file);
    expect(whole.mime).toBe('application/zip');
    expect(() => decideKind({ kind: 'document', mime: whole.mime, seen: 'whole' })).toThrow(/not accepted for kind document/);
  });

  it('the small fixture DOCX and plain text are unchanged', async () => {
    expect((await sniffFile(await fixture('docx'))).mime).toBe(DOCX);
    expect((await sniffFile(await fixture('text'))).mime).toBe('text/plain');
  });

  it.each([
    ['Word', ['[Content_Types].xml', '_rels/.rels', 'word/document.xml'], DOCX],
    ['Excel', ['[Content_Types].xml', 'xl/workbook.xml'], 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'],
    ['PowerPoint', ['ppt/presentation.xml', '[Content_Types].xml'], 'application/vnd.openxmlformats-officedocument.presentationml.presentation'],
    ['no content types', ['word/document.xml'], null],
    ['content types, no main part', ['[Content_Types].xml', 'word/styles.xml'], null],
  ])('OOXML from entry names: %s', (_name, names, expected) => {
    expect(ooxmlFromEntryNames(names)).toBe(expected);
  });
});

describe('the worker sniffs a small input held in memory exactly as it sniffs a file', () => {
  const small = ['jpegExifOrientation6', 'pngAlpha', 'gifAnimated', 'webpStatic', 'tiff', 'avif', 'bmp', 'heicHeader', 'jpegGarbage', 'm4a', 'oggOpusMono', 'mp3', 'wav', 'flac', 'pdf', 'docx', 'doc', 'text', 'zipBomb'] as const;
  it.each(small)('%s: sniffBytes(bytes) = sniffFile(file)', async (name) => {
    const file = await fixture(name);
    expect(await sniffBytes(await readFile(file))).toEqual(await sniffFile(file));
  });

  it.each([
    ['a TIFF with its directory after the pixels', makeTiffBySharp],
    ['an MP4 whose moov follows the media data', makeMp4MoovAtEnd],
    ['a streamed DOCX (sizes after each entry)', makeDocxStreamed],
    ['a DOCX with a large first entry', makeDocxLargeFirstEntry],
  ])('%s', async (_what, make) => {
    const file = await make(dir);
    expect(await sniffBytes(await readFile(file))).toEqual(await sniffFile(file));
  });

  it('an empty input and bytes of no known format', async () => {
    const empty = path.join(dir, 'empty.bin');
    await writeFile(empty, Buffer.alloc(0));
    expect(await sniffBytes(Buffer.alloc(0))).toEqual(await sniffFile(empty));
    const noise = path.join(dir, 'noise.bin');
    await writeFile(noise, incompressible(100_000));
    expect(await sniffBytes(incompressible(100_000))).toEqual(await sniffFile(noise));
  });
});
