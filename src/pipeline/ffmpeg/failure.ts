import { PermanentError } from '../../domain/errors.js';
import type { Tool } from './run.js';

export interface ToolFailure {
  tool: Tool;
  exitCode: number | null;
  exitSignal: string | null;
  stderrTail: string;
  timedOut: boolean;
  /** The wall-clock limit the run hit, when `timedOut`. */
  timeoutMs?: number | null | undefined;
}

/**
 * What ffmpeg and ffprobe say when the bytes themselves are at fault. Retrying such a file gives
 * the same answer, so these become a final MEDIA_REJECTED; anything else (killed by a signal — the
 * OOM killer, a timeout on a busy machine, EAGAIN, a full disk) stays transient and is retried.
 */
const CONTENT_PATTERNS: readonly RegExp[] = [
  /Invalid data found when processing input/i,
  /moov atom not found/i,
  /could not find codec parameters/i,
  /EBML header parsing failed/i,
  /Error while decoding stream/i,
  /Invalid NAL unit size/i,
  /does not contain any stream/i,
  /matches no streams/i,
  /decoding for stream \d+ failed/i,
  /Header missing/i,
  /no frame!/i,
  /Invalid frame dimensions/i,
  /partial file/i,
  /Format .* detected only with low score/i,
];

/**
 * Decides the failure kind from how the tool ended, in one place (CONVENTIONS 7). ffprobe runs
 * only on our scratch file, so any exit code from it (not a signal) means it could not read the
 * media; ffmpeg exits 1 for our own mistakes too, so only known content messages are final.
 *
 * Our own wall-clock timeout is final too: the budgets (`toolTimeoutMs`) are about ten times what
 * the work takes on this hardware, so a run that reaches one is stuck on its input (a stream that
 * never ends, a pathological file). Retrying would hold a worker that long again, per attempt, for
 * every such upload. Other signals (the OOM killer, an operator) stay transient.
 */
export function classifyToolFailure(f: ToolFailure): 'content' | 'transient' {
  if (f.timedOut) return 'content';
  if (f.exitSignal !== null || f.exitCode === null) return 'transient';
  if (f.tool === 'ffprobe') return 'content';
  return CONTENT_PATTERNS.some((re) => re.test(f.stderrTail)) ? 'content' : 'transient';
}

/** "30 s", "1.5 s": a limit as the error message says it. */
export function formatSeconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(1))} s`;
}

/** The error a step throws for a failed tool run: PermanentError for content, a plain Error otherwise. */
export function toolFailureError(f: ToolFailure, what: string): Error {
  const tail = summarizeStderr(f.stderrTail);
  if (f.timedOut) {
    const limit = f.timeoutMs ? ` within ${formatSeconds(f.timeoutMs)}` : ' in time';
    return new PermanentError('MEDIA_REJECTED', `${what}: ${f.tool} did not finish${limit} and was stopped (the input stalls or is too costly to process)`);
  }
  if (classifyToolFailure(f) === 'content') {
    return new PermanentError('MEDIA_REJECTED', `${what}: the media could not be decoded${tail ? ` (${tail})` : ''}`);
  }
  const how = f.timedOut ? 'timed out' : f.exitSignal ? `was killed by ${f.exitSignal}` : `exited with code ${f.exitCode}`;
  return new Error(`${what}: ${f.tool} ${how}${tail ? ` (${tail})` : ''}`);
}

/**
 * The last meaningful stderr line, without the `[demuxer @ 0x…]` prefix or the scratch path, so an
 * error message carries the reason and nothing of our file system.
 */
export function summarizeStderr(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.replace(/^\[[^\]]*@ 0x[0-9a-f]+\]\s*/i, '').replace(/file:\S*?(?=:\s|\s|$)/g, 'input').trim())
    .filter((l) => l.length > 0);
  const last = lines[lines.length - 1] ?? '';
  return last.length > 200 ? `${last.slice(0, 200)}…` : last;
}

/** Runs a tool step, turning a ToolExitError into the step's PermanentError or transient Error. */
export async function withToolErrors<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (isToolFailure(err)) throw toolFailureError(err, what);
    throw err;
  }
}

export function isToolFailure(err: unknown): err is ToolFailure {
  return err instanceof Error && err.name === 'ToolExitError' && 'stderrTail' in err && 'tool' in err;
}
