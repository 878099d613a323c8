/** The pure rules of the one way in: lifetime and input limits, as every route, the CLI and the worker apply them. */
import { describe, expect, it } from 'vitest';
import { deliveredLimitFor, hardCapBytes, limitFor } from '../../src/ingest/limits.js';
import { ttlFor } from '../../src/ingest/ttl.js';

describe('ttlFor', () => {
  const config = { DEFAULT_TTL_SECONDS: 30 * 86_400, MAX_RETENTION_SECONDS: 90 * 86_400 };
  it.each([
    ['nothing asked: the default', undefined, 30 * 86_400],
    ['null (a producer job without one): the default', null, 30 * 86_400],
    ['an hour', 3600, 3600],
    ['exactly the cap', 90 * 86_400, 90 * 86_400],
    ['past the cap: the cap', 365 * 86_400, 90 * 86_400],
  ])('%s', (_name, requested, expected) => {
    expect(ttlFor(config, requested)).toBe(expected);
  });

  it('never passes the cap even when the default would', () => {
    expect(ttlFor({ DEFAULT_TTL_SECONDS: 100, MAX_RETENTION_SECONDS: 50 }, undefined)).toBe(50);
  });
});

describe('limitFor (input) and deliveredLimitFor', () => {
  const deps = { config: { HARD_CAP_BYTES: 100_000_000 } };
  it.each([
    ['image, no override: 50 MB in, 5 MB out', undefined, 'image', 50_000_000, 5_000_000],
    ['video, no override: the hard cap in, 16 MB out', undefined, 'video', 100_000_000, 16_000_000],
    ['sticker: the animated limit bounds the input', undefined, 'sticker', 500_000, 100_000],
    ['document raised by the app', { document: 50_000_000 }, 'document', 50_000_000, 50_000_000],
    ['document lowered by the app', { document: 1_000 }, 'document', 1_000, 1_000],
    ['image lowered by the app: still 50 MB in, made to fit 1 MB', { image: 1_000_000 }, 'image', 50_000_000, 1_000_000],
    ['override past the hard cap', { video: 500_000_000 }, 'video', 100_000_000, 100_000_000],
    ['another kind\'s override does not apply', { document: 50_000_000 }, 'image', 50_000_000, 5_000_000],
  ] as const)('%s', (_name, limits, kind, input, delivered) => {
    expect(limitFor(deps, limits)(kind)).toBe(input);
    expect(deliveredLimitFor(limits)(kind)).toBe(delivered);
  });

  it('a lower configured hard cap binds every kind and override', () => {
    const low = { config: { HARD_CAP_BYTES: 1_000_000 } };
    expect(limitFor(low)('image')).toBe(1_000_000);
    expect(limitFor(low, { document: 50_000_000 })('document')).toBe(1_000_000);
    expect(hardCapBytes(low)).toBe(1_000_000);
    // A configured cap above the built-in one does not raise it.
    expect(hardCapBytes({ config: { HARD_CAP_BYTES: 500_000_000 } })).toBe(100_000_000);
  });
});
