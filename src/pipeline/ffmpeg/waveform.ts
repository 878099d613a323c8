/**
 * A voice note's waveform: `bars` amplitude values 0..100, computed while ffmpeg streams mono
 * s16le PCM, so memory is a bounded number of windows, never the audio.
 *
 * Each window keeps its sum of squares. Windows start short (20 ms, so a 2-second note still has
 * 100 of them) and, whenever `maxWindows` are held, neighbours are merged in pairs and the window
 * doubles: an hour-long note ends with the same bounded count. At the end windows are grouped into
 * bars, a bar's value is its RMS, and bars are scaled to the loudest one (as messaging apps draw
 * them: the shape matters, not the absolute level). A note quieter than -60 dBFS is drawn flat.
 */
export interface WaveformOptions {
  sampleRate: number;
  bars?: number;
  /** Initial window length. */
  windowMs?: number;
  /** Windows held before pairs are merged (even). */
  maxWindows?: number;
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
  const maxWindows = Math.max(2, Math.floor((opts.maxWindows ?? 4096) / 2) * 2);
  let perWindow = Math.max(1, Math.round((opts.sampleRate * (opts.windowMs ?? 20)) / 1000));
  let windowSums: number[] = [];
  let windowCounts: number[] = [];
  let sum = 0;
  let count = 0;
  let samples = 0;
  let oddByte: number | null = null;

  const closeWindow = (): void => {
    windowSums.push(sum);
    windowCounts.push(count);
    sum = 0;
    count = 0;
    if (windowSums.length === maxWindows) {
      const s: number[] = [];
      const c: number[] = [];
      for (let i = 0; i < maxWindows; i += 2) {
        s.push(windowSums[i]! + windowSums[i + 1]!);
        c.push(windowCounts[i]! + windowCounts[i + 1]!);
      }
      windowSums = s;
      windowCounts = c;
      perWindow *= 2;
    }
  };

  const addSample = (v: number): void => {
    sum += v * v;
    count += 1;
    samples += 1;
    if (count === perWindow) closeWindow();
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
      if (count > 0) closeWindow();
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
