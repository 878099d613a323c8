/** Document checks on generated files: real file reads and zlib, no mocks. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { normalize } from '../../src/pipeline/normalize.js';
import { fixture } from '../fixtures/generate.js';
import { buildZip } from '../fixtures/zip-writer.js';
import { input, scratch, useScratch } from './normalize-helpers.js';

useScratch();

const DOCX = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';

async function rejected(p: Promise<unknown>): Promise<PermanentError> {
  const err = await p.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(PermanentError);
  return err as PermanentError;
}

describe('documents are stored as sent after structural checks', () => {
  it('a valid PDF passes, with its page count', async () => {
    const src = await fixture('pdf');
    const out = await normalize(await input(src, 'application/pdf', 'document'));
    expect(out).toEqual({ outputPath: src, mimeType: 'application/pdf', transform: 'kept', width: null, height: null, durationMs: null, pages: 2, waveform: null, variants: [] });
  });

  it('a PDF without its trailer is refused', async () => {
    const err = await rejected(normalize(await input(await fixture('pdfNoTrailer'), 'application/pdf', 'document')));
    expect(err.code).toBe('MEDIA_REJECTED');
    expect(err.message).toMatch(/%%EOF/);
  });

  it('a valid DOCX passes', async () => {
    const src = await fixture('docx');
    const out = await normalize(await input(src, DOCX, 'document'));
    expect(out).toMatchObject({ outputPath: src, mimeType: DOCX, transform: 'kept', pages: null });
  });

  it('a zip bomb (120 MB of zeros in 120 KB) is refused from its directory, fast', async () => {
    const req = await input(await fixture('zipBomb'), DOCX, 'document');
    const started = performance.now();
    const err = await rejected(normalize(req));
    expect(err.message).toMatch(/zip bomb/);
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('a bomb that lies about its sizes is caught while inflating', async () => {
    const err = await rejected(normalize(await input(await fixture('zipBombLying'), DOCX, 'document')));
    expect(err.message).toBe('the document\'s zip structure is invalid: entry "word/media/image1.bin" inflates past its declared 4096 bytes');
  });

  it('a DOCX with a corrupted entry fails its CRC', async () => {
    const dir = await scratch();
    const bytes = Buffer.from(await readFile(await fixture('docx')));
    // The first entry is [Content_Types].xml, deflated: flip a byte in the middle of its data.
    const dataStart = 30 + '[Content_Types].xml'.length;
    bytes[dataStart + 40] = bytes[dataStart + 40]! ^ 0x55;
    const path = join(dir, 'corrupt.docx');
    await writeFile(path, bytes);
    const err = await rejected(normalize(await input(path, DOCX, 'document')));
    expect(err.code).toBe('MEDIA_REJECTED');
  });

  it('legacy DOC (OLE2) and UTF-8 text pass; binary sniffed as text is refused', async () => {
    expect((await normalize(await input(await fixture('doc'), 'application/msword', 'document'))).transform).toBe('kept');
    expect((await normalize(await input(await fixture('text'), 'text/plain', 'document'))).transform).toBe('kept');
    const dir = await scratch();
    const bin = join(dir, 'x.txt');
    await writeFile(bin, Buffer.from([0x68, 0x69, 0x00, 0x01]));
    expect((await rejected(normalize(await input(bin, 'text/plain', 'document')))).message).toMatch(/NUL/);
  });

  it('a DOCX that is only a zip (no word/document.xml) is refused', async () => {
    const dir = await scratch();
    const path = join(dir, 'not-really.docx');
    await writeFile(path, buildZip([{ name: '[Content_Types].xml', data: Buffer.from('<Types/>') }, { name: '_rels/.rels', data: Buffer.from('<r/>') }]));
    expect((await rejected(normalize(await input(path, DOCX, 'document')))).message).toMatch(/word\/document.xml/);
  });
});
