/**
 * The one file-name sanitiser (src/domain/filename.ts) and the download name built from it, as
 * tables; and the Content-Disposition header, which must come out for any stored name at all.
 */
import { describe, expect, it } from 'vitest';
import { contentDisposition } from '../../src/api/serve-content.js';
import { downloadFilename, extensionFor, sanitizeFilename } from '../../src/domain/filename.js';

const SMILE = '\u{1F600}'; // one code point, two UTF-16 units, four UTF-8 bytes
const codePoints = (s: string) => [...s].length;
const utf8 = (s: string) => Buffer.byteLength(s, 'utf8');
const wellFormed = (s: string) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);

describe('sanitizeFilename', () => {
  it.each<[string, string | null | undefined, string | null]>([
    ['plain', 'photo.jpg', 'photo.jpg'],
    ['absent', undefined, null],
    ['null', null, null],
    ['RLO (U+202E)', 'invoice\u202Egpj.exe', 'invoicegpj.exe'],
    ['LRE/RLE/PDF/LRO', 'a\u202Ab\u202Bc\u202Cd\u202D.txt', 'abcd.txt'],
    ['isolates U+2066–2069', '\u2066a\u2067b\u2068c\u2069.txt', 'abc.txt'],
    ['LRM, RLM, ALM', 'a\u200Eb\u200Fc\u061C.pdf', 'abc.pdf'],
    ['NUL', 'a\u0000b.txt', 'ab.txt'],
    ['C0 controls and DEL', 'a\r\nb\tc\u001b\u007f.txt', 'abc.txt'],
    ['C1 controls', 'a\u0085b\u009bc.txt', 'abc.txt'],
    ['line separator, BOM', '\uFEFFa\u2028b.txt', 'ab.txt'],
    ['POSIX path', '../../etc/passwd', 'passwd'],
    ['Windows path', 'C:\\Users\\x\\evil.exe', 'evil.exe'],
    ['trailing separator leaves nothing', 'dir/', null],
    ['leading dot', '.htaccess', 'htaccess'],
    ['trailing dots and spaces', ' name.pdf. . ', 'name.pdf'],
    ['only dots', '..', null],
    ['only spaces', '   ', null],
    ['only controls', '\u202E\u0000\u200F', null],
    ['empty', '', null],
    ['reserved characters', 're:port?<1>|"2"*.pdf', 're_port__1___2__.pdf'],
    ['NFC', 'cafe\u0301.jpg', 'caf\u00e9.jpg'],
    ['NFC across a removed mark', 'cafe\u200E\u0301.jpg', 'caf\u00e9.jpg'],
    ['lone high surrogate', `a\ud83d.jpg`, 'a.jpg'],
    ['lone low surrogate', `a\ude00.jpg`, 'a.jpg'],
    ['emoji kept', `${SMILE} party.png`, `${SMILE} party.png`],
    ['ZWJ sequence kept', 'family\u{1F468}\u200D\u{1F469}.png', 'family\u{1F468}\u200D\u{1F469}.png'],
    ['cut keeps the extension', 'x'.repeat(300) + '.jpeg', 'x'.repeat(195) + '.jpeg'],
    ['cut never splits a surrogate pair', 'x'.repeat(195) + SMILE + 'y'.repeat(100) + '.pdf', 'x'.repeat(195) + SMILE + '.pdf'],
    ['emoji past the cut is dropped whole', 'x'.repeat(196) + SMILE + 'y.pdf', 'x'.repeat(196) + '.pdf'],
    ['cut without an extension', 'x'.repeat(199) + SMILE + 'tail', 'x'.repeat(199) + SMILE],
    ['cut by UTF-8 bytes', '\u00e9'.repeat(150) + '.txt', '\u00e9'.repeat(125) + '.txt'],
    ['cut leaves no trailing dot', 'a'.repeat(100) + '.'.repeat(150) + '.jpg', 'a'.repeat(100) + '.jpg'],
  ])('%s', (_label, raw, expected) => {
    const got = sanitizeFilename(raw);
    expect(got).toBe(expected);
    if (got !== null) {
      expect(codePoints(got)).toBeLessThanOrEqual(200);
      expect(utf8(got)).toBeLessThanOrEqual(255);
      expect(wellFormed(got)).toBe(true);
      expect(sanitizeFilename(got)).toBe(got); // a stored name passes again unchanged
    }
  });
});

describe('downloadFilename: the extension comes from the stored type', () => {
  it.each<[string, string | null, string | null, string]>([
    ['HEIC stored as JPEG', 'photo.heic', 'image/jpeg', 'photo.jpg'],
    ['an .exe that is a PDF', 'invoice.exe', 'application/pdf', 'invoice.pdf'],
    ['RLO spoof', 'invoice\u202Egpj.exe', 'application/pdf', 'invoicegpj.pdf'],
    ['a fitting extension is kept as written', 'IMG_1.JPEG', 'image/jpeg', 'IMG_1.JPEG'],
    ['no extension', 'README', 'text/plain', 'README.txt'],
    ['a dot that is no extension', 'my.holiday photo', 'image/png', 'my.holiday photo.png'],
    ['voice note as Ogg', 'note.m4a', 'audio/ogg; codecs=opus', 'note.ogg'],
    ['unknown stored type', 'a.exe', 'application/x-unknown', 'a.bin'],
    ['no stored type', 'a.exe', null, 'a.bin'],
    ['nothing usable left', '\u202E..', 'image/webp', 'file.webp'],
    ['no name at all', null, 'video/mp4', 'file.mp4'],
    ['stem only dots after the swap', '...exe', 'application/pdf', 'exe.pdf'],
  ])('%s', (_label, raw, mime, expected) => {
    expect(downloadFilename(raw, mime)).toBe(expected);
  });

  it('stays in bounds when the new extension is longer than the old', () => {
    const got = downloadFilename('x'.repeat(198) + '.a', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document');
    expect(got.endsWith('.docx')).toBe(true);
    expect(codePoints(got)).toBeLessThanOrEqual(200);
    expect(extensionFor('image/jpeg')).toBe('jpg');
  });

  it('uses the given fallback base', () => {
    expect(downloadFilename('', 'image/jpeg', 'med_1')).toBe('med_1.jpg');
  });
});

describe('contentDisposition never throws and never carries a control', () => {
  const SEPARATED = `${'x'.repeat(199)}${SMILE}${'y'.repeat(100)}.jpg`;
  it.each<[string, string | null]>([
    ['a lone surrogate at a 200-unit cut (old rows)', SEPARATED.slice(0, 200)],
    ['a name past every bound', SEPARATED],
    ['bidi override', 'invoice\u202Egpj.exe'],
    ['header injection', 'évil"\r\nSet-Cookie: x=1/../../a.jpg'],
    ['null', null],
  ])('%s', (_label, name) => {
    const cd = contentDisposition(name, 'med_1', 'image/jpeg');
    expect(cd).toMatch(/^attachment; filename="[A-Za-z0-9._ ()-]+"; filename\*=UTF-8''[A-Za-z0-9%._!~-]+$/);
    expect(decodeURIComponent(cd.split("''")[1]!)).toMatch(/\.jpg$/);
    expect(cd).not.toMatch(/%E2%80%AE|%E2%81%A[6-9]|[\r\n]/i);
  });
});
