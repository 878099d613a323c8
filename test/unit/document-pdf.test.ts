import { describe, expect, it } from 'vitest';
import { checkPdfHead, checkPdfTail, createPdfPageCounter } from '../../src/pipeline/document/pdf.js';
import { pdfBytes } from '../fixtures/generate.js';

describe('PDF head and tail', () => {
  it('accepts a whole PDF', () => {
    const pdf = pdfBytes();
    expect(() => checkPdfHead(pdf)).not.toThrow();
    expect(() => checkPdfTail(pdf)).not.toThrow();
  });
  it('header may follow junk within 1024 bytes, not later', () => {
    expect(() => checkPdfHead(Buffer.concat([Buffer.alloc(100, 0x20), pdfBytes()]))).not.toThrow();
    expect(() => checkPdfHead(Buffer.concat([Buffer.alloc(1100, 0x20), pdfBytes()]))).toThrow(/no %PDF- header/);
    expect(() => checkPdfHead(Buffer.from('%PDF-x.y'))).toThrow(/no %PDF- header/);
  });
  it('refuses a truncated file, data after %%EOF, a missing startxref', () => {
    expect(() => checkPdfTail(pdfBytes({ trailer: false }))).toThrow(/no %%EOF trailer/);
    expect(() => checkPdfTail(Buffer.concat([pdfBytes(), Buffer.from('<html>')]))).toThrow(/data after its last %%EOF/);
    expect(() => checkPdfTail(Buffer.from('1 0 obj\n<<>>\nendobj\n%%EOF\n'))).toThrow(/no startxref/);
    expect(() => checkPdfTail(Buffer.concat([pdfBytes(), Buffer.from('\r\n\0\0')]))).not.toThrow();
  });
});

describe('createPdfPageCounter', () => {
  it('reads the page tree /Count, in any chunking', () => {
    const pdf = pdfBytes();
    for (const size of [pdf.length, 7, 1]) {
      const c = createPdfPageCounter();
      for (let i = 0; i < pdf.length; i += size) c.push(pdf.subarray(i, i + size));
      expect(c.result(), `chunks of ${size}`).toBe(2);
    }
  });
  it('the root /Count wins over intermediate nodes', () => {
    const c = createPdfPageCounter();
    c.push(Buffer.from('<< /Type /Pages /Count 3 /Kids [] >> << /Count 10 /Type /Pages >> << /Type /Pages /Count 7 >>'));
    expect(c.result()).toBe(10);
  });
  it('without /Pages, counts /Type /Page objects once across chunk borders', () => {
    const text = Buffer.from('1 0 obj << /Type /Page >> endobj 2 0 obj << /Type/Page >> endobj 3 0 obj << /Type /PageLabel >> endobj');
    const c = createPdfPageCounter();
    for (let i = 0; i < text.length; i += 5) c.push(text.subarray(i, i + 5));
    expect(c.result()).toBe(2);
  });
  it('null when object streams hide the tree', () => {
    const c = createPdfPageCounter();
    c.push(Buffer.from('5 0 obj << /Type /ObjStm /N 4 /First 20 /Filter /FlateDecode >> stream\nxx\nendstream'));
    expect(c.result()).toBeNull();
  });
});
