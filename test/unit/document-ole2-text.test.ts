import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { checkOle2Header } from '../../src/pipeline/document/ole2.js';
import { createTextValidator } from '../../src/pipeline/document/text.js';
import { ole2Bytes } from '../fixtures/generate.js';

describe('checkOle2Header', () => {
  it('accepts a minimal v3 compound file', () => {
    const f = ole2Bytes();
    expect(() => checkOle2Header(f, f.length)).not.toThrow();
  });
  it('refuses magic-only files, bad byte order, wrong sector size, truncation', () => {
    const f = ole2Bytes();
    const magicOnly = Buffer.concat([f.subarray(0, 8), Buffer.alloc(1528)]);
    expect(() => checkOle2Header(magicOnly, magicOnly.length)).toThrow(PermanentError);
    const bom = Buffer.from(f);
    bom.writeUInt16LE(0xfeff, 28);
    expect(() => checkOle2Header(bom, bom.length)).toThrow(/byte order/);
    const v4 = Buffer.from(f);
    v4.writeUInt16LE(4, 26);
    expect(() => checkOle2Header(v4, v4.length)).toThrow(/version 4 with 512-byte sectors/);
    expect(() => checkOle2Header(f, 1024)).toThrow(/too short/);
    expect(() => checkOle2Header(f.subarray(0, 100), 100)).toThrow(/shorter than its header/);
  });
});

describe('createTextValidator', () => {
  const validate = (chunks: Buffer[]): void => {
    const v = createTextValidator();
    for (const c of chunks) v.push(c);
    v.end();
  };
  it('accepts UTF-8 with a BOM, even with multi-byte characters split across chunks', () => {
    const text = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('Grüße ✓ 😀 done', 'utf8')]);
    expect(() => validate([text])).not.toThrow();
    expect(() => validate(Array.from({ length: text.length }, (_, i) => text.subarray(i, i + 1)))).not.toThrow();
  });
  it('refuses NUL (binary, UTF-16), invalid sequences, and a cut-off final character', () => {
    expect(() => validate([Buffer.from('ab\0cd')])).toThrow(/NUL byte at 2/);
    expect(() => validate([Buffer.from('hi', 'utf16le')])).toThrow(/NUL/);
    expect(() => validate([Buffer.from([0x61, 0xff, 0x62])])).toThrow(/not valid UTF-8/);
    expect(() => validate([Buffer.from([0x61, 0xe2, 0x9c])])).toThrow(/not valid UTF-8/);
  });
});
