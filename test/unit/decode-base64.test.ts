import { describe, expect, it } from 'vitest';
import { AppError, PermanentError } from '../../src/domain/errors.js';
import { decodeBase64Strict } from '../../src/pipeline/decode-base64.js';

const PNG_HEAD = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function failure(input: string, max = 1000): { code: string; reason?: string; message: string } {
  try {
    decodeBase64Strict(input, max);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect(err).toBeInstanceOf(PermanentError);
    const e = err as PermanentError;
    if (e.code === 'VALIDATION_FAILED') expect((e.details as { field: string }).field).toBe('base64');
    return { code: e.code, reason: (e.details as { reason?: string } | undefined)?.reason, message: e.message };
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused`);
}

describe('decodeBase64Strict accepts', () => {
  it.each([
    ['QQ==', 'A'],
    ['QUI=', 'AB'],
    ['QUJD', 'ABC'],
    ['SGVsbG8sIHdvcmxkIQ==', 'Hello, world!'],
    ['SGVs\nbG8s\r\nIHdv cmxk\tIQ==', 'Hello, world!'],
    ['  QUJD  \n', 'ABC'],
    ['QQ=\n=', 'A'],
  ])('%j → %j', (input, text) => {
    const got = decodeBase64Strict(input, 1000);
    expect(got.bytes.toString('latin1')).toBe(text);
    expect(got.dataUrlMime).toBeNull();
  });

  it('every byte value, both alphabet ends (+ and /)', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const encoded = all.toString('base64');
    expect(encoded).toMatch(/\+/);
    expect(encoded).toMatch(/\//);
    expect(decodeBase64Strict(encoded, 256).bytes.equals(all)).toBe(true);
  });

  it.each([
    ['data:image/png;base64,', 'image/png'],
    ['DATA:Image/PNG;BASE64,', 'image/png'],
    ['data:image/png;name=a.png;base64,', 'image/png'],
    ['data:application/vnd.openxmlformats-officedocument.wordprocessingml.document;base64,', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document'],
    ['data:;base64,', null],
  ])('a %j prefix, returning its type', (prefix, mime) => {
    const got = decodeBase64Strict(prefix + PNG_HEAD.toString('base64'), 1000);
    expect(got.bytes.equals(PNG_HEAD)).toBe(true);
    expect(got.dataUrlMime).toBe(mime);
  });

  it('exactly maxBytes', () => {
    expect(decodeBase64Strict(Buffer.alloc(3000, 7).toString('base64'), 3000).bytes.length).toBe(3000);
    expect(decodeBase64Strict(Buffer.alloc(3001, 7).toString('base64'), 3001).bytes.length).toBe(3001);
  });
});

describe('decodeBase64Strict refuses', () => {
  it.each([
    ['QQ*=', 'invalid_character'],
    ['*QUJD', 'invalid_character'],
    ['QU JD*', 'invalid_character'],
    ['QUJD\u0000', 'invalid_character'],
    ['QUJDé===', 'invalid_character'],
    ['QUJD\u00a0', 'invalid_character'], // no-break space is not whitespace we tolerate
    ['QUJD\v', 'invalid_character'],
    ['QUJD%3D', 'invalid_character'],
    ['QUJD.', 'invalid_character'],
    // URL-safe alphabet: refused (see decode-base64.ts for why), with a reason that says so.
    ['-_-_', 'url_safe_alphabet'],
    ['PD8_', 'url_safe_alphabet'],
    ['Pz-/', 'url_safe_alphabet'],
    // padding and length
    ['QQ', 'length'],
    ['QUJ', 'length'],
    ['QUJDQ', 'length'],
    ['QQ=', 'length'],
    ['Q===', 'padding'],
    ['QQ===', 'padding'],
    ['QQ==QUJD', 'padding'],
    ['QQ==\nQQ==', 'padding'],
    ['=QUJ', 'padding'],
    ['QU=D', 'padding'],
    // non-zero bits after the last whole byte ('QR==' and 'QQ==' would both decode to "A")
    ['QR==', 'non_canonical'],
    ['QUN=', 'non_canonical'],
    // empty payloads
    ['', 'empty'],
    [' \n\t', 'empty'],
    ['data:image/png;base64,', 'empty'],
    // data URL shapes
    ['data:image/png,QUJD', 'data_url'],
    ['data:image/png;base64QUJD', 'data_url'],
    ['data:image;base64,QUJD', 'data_url'],
    ['data:image/png/x;base64,QUJD', 'data_url'],
    ['data:im age/png;base64,QUJD', 'data_url'],
  ])('%j → VALIDATION_FAILED (%s)', (input, reason) => {
    const f = failure(input);
    expect(f.code).toBe('VALIDATION_FAILED');
    expect(f.reason).toBe(reason);
  });

  it('names the position of the stray character', () => {
    expect(failure('QUJD QU*D').message).toMatch(/position 7/);
    expect(failure('QUJD_').message).toMatch(/URL-safe.*standard base64/);
  });

  it('one byte over maxBytes → FILE_TOO_LARGE, by either size check', () => {
    // 1001 bytes fit in ceil(1000/3)*4 = 1336 characters, so only the exact size check can catch it.
    const exact = failure(Buffer.alloc(1001).toString('base64'), 1000);
    expect(exact.code).toBe('FILE_TOO_LARGE');
    expect(exact.message).toMatch(/1001 bytes, over the 1000-byte limit/);
    // 3001 bytes need 4004 characters, more than 3000 bytes ever could: the scan stops early.
    const early = failure(Buffer.alloc(3001).toString('base64'), 3000);
    expect(early.code).toBe('FILE_TOO_LARGE');
    expect(early.message).toMatch(/more than the 3000-byte limit/);
  });

  it('whitespace does not count toward the size', () => {
    const wrapped = Buffer.alloc(900, 1).toString('base64').replace(/.{76}/g, '$&\r\n');
    expect(wrapped.length).toBeGreaterThan(1200);
    expect(decodeBase64Strict(wrapped, 900).bytes.length).toBe(900);
  });

  it('refuses a huge payload from its length, before decoding and without reading it all', () => {
    // 40 MB of text: decoding it would allocate 30 MB. The stray '*' at the very end is never reached,
    // so the answer is FILE_TOO_LARGE, proving the size decision came before full validation and decoding.
    const huge = 'A'.repeat(40_000_000) + '*';
    const before = process.memoryUsage().arrayBuffers;
    const f = failure(huge, 1000);
    expect(f.code).toBe('FILE_TOO_LARGE');
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(1_000_000);
  });
});
