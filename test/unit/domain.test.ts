/** Pure rules of the domain and the API helpers: tables, no I/O. */
import { describe, expect, it } from 'vitest';
import { signFileToken, verifyFileToken, deriveSecret } from '../../src/domain/file-token.js';
import { isInboxKeyOf, MEDIA_PATH_PATTERN, newApiKey, newMediaId, newMediaPath } from '../../src/domain/ids.js';
import { PermanentError } from '../../src/domain/errors.js';
import type { MediaKind } from '../../src/domain/kinds.js';
import { canonicalMime, decideKind, declaredAgrees, deliveredLimitBytes, fileTooLarge, inferKind, inputLimitBytes, kindAccepts, type KindQuestion } from '../../src/domain/policies.js';
import { contentDisposition, parseRange } from '../../src/api/serve-content.js';
import { loadConfig } from '../../src/config/index.js';

describe('policies', () => {
  it.each([
    ['image/jpeg', 'image/jpeg', true],
    ['image/jpg', 'image/jpeg', true],
    [null, 'image/png', true],
    ['application/octet-stream', 'application/pdf', true],
    ['image/png', 'image/jpeg', false],
    ['application/pdf', 'image/png', false],
    ['audio/mp4', 'video/mp4', true],
    ['application/msword', 'application/x-cfb', true],
    ['audio/ogg; codecs=opus', 'audio/ogg', true],
    ['video/webm', 'audio/webm', true],
  ])('declared %s vs sniffed %s agree: %s', (declared, sniffed, agree) => {
    expect(declaredAgrees(declared, sniffed)).toBe(agree);
  });

  it('accepts each kind its formats and refuses others', () => {
    expect(kindAccepts('image', 'image/heic')).toBe(true);
    expect(kindAccepts('image', 'application/pdf')).toBe(false);
    expect(kindAccepts('sticker', 'image/jpeg')).toBe(false);
    expect(kindAccepts('voice_note', 'audio/wav')).toBe(true);
    expect(kindAccepts('document', 'text/plain')).toBe(true);
    expect(inferKind('video/quicktime')).toBe('video');
    expect(inferKind('application/x-msdownload')).toBeUndefined();
    expect(canonicalMime('Audio/X-WAV')).toBe('audio/wav');
  });

  // What comes in (the 413 at upload) vs what goes out (what normalization must fit), per kind.
  it.each<[string, MediaKind, number | undefined, number, number]>([
    ['image: a phone photo may be 10x what is delivered', 'image', undefined, 50_000_000, 5_000_000],
    ['video: up to the hard cap in, 16 MB out', 'video', undefined, 100_000_000, 16_000_000],
    ['audio: up to the hard cap in, 16 MB out', 'audio', undefined, 100_000_000, 16_000_000],
    ['voice note: 16 MB in and out', 'voice_note', undefined, 16_000_000, 16_000_000],
    ['document: not shrunk, so in = out', 'document', undefined, 10_000_000, 10_000_000],
    ['sticker: the animated limit bounds the input, static is delivered', 'sticker', undefined, 500_000, 100_000],
    ['image override below its input cap: only the delivery shrinks', 'image', 1_000_000, 50_000_000, 1_000_000],
    ['image override above its input cap raises the input too', 'image', 80_000_000, 80_000_000, 80_000_000],
    ['video override: input stays at the hard cap', 'video', 32_000_000, 100_000_000, 32_000_000],
    ['voice note override above 16 MB raises the input', 'voice_note', 20_000_000, 20_000_000, 20_000_000],
    ['document raised by the app: in = out', 'document', 50_000_000, 50_000_000, 50_000_000],
    ['document lowered by the app: in = out', 'document', 1_000, 1_000, 1_000],
    ['sticker override: in = out', 'sticker', 200_000, 200_000, 200_000],
    ['override past the hard cap: the hard cap, in and out', 'document', 500_000_000, 100_000_000, 100_000_000],
  ])('%s', (_name, kind, override, input, delivered) => {
    expect(inputLimitBytes(kind, override)).toBe(input);
    expect(deliveredLimitBytes(kind, override)).toBe(delivered);
  });

  it('a lower configured hard cap binds every input limit, a higher one none', () => {
    expect(inputLimitBytes('video', undefined, 10_000_000)).toBe(10_000_000);
    expect(inputLimitBytes('image', 80_000_000, 20_000_000)).toBe(20_000_000);
    expect(inputLimitBytes('document', 50_000_000, 200_000_000)).toBe(50_000_000);
    expect(inputLimitBytes('video', undefined, 200_000_000)).toBe(100_000_000);
  });

  // One rule for the upload's first bytes, the slot's declared type and the worker's whole file.
  it.each<[string, KindQuestion, string]>([
    ['first bytes: a PDF sent as an image', { kind: 'image', mime: 'application/pdf', declared: 'application/pdf', seen: 'head' }, 'application/pdf is not accepted for kind image'],
    ['first bytes: nothing recognisable', { mime: null, seen: 'head' }, 'the file is not in a recognised format'],
    ['first bytes: a zip may still be OOXML', { mime: 'application/zip', seen: 'head' }, 'document'],
    ['first bytes: a zip named a document', { kind: 'document', mime: 'application/zip', declared: 'application/pdf', seen: 'head' }, 'document'],
    ['first bytes: a zip sent as an image', { kind: 'image', mime: 'application/zip', seen: 'head' }, 'application/zip is not accepted for kind image'],
    ['first bytes: a JPEG is no sticker', { kind: 'sticker', mime: 'image/jpeg', seen: 'head' }, 'image/jpeg is not accepted for kind sticker'],
    ['first bytes: generic declared type', { mime: 'image/png', declared: 'application/octet-stream', seen: 'head' }, 'image'],
    ['whole file: a zip that was no OOXML', { mime: 'application/zip', seen: 'whole' }, 'application/zip is not an accepted media type'],
    ['whole file: a PNG declared a JPEG', { kind: 'image', mime: 'image/png', declared: 'image/jpeg', seen: 'whole' }, 'declared type image/jpeg contradicts the content (image/png)'],
    ['whole file: kind inferred', { kind: null, mime: 'audio/mpeg', declared: null, seen: 'whole' }, 'audio'],
    ['whole file: converted formats count', { kind: 'image', mime: 'image/heic', seen: 'whole' }, 'image'],
    ['whole file: a WAV voice note', { kind: 'voice_note', mime: 'audio/wav', declared: 'audio/x-wav', seen: 'whole' }, 'voice_note'],
    ['whole file: declared with parameters', { mime: 'audio/ogg', declared: 'audio/ogg; codecs=opus', seen: 'whole' }, 'audio'],
    ['whole file: an executable', { mime: 'application/x-msdownload', seen: 'whole' }, 'application/x-msdownload is not an accepted media type'],
    ['slot: a declared PDF', { mime: 'application/pdf', seen: 'declared' }, 'document'],
    ['slot: an alias of a kind\'s type', { kind: 'image', mime: 'image/jpg', seen: 'declared' }, 'image'],
    ['slot: a declared zip is no document yet', { mime: 'application/zip', seen: 'declared' }, 'application/zip is not an accepted media type'],
    ['slot: a declared PNG for a PDF kind', { kind: 'document', mime: 'image/png', seen: 'declared' }, 'image/png is not accepted for kind document'],
  ])('decides the kind: %s', (_name, question, expected) => {
    if (!expected.includes(' ')) {
      expect(decideKind(question)).toBe(expected);
      return;
    }
    let thrown: unknown;
    try {
      decideKind(question);
    } catch (err) {
      thrown = err;
    }
    // Final wherever it is raised: 415 at the API, no retry in the worker.
    expect(thrown).toBeInstanceOf(PermanentError);
    expect(thrown).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE', status: 415, message: expected });
  });

  it('says a file is too large the same way at every step, naming the kind where it is known', () => {
    expect(fileTooLarge(5_000_000)).toMatchObject({ code: 'FILE_TOO_LARGE', status: 413, message: 'the file is larger than the limit of 5000000 bytes', details: { maxBytes: 5_000_000 } });
    expect(fileTooLarge(5_000_000, 'image').message).toBe('the file is larger than the limit of 5000000 bytes for image');
    expect(fileTooLarge(1)).toBeInstanceOf(PermanentError);
  });
});

describe('ids and paths', () => {
  it('makes job-id-safe media ids and media paths that match the download pattern', () => {
    const id = newMediaId();
    expect(id).toMatch(/^med_[a-z0-9]+$/);
    expect(id).not.toContain(':');
    expect(newMediaPath('dev-1')).toMatch(MEDIA_PATH_PATTERN);
    expect(() => newMediaPath('../etc')).toThrow();
    const key = newApiKey();
    expect(key.key.startsWith(`${key.prefix}_`)).toBe(true);
    expect(key.hash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('temporary URL tokens', () => {
  const secret = deriveSecret(Buffer.alloc(32, 7), 'file-urls');
  it('verifies its own, refuses forged, and says expired after expiry', () => {
    const t = signFileToken(secret, 'med_abc', new Date(Date.now() + 60_000));
    expect(verifyFileToken(secret, t)).toMatchObject({ ok: true, mediaId: 'med_abc' });
    expect(verifyFileToken(secret, t.replace('med_abc', 'med_abd'))).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(verifyFileToken(deriveSecret(Buffer.alloc(32, 8), 'file-urls'), t)).toMatchObject({ ok: false });
    expect(verifyFileToken(secret, signFileToken(secret, 'med_abc', new Date(Date.now() - 1000)))).toMatchObject({ ok: false, reason: 'expired' });
    expect(verifyFileToken(secret, signFileToken(secret, 'producer-id_1', new Date(Date.now() + 60_000)))).toMatchObject({ ok: true });
    expect(verifyFileToken(secret, '../../etc/passwd')).toMatchObject({ ok: false, reason: 'malformed' });
  });
});

describe('content helpers', () => {
  it.each([
    ['bytes=0-0', { start: 0, end: 0 }],
    ['bytes=10-', { start: 10, end: 99 }],
    ['bytes=-10', { start: 90, end: 99 }],
    ['bytes=50-1000', { start: 50, end: 99 }],
    ['bytes=100-', 'unsatisfiable'],
    ['bytes=5-2', 'unsatisfiable'],
    ['bytes=0-1,5-6', null],
    ['items=0-1', 'unsatisfiable'],
  ])('parses Range %s of a 100-byte object', (header, want) => {
    expect(parseRange(header, 100)).toEqual(want);
  });

  it('writes a Content-Disposition that cannot break out of the header', () => {
    const cd = contentDisposition('évil"\r\nSet-Cookie: x=1/../../a.jpg', 'med_1', 'image/jpeg');
    expect(cd).not.toMatch(/[\r\n]/);
    expect(cd.startsWith('attachment; filename="')).toBe(true);
    expect(contentDisposition(null, 'med_1', 'image/jpeg')).toContain('med_1.jpg');
  });
});

describe('config', () => {
  it('has defaults that serve locally, and names the variable on a bad value', () => {
    const c = loadConfig({});
    expect([c.PORT, c.REDIS_URL, c.DATABASE_URL, c.STORAGE_DRIVER, c.DATA_DIR, c.QUEUE_PREFIX]).toEqual([
      8080, 'redis://127.0.0.1:6379', 'postgres://postgres@127.0.0.1:5432/mediaflow', 'fs', './data', 'mediaflow',
    ]);
    expect(() => loadConfig({ STORAGE_DRIVER: 'ftp' })).toThrow(/^invalid configuration: STORAGE_DRIVER/);
    expect(() => loadConfig({ STORAGE_DRIVER: 's3' })).toThrow(/S3_BUCKET/);
    expect(() => loadConfig({ MASTER_KEYS: 'a:b' })).toThrow(/ACTIVE_KEY_ID/);
    expect(() => loadConfig({ S3_SECRET_ACCESS_KEY: '', PORT: '99999' })).toThrow(/PORT/);
  });
});

describe('producer storage sources', () => {
  it.each([
    ['inbox/app_a/photo.jpg', true],
    ['inbox/app_a/campaign-7/photo.v2.jpg', true],
    ['inbox/app_b/photo.jpg', false], // another app's inbox
    ['inbox/app_a/', false],
    ['inbox/app_a//photo.jpg', false],
    ['inbox/app_a/../app_b/photo.jpg', false],
    ['inbox/app_a/./photo.jpg', false],
    ['inbox/app_a/sub/..', false],
    ['inbox/app_a/%2e%2e/photo.jpg', false],
    ['inbox/app_a/a b.jpg', false],
    ['master.key', false],
    ['objects/app_a/med_x.bin', false],
    ['staging/app_a/med_x.bin', false],
    [`inbox/app_a/${'x'.repeat(600)}`, false],
  ])('%s → %s', (key, ok) => {
    expect(isInboxKeyOf('app_a', key)).toBe(ok);
  });
});
