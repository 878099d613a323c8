/**
 * ffmpeg's `-progress` output is blocks of `key=value` lines ending with `progress=continue|end`.
 * The parser is pure and incremental: chunks may split a line anywhere.
 */
export interface ProgressParser {
  /** Feeds a chunk; calls `onTime` with the media time reached, in ms, for each `out_time_us` line. */
  push(chunk: string): void;
}

export function createProgressParser(onTime: (outTimeMs: number) => void): ProgressParser {
  let pending = '';
  return {
    push(chunk: string): void {
      pending += chunk;
      let nl = pending.indexOf('\n');
      while (nl !== -1) {
        const line = pending.slice(0, nl).trim();
        pending = pending.slice(nl + 1);
        // ffmpeg 5.1 writes both out_time_us and out_time_ms, and both are microseconds (a known
        // misnomer); reading only out_time_us avoids counting a block twice.
        if (line.startsWith('out_time_us=')) {
          const us = Number(line.slice('out_time_us='.length));
          if (Number.isFinite(us) && us >= 0) onTime(us / 1000);
        }
        nl = pending.indexOf('\n');
      }
      // A line longer than any ffmpeg writes means this is not progress output: drop it rather than grow.
      if (pending.length > 4096) pending = '';
    },
  };
}

/** Media time reached → percent of the expected duration, clamped to 0..99 (100 is said only when done). */
export function progressPercent(outTimeMs: number, totalMs: number | null): number | null {
  if (totalMs === null || !(totalMs > 0)) return null;
  const p = Math.floor((outTimeMs / totalMs) * 100);
  return Math.max(0, Math.min(99, p));
}

export interface ProgressThrottleOptions {
  /** Minimum time between two reports, so a job does not write its progress to Redis hundreds of times. */
  minIntervalMs?: number;
  now?: () => number;
}

/**
 * Wraps a progress callback so it sees integers 0..100 that only go up, at most one per interval,
 * and always the final 100. A callback that throws is not allowed to break the media job.
 */
export function createProgressThrottle(
  onProgress: ((percent: number) => void) | undefined,
  opts: ProgressThrottleOptions = {},
): (percent: number) => void {
  const minIntervalMs = opts.minIntervalMs ?? 1000;
  const now = opts.now ?? Date.now;
  let last = -1;
  let lastAt = -Infinity;
  return (percent: number): void => {
    if (!onProgress || !Number.isFinite(percent)) return;
    const p = Math.max(0, Math.min(100, Math.floor(percent)));
    if (p <= last) return;
    const t = now();
    if (p < 100 && t - lastAt < minIntervalMs) return;
    last = p;
    lastAt = t;
    try {
      onProgress(p);
    } catch {
      // Progress is advisory; a failing reporter must not fail the normalization.
    }
  };
}
