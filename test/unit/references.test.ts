/**
 * The pure rules of scheduled sends (src/domain/references.ts), as properties over random TTLs, send
 * times, grace and cap (fast-check, many runs), plus the edges by example. No I/O.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  expiredAt,
  expiryNoticeDue,
  isLive,
  liveUntil,
  planReference,
  REF_PATTERN,
  retentionCap,
  scheduleWarnings,
  sendAtProblem,
} from '../../src/domain/references.js';

const S = 1000;
const T0 = Date.parse('2026-12-02T08:00:00.000Z');

/** A media and a send: created some time before now, a TTL within the cap, a send within the cap from now. */
const scenario = fc
  .record({
    cap: fc.integer({ min: 1, max: 400 * 24 * 3600 }),
    ageFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    ttlFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    sendFrac: fc.double({ min: 0, max: 1, noNaN: true }),
    grace: fc.integer({ min: 0, max: 30 * 24 * 3600 }),
    extend: fc.boolean(),
  })
  .map(({ cap, ageFrac, ttlFrac, sendFrac, grace, extend }) => {
    const now = new Date(T0);
    const ttl = Math.max(1, Math.round(ttlFrac * cap));
    const createdAt = new Date(T0 - Math.floor(ageFrac * ttl) * S);
    const expiresAt = new Date(createdAt.getTime() + ttl * S);
    const sendAt = new Date(T0 + Math.round(sendFrac * cap) * S);
    return { now, cap, ttl, createdAt, expiresAt, sendAt, grace, extend };
  });

describe('planReference', () => {
  it('never shortens, never passes the cap, moves only with extend, and warns exactly when it should', () => {
    fc.assert(
      fc.property(scenario, (c) => {
        const plan = planReference({ createdAt: c.createdAt, expiresAt: c.expiresAt, sendAt: c.sendAt, extend: c.extend, graceSeconds: c.grace, maxRetentionSeconds: c.cap });
        const cap = retentionCap(c.createdAt, c.cap).getTime();
        const wanted = c.sendAt.getTime() + c.grace * S;
        const exp = plan.expiresAt.getTime();
        expect(exp).toBeGreaterThanOrEqual(c.expiresAt.getTime());
        expect(exp).toBeLessThanOrEqual(Math.max(cap, c.expiresAt.getTime()));
        if (!c.extend) expect(exp).toBe(c.expiresAt.getTime());
        else expect(exp).toBe(Math.max(c.expiresAt.getTime(), Math.min(wanted, cap)));
        const capped = c.extend && wanted > cap && wanted > c.expiresAt.getTime();
        expect(plan.warnings.includes('RETENTION_CAP_REACHED')).toBe(capped);
        expect(plan.keptUntil?.getTime() ?? null).toBe(capped ? exp : null);
        expect(plan.warnings.includes('EXPIRES_BEFORE_SCHEDULE')).toBe(c.sendAt.getTime() >= exp);
        // With extend and room under the cap, the media outlives the send by the grace.
        if (c.extend && wanted <= cap) expect(exp).toBeGreaterThanOrEqual(wanted);
      }),
      { numRuns: 20_000 },
    );
  });

  it('keeps the media through the send with extend whenever the cap allows it', () => {
    fc.assert(
      fc.property(scenario, (c) => {
        const plan = planReference({ createdAt: c.createdAt, expiresAt: c.expiresAt, sendAt: c.sendAt, extend: true, graceSeconds: c.grace, maxRetentionSeconds: c.cap });
        // Fits: the send comes before the cap and the extended expiry (grace > 0) or the old one.
        const fits = c.sendAt.getTime() < retentionCap(c.createdAt, c.cap).getTime() && (c.grace > 0 || c.sendAt.getTime() < c.expiresAt.getTime());
        expect(plan.warnings.includes('EXPIRES_BEFORE_SCHEDULE')).toBe(!fits && c.sendAt.getTime() >= plan.expiresAt.getTime());
        if (fits) expect(plan.warnings).not.toContain('EXPIRES_BEFORE_SCHEDULE');
      }),
      { numRuns: 20_000 },
    );
  });

  it('by example: a send after expiry warns; extend moves it to sendAt + grace; the cap stops it', () => {
    const createdAt = new Date(T0);
    const expiresAt = new Date(T0 + 3600 * S);
    const sendAt = new Date(T0 + 7200 * S);
    expect(planReference({ createdAt, expiresAt, sendAt, extend: false, graceSeconds: 60, maxRetentionSeconds: 86400 })).toEqual({
      expiresAt, warnings: ['EXPIRES_BEFORE_SCHEDULE'], keptUntil: null,
    });
    expect(planReference({ createdAt, expiresAt, sendAt, extend: true, graceSeconds: 60, maxRetentionSeconds: 86400 })).toEqual({
      expiresAt: new Date(T0 + 7260 * S), warnings: [], keptUntil: null,
    });
    expect(planReference({ createdAt, expiresAt, sendAt, extend: true, graceSeconds: 60, maxRetentionSeconds: 7230 })).toEqual({
      expiresAt: new Date(T0 + 7230 * S), warnings: ['RETENTION_CAP_REACHED'], keptUntil: new Date(T0 + 7230 * S),
    });
    expect(planReference({ createdAt, expiresAt, sendAt, extend: true, graceSeconds: 60, maxRetentionSeconds: 7200 })).toEqual({
      expiresAt: new Date(T0 + 7200 * S), warnings: ['EXPIRES_BEFORE_SCHEDULE', 'RETENTION_CAP_REACHED'], keptUntil: new Date(T0 + 7200 * S),
    });
  });
});

describe('the other rules', () => {
  it('sendAt: not past, not further than the cap from now, a real date', () => {
    const now = new Date(T0);
    expect(sendAtProblem(new Date(T0), now, 60)).toBeNull();
    expect(sendAtProblem(new Date(T0 + 60 * S), now, 60)).toBeNull();
    expect(sendAtProblem(new Date(T0 - 1), now, 60)).toMatch(/past/);
    expect(sendAtProblem(new Date(T0 + 60 * S + 1), now, 60)).toMatch(/MAX_RETENTION_SECONDS/);
    expect(sendAtProblem(new Date('nope'), now, 60)).toMatch(/ISO 8601/);
  });

  it('ref: 1–128 of the safe alphabet', () => {
    for (const ok of ['campaign-42', 'a', 'x'.repeat(128), 'order:7.a_B-9']) expect(REF_PATTERN.test(ok)).toBe(true);
    for (const bad of ['', 'x'.repeat(129), 'has space', 'a/b', 'a%2F', 'é', 'a\nb', '../x']) expect(REF_PATTERN.test(bad)).toBe(false);
  });

  it('live until sendAt + grace; notice window; expiry is the law', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e7 }), fc.integer({ min: -1e7, max: 1e7 }), fc.integer({ min: 1, max: 1e6 }), (grace, offsetMs, notice) => {
        const sendAt = new Date(T0);
        const now = new Date(T0 + offsetMs);
        expect(isLive(sendAt, grace, now)).toBe(offsetMs < grace * S);
        expect(liveUntil(sendAt, grace).getTime()).toBe(T0 + grace * S);
        const expiresAt = new Date(T0);
        expect(expiredAt(expiresAt, now)).toBe(offsetMs >= 0);
        expect(expiryNoticeDue(expiresAt, now, notice)).toBe(offsetMs < 0 && offsetMs >= -notice * S);
        expect(scheduleWarnings(expiresAt, now)).toEqual(offsetMs >= 0 ? ['EXPIRES_BEFORE_SCHEDULE'] : []);
      }),
      { numRuns: 20_000 },
    );
  });
});
