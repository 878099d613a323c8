import { buildDurationScanArgs, type InputSpec } from './args.js';
import { capToolTimeout, toolTimeoutMs } from './av-limits.js';
import { withToolErrors } from './failure.js';
import { runFfmpeg } from './run.js';

/**
 * The duration of a stream whose container does not state it (WebM from MediaRecorder), from the
 * last packet time ffmpeg reports while copying packets to nowhere: demuxing only, no decoding.
 * The scan stops one second past `capMs`, so an over-long file is measured as over the limit.
 */
export async function scanDuration(input: InputSpec, streamIndex: number, capMs: number, signal?: AbortSignal, maxToolMs?: number): Promise<number | null> {
  let last: number | null = null;
  await withToolErrors('measuring the duration', () =>
    runFfmpeg({
      args: buildDurationScanArgs(input, streamIndex, capMs),
      timeoutMs: capToolTimeout(toolTimeoutMs('scan', capMs), maxToolMs),
      signal,
      onProgressTime: (ms) => {
        last = ms;
      },
    }),
  );
  return last !== null && last > 0 ? Math.round(last) : null;
}
