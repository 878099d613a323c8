/** Pure rules of the domain and the API helpers: tables, no I/O. */
import { describe, expect, it } from 'vitest';
import { signFileToken, verifyFileToken, deriveSecret } from '../../src/domain/file-token.js';
import { isInboxKeyOf, MEDIA_PATH_PATTERN, newApiKey, newMediaId, newMediaPath } from '../../src/domain/ids.js';
import { canonicalMime, declaredAgrees, inferKind, inputLimitBytes, kindAccepts } from '../../src/domain/policies.js';
import { contentDisposition, parseRange } from '../../src/api/serve-content.js';
import { checkType } from '../../src/pipeline/stage-upload.js';
import { decideKind } from '../../src/pipeline/process-media.js';
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

  it('uses decimal limits, per-app overrides, and never passes the hard cap', () => {
    expect(inputLimitBytes('image')).toBe(5_000_000);
    expect(inputLimitBytes('sticker')).toBe(500_000);
    expect(inputLimitBytes('document', 50_000_000)).toBe(50_000_000);
    expect(inputLimitBytes('document', 500_000_000)).toBe(100_000_000);
  });

  it('checks type at the door and on the whole file', () => {
    expect(() => checkType({ mime: 'application/pdf', ext: 'pdf', raw: 'application/pdf' }, 'image', 'application/pdf')).toThrow(/not accepted for kind image/);
    expect(() => checkType({ mime: null, ext: null, raw: null }, undefined, null)).toThrow(/recognised/);
    expect(checkType({ mime: 'application/zip', ext: 'zip', raw: 'application/zip' }, undefined, null)).toBe('document');
    expect(() => decideKind('image', 'image/png', 'image/jpeg', 10)).toThrow(/contradicts/);
    expect(() => decideKind('image', 'image/png', null, 5_000_001)).toThrow(/larger than the limit/);
    expect(decideKind(null, 'audio/mpeg', null, 10)).toBe('audio');
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
