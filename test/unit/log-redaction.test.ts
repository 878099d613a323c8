/**
 * The scrub every log line passes through (src/log.ts `redactSecrets`, pino's streamWrite hook) and
 * the request serializer's URL: credential-named parameters and key-shaped values are blanked,
 * everything else is left as written, and a JSON line stays valid JSON.
 */
import { describe, expect, it } from 'vitest';
import { redactUrl } from '../../src/api/plugins/request-log.js';
import { redactSecrets } from '../../src/log.js';

const KEY = 'mf_ab23cd45_Q1w2E3r4T5y6U7i8O9p0-_AsDfGhJkLzXc';
const WHSEC = 'whsec_Zx9-Yw8_Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8Ba7';

describe('redactSecrets', () => {
  it.each([
    ['api_key query', `/v1/media?api_key=${KEY}`, '/v1/media?api_key=[redacted]'],
    ['token among others', `/x?page=1&token=abc123&limit=5`, '/x?page=1&token=[redacted]&limit=5'],
    ['access_token in a fragment', 'https://h/cb#access_token=abc&state=1', 'https://h/cb#access_token=[redacted]&state=1'],
    ['pre-signed S3 URL', 'https://b.s3/o?X-Amz-Credential=AKIA%2F2024&X-Amz-Signature=deadbeef&X-Amz-Expires=60', 'https://b.s3/o?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]&X-Amz-Expires=60'],
    ['sig, secret, password, client_secret', '?sig=1&secret=2&password=3&client_secret=4&code=5', '?sig=[redacted]&secret=[redacted]&password=[redacted]&client_secret=[redacted]&code=[redacted]'],
    ['harmless parameters kept', '/v1/media?page=0&kind=image&sortBy=name', '/v1/media?page=0&kind=image&sortBy=name'],
    ['a key anywhere', `request id ${KEY} refused`, 'request id mf_ab23cd45_[redacted] refused'],
    ['a key in a path', `/v1/media/${KEY}/content`, '/v1/media/mf_ab23cd45_[redacted]/content'],
    ['a webhook secret anywhere', `signed with ${WHSEC}.`, 'signed with whsec_[redacted].'],
    ['file URL token', '/v1/files/med_abc.1700000000.c2lnbmF0dXJl', '/v1/files/[redacted]'],
    ['upload slot token', 'PUT https://h/v1/uploads/Abc_def-123?x=1', 'PUT https://h/v1/uploads/[redacted]?x=1'],
    ['bearer credentials', 'Authorization: Bearer abcdefghijklmnop', 'Authorization: Bearer [redacted]'],
    ['URL user info', 'postgres://app:hunter2hunter2@db:5432/x', 'postgres://app:[redacted]@db:5432/x'],
    ['not a key: too short', 'mf_notakey_atall', 'mf_notakey_atall'],
  ])('%s', (_label, input, expected) => {
    expect(redactSecrets(input)).toBe(expected);
  });

  it('keeps a serialized log line valid JSON, escapes and all', () => {
    const err = new Error(`fetch of https://cdn.example/a.png?token=${KEY}&x="q"\\ failed`);
    const line = `${JSON.stringify({ level: 50, reqId: KEY, err: { message: err.message, stack: err.stack }, url: `/v1/media?api_key=${KEY}` })}\n`;
    const out = redactSecrets(line);
    expect(out.endsWith('\n')).toBe(true);
    const parsed = JSON.parse(out) as { reqId: string; err: { message: string; stack: string }; url: string };
    expect(out).not.toContain(KEY.slice(12));
    expect(parsed.reqId).toBe('mf_ab23cd45_[redacted]');
    expect(parsed.err.message).toBe('fetch of https://cdn.example/a.png?token=[redacted]&x="q"\\ failed');
    expect(parsed.url).toBe('/v1/media?api_key=[redacted]');
  });

  it('leaves a line without anything to redact untouched', () => {
    const line = '{"level":30,"msg":"media ready","mediaId":"med_x","sizeBytes":12}\n';
    expect(redactSecrets(line)).toBe(line);
  });
});

describe('redactUrl (the request serializer)', () => {
  it('blanks the path token and credential parameters of a request URL', () => {
    expect(redactUrl(`/v1/files/tok.1.sig?access_token=${KEY}`)).toBe('/v1/files/[redacted]?access_token=[redacted]');
    expect(redactUrl('/v1/media?page=2')).toBe('/v1/media?page=2');
    expect(redactUrl('/v1/media?name=a%20b')).toBe('/v1/media?name=a%20b');
  });

  it('sees through percent-escapes the router would decode', () => {
    expect(redactUrl('/v1/%66iles/tok.1.sig')).toBe('/v1/files/[redacted]');
    expect(redactUrl(`/v1/media?api%5Fkey=${encodeURIComponent(KEY).replace(/_/g, '%5F')}`)).toBe('/v1/media?api_key=[redacted]');
    expect(redactUrl(`/v1/media/${KEY.replace(/_/g, '%5F')}`)).toBe('/v1/media/mf_ab23cd45_[redacted]');
  });
});
