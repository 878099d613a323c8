/** The pure rules openUrl follows: where a redirect may go, which faults are retried, and how long to wait. */
import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { isRetryableFault, parseRetryAfter, retryDelayMs, RETRYABLE_STATUSES } from '../../src/net/fetch-retry.js';
import { redirectTarget } from '../../src/net/redirect-target.js';
import { UrlRefusedError } from '../../src/net/refusal.js';

function refusedWith(fn: () => unknown): UrlRefusedError {
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UrlRefusedError);
  expect(err).toBeInstanceOf(PermanentError);
  expect((err as UrlRefusedError).code).toBe('VALIDATION_FAILED');
  return err as UrlRefusedError;
}

describe('redirectTarget', () => {
  const from = (u: string) => new URL(u);

  it.each([
    ['http://a.example/x', '/y', 'http://a.example/y'],
    ['http://a.example/x', 'https://b.example/y', 'https://b.example/y'],
    ['https://a.example/x', 'https://b.example/y', 'https://b.example/y'],
    ['https://a.example/dir/x', 'y.png', 'https://a.example/dir/y.png'],
    ['https://a.example/x', '//cdn.example/y', 'https://cdn.example/y'],
  ])('from %s, Location %s leads to %s', (current, location, expected) => {
    expect(redirectTarget(from(current), location, 0).href).toBe(expected);
  });

  it.each([
    ['https://a.example/x', 'http://a.example/x'],
    ['https://a.example/x', 'http://b.example:8080/y'],
    ['https://a.example/x', 'HTTP://a.example/x'],
  ])('refuses the downgrade from %s to %s', (current, location) => {
    const r = refusedWith(() => redirectTarget(from(current), location, 1));
    expect(r.details.reason).toBe('redirect_downgrade');
    expect(r.details.hop).toBe(2);
    expect(r.message).toBe('redirect refused: an https URL may not redirect to plain http');
  });

  it('a relative Location from https stays https', () => {
    expect(redirectTarget(from('https://a.example/x'), '/y', 0).protocol).toBe('https:');
  });

  it('follows three hops by default and refuses the fourth', () => {
    for (const hops of [0, 1, 2]) expect(redirectTarget(from('http://a.example/x'), '/y', hops).href).toBe('http://a.example/y');
    const r = refusedWith(() => redirectTarget(from('http://a.example/x'), '/y', 3));
    expect(r.details).toMatchObject({ reason: 'redirects', maxRedirects: 3 });
    expect(r.message).toBe('URL redirected more than 3 times; at most 3 redirects are followed');
  });

  it('honours a smaller limit, and zero means no redirect at all', () => {
    expect(refusedWith(() => redirectTarget(from('http://a.example/x'), '/y', 1, 1)).details.reason).toBe('redirects');
    expect(refusedWith(() => redirectTarget(from('http://a.example/x'), '/y', 0, 0)).details.reason).toBe('redirects');
  });

  it('refuses a Location that is no URL', () => {
    expect(refusedWith(() => redirectTarget(from('http://a.example/x'), 'http://[::1', 0)).details.reason).toBe('redirect_location');
  });
});

describe('which faults are retried inside the deadline', () => {
  const fault = (code: string) => Object.assign(new Error(code), { code });

  it.each([
    ['ECONNREFUSED', true],
    ['ECONNRESET', true],
    ['EPIPE', true],
    ['UND_ERR_SOCKET', true],
    ['EAI_AGAIN', true],
    ['ENOTFOUND', false],
    ['UND_ERR_CONNECT_TIMEOUT', false],
    ['EHOSTUNREACH', false],
    ['CERT_HAS_EXPIRED', false],
    ['UND_ERR_HEADERS_TIMEOUT', false],
  ])('%s → %s', (code, retried) => {
    expect(isRetryableFault(fault(code))).toBe(retried);
  });

  it('an error without a code is not retried', () => {
    expect(isRetryableFault(new Error('x'))).toBe(false);
    expect(isRetryableFault(null)).toBe(false);
  });

  it.each([
    [408, true],
    [425, true],
    [429, true],
    [500, true],
    [502, true],
    [503, true],
    [504, true],
    [400, false],
    [403, false],
    [404, false],
    [501, false],
    [505, false],
  ])('status %i retried: %s', (status, retried) => {
    expect(RETRYABLE_STATUSES.has(status)).toBe(retried);
  });
});

describe('retry delays', () => {
  it('doubles from 250 ms up to 4 s, half of it jitter', () => {
    expect([1, 2, 3, 4, 5, 6, 9].map((n) => retryDelayMs(n, null, () => 1))).toEqual([250, 500, 1000, 2000, 4000, 4000, 4000]);
    expect([1, 2, 3, 4, 5, 6].map((n) => retryDelayMs(n, null, () => 0))).toEqual([125, 250, 500, 1000, 2000, 2000]);
  });

  it("waits at least as long as the server's Retry-After", () => {
    expect(retryDelayMs(1, 3000, () => 0)).toBe(3000);
    expect(retryDelayMs(5, 100, () => 1)).toBe(4000);
  });

  it.each([
    ['120', 120_000],
    [' 0 ', 0],
    ['Thu, 01 Jan 2026 00:00:30 GMT', 30_000],
    ['Wed, 31 Dec 2025 23:00:00 GMT', 0],
    ['soon', null],
    [null, null],
  ])('Retry-After %j is %s ms', (value, ms) => {
    expect(parseRetryAfter(value, Date.parse('2026-01-01T00:00:00Z'))).toBe(ms);
  });
});
