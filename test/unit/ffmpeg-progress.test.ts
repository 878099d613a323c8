import { describe, expect, it } from 'vitest';
import { createProgressParser, createProgressThrottle, progressPercent } from '../../src/pipeline/ffmpeg/progress.js';

const BLOCK = 'frame=10\nfps=0.00\nout_time_us=1500000\nout_time_ms=1500000\nout_time=00:00:01.500000\nprogress=continue\n';

describe('createProgressParser', () => {
  it('reads out_time_us once per block (not out_time_ms, which is also µs)', () => {
    const seen: number[] = [];
    const p = createProgressParser((ms) => seen.push(ms));
    p.push(BLOCK);
    p.push(BLOCK.replace(/1500000/g, '3000000').replace('continue', 'end'));
    expect(seen).toEqual([1500, 3000]);
  });
  it('handles lines split across chunks, and N/A', () => {
    const seen: number[] = [];
    const p = createProgressParser((ms) => seen.push(ms));
    const text = `out_time_us=N/A\n${BLOCK}`;
    for (let i = 0; i < text.length; i += 3) p.push(text.slice(i, i + 3));
    expect(seen).toEqual([1500]);
  });
  it('drops an endless line instead of growing', () => {
    const seen: number[] = [];
    const p = createProgressParser((ms) => seen.push(ms));
    p.push('x'.repeat(10_000));
    p.push('\nout_time_us=1000\n');
    expect(seen).toEqual([1]);
  });
});

describe('progressPercent', () => {
  it('clamps to 0..99 and needs a duration', () => {
    expect(progressPercent(500, 1000)).toBe(50);
    expect(progressPercent(2000, 1000)).toBe(99);
    expect(progressPercent(-5, 1000)).toBe(0);
    expect(progressPercent(500, null)).toBeNull();
    expect(progressPercent(500, 0)).toBeNull();
  });
});

describe('createProgressThrottle', () => {
  it('reports increasing integers at most once per interval, and always 100', () => {
    let t = 0;
    const seen: number[] = [];
    const report = createProgressThrottle((p) => seen.push(p), { minIntervalMs: 1000, now: () => t });
    report(1.7);
    t = 500;
    report(10); // too soon
    t = 1000;
    report(5); // not an increase over 1? it is: 5 > 1, and 1000 ms passed
    t = 1500;
    report(4); // a decrease is never reported
    t = 1600;
    report(100); // the end is always said
    report(100);
    expect(seen).toEqual([1, 5, 100]);
  });
  it('survives a throwing callback and an absent one', () => {
    const report = createProgressThrottle(() => {
      throw new Error('boom');
    });
    expect(() => report(50)).not.toThrow();
    expect(() => createProgressThrottle(undefined)(50)).not.toThrow();
  });
});
