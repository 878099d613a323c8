import { describe, expect, it } from 'vitest';
import { createWaveformAccumulator } from '../../src/pipeline/ffmpeg/waveform.js';

/** s16le samples of a sine whose amplitude follows `envelope(t)` (0..1), t in 0..1. */
function pcm(seconds: number, rate: number, envelope: (t: number) => number): Buffer {
  const n = Math.round(seconds * rate);
  const buf = Buffer.alloc(n * 2);
  for (let i = 0; i < n; i++) buf.writeInt16LE(Math.round(Math.sin((2 * Math.PI * 440 * i) / rate) * 32000 * envelope(i / n)), i * 2);
  return buf;
}

describe('createWaveformAccumulator', () => {
  it('64 bars 0..100 that follow a rising envelope, the loudest at 100', () => {
    const w = createWaveformAccumulator({ sampleRate: 4000 });
    w.push(pcm(6.4, 4000, (t) => t));
    const bars = w.finish();
    expect(bars).toHaveLength(64);
    expect(Math.max(...bars)).toBe(100);
    expect(bars[0]).toBeLessThan(3);
    for (let i = 1; i < 64; i++) expect(bars[i]!).toBeGreaterThanOrEqual(bars[i - 1]!);
    expect(bars[31]).toBeGreaterThan(45);
    expect(bars[31]).toBeLessThan(55);
    expect(w.samples).toBe(25600);
  });

  it('chunking, even splitting samples in half, does not change the result', () => {
    const data = pcm(3, 4000, (t) => (t < 0.5 ? 0.2 : 1));
    const whole = createWaveformAccumulator({ sampleRate: 4000 });
    whole.push(data);
    const split = createWaveformAccumulator({ sampleRate: 4000 });
    for (let i = 0; i < data.length; i += 333) split.push(data.subarray(i, i + 333));
    expect(split.finish()).toEqual(whole.finish());
    expect(split.samples).toBe(12000);
  });

  it('silence and near-silence draw flat; no audio gives 64 zeros', () => {
    const quiet = createWaveformAccumulator({ sampleRate: 4000 });
    quiet.push(pcm(1, 4000, () => 0.0005));
    expect(quiet.finish()).toEqual(new Array(64).fill(0));
    expect(createWaveformAccumulator({ sampleRate: 4000 }).finish()).toEqual(new Array(64).fill(0));
  });

  it('a note shorter than 64 windows still yields 64 bars', () => {
    const w = createWaveformAccumulator({ sampleRate: 4000, windowMs: 100 });
    w.push(pcm(0.5, 4000, (t) => (t < 0.5 ? 0.1 : 1)));
    const bars = w.finish();
    expect(bars).toHaveLength(64);
    expect(bars[0]).toBeLessThan(20);
    expect(bars[63]).toBe(100);
  });
});

describe('bounded memory', () => {
  it('merging windows keeps the shape: an hour-like stream with few windows equals the unmerged result', () => {
    const data = pcm(6.4, 4000, (t) => Math.abs(Math.sin(t * 7)));
    const merged = createWaveformAccumulator({ sampleRate: 4000, maxWindows: 128 });
    const plain = createWaveformAccumulator({ sampleRate: 4000, maxWindows: 1_000_000 });
    merged.push(data);
    plain.push(data);
    const a = merged.finish();
    const b = plain.finish();
    // 320 windows of 20 ms merged down to 80 of 80 ms: bars may differ by rounding at their edges only.
    for (let i = 0; i < 64; i++) expect(Math.abs(a[i]! - b[i]!), `bar ${i}`).toBeLessThanOrEqual(6);
  });
});
