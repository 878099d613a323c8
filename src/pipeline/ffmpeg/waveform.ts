/**
 * A voice note's waveform: `bars` amplitude values 0..100, computed while ffmpeg streams mono
 * s16le PCM, so memory is one number per window (36,000 for an hour at 100 ms), never the audio.
 *
 * Each window keeps its sum of squares; at the end windows are grouped into bars, a bar's value is
 * its RMS, and bars are scaled to the loudest one (as messaging apps draw them: the shape matters,
 * not the absolute level). A note quieter than -60 dBFS throughout is drawn flat.
 */
export interface WaveformOptions {
  sampleRate: number;
  bars?: number;
  windowMs?: number;
}

export interface WaveformAccumulator {
  push(chunk: Buffer): void;
  finish(): number[];
  /** Samples seen so far (the decoded duration is samples / sampleRate). */
  readonly samples: number;
}

const SILENCE_RMS = 32768 * 0.001;

export function createWaveformAccumulator(opts: WaveformOptions): WaveformAccumulator {
  const bars = opts.bars ?? 64;
  const perWindow = Math.max(1, Math.round((opts.sampleRate * (opts.windowMs ?? 100)) / 1000));
  const windowSums: number[] = [];
  const windowCounts: number[] = [];
  let sum = 0;
  let count = 0;
  let samples = 0;
  let oddByte: number | null = null;

  const addSample = (s: number): void => {
    sum += s * s;
    count += 1;
    samples += 1;
    if (count === perWindow) {
      windowSums.push(sum);
      windowCounts.push(count);
      sum = 0;
      count = 0;
    }
  };

  return {
    get samples() {
      return samples;
    },
    push(chunk: Buffer): void {
      let i = 0;
      // A chunk boundary may split a sample: finish the one started in the previous chunk.
      if (oddByte !== null && chunk.length > 0) {
        const v = (chunk[0]! << 8) | oddByte;
        addSample(v >= 0x8000 ? v - 0x10000 : v);
        oddByte = null;
        i = 1;
      }
      const end = i + Math.floor((chunk.length - i) / 2) * 2;
      for (; i < end; i += 2) addSample(chunk.readInt16LE(i));
      if (end < chunk.length) oddByte = chunk[end]!;
    },
    finish(): number[] {
      if (count > 0) {
        windowSums.push(sum);
        windowCounts.push(count);
        sum = 0;
        count = 0;
      }
      const n = windowSums.length;
      if (n === 0) return new Array<number>(bars).fill(0);
      const rms: number[] = [];
      for (let b = 0; b < bars; b++) {
        // Fewer windows than bars (a very short note): each bar shows the window under it.
        const from = Math.floor((b * n) / bars);
        const to = Math.max(from + 1, Math.floor(((b + 1) * n) / bars));
        let s = 0;
        let c = 0;
        for (let w = from; w < to && w < n; w++) {
          s += windowSums[w]!;
          c += windowCounts[w]!;
        }
        rms.push(c > 0 ? Math.sqrt(s / c) : 0);
      }
      const peak = Math.max(...rms);
      if (peak < SILENCE_RMS) return new Array<number>(bars).fill(0);
      return rms.map((r) => Math.round((r / peak) * 100));
    },
  };
}
