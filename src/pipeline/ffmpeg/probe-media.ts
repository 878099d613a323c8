import { PermanentError } from '../../domain/errors.js';
import { buildProbeArgs } from './args.js';
import { capToolTimeout, streamCountRefusal, toolTimeoutMs } from './av-limits.js';
import { withToolErrors } from './failure.js';
import { parseProbe, type ProbeDescription } from './probe.js';
import { runFfprobe } from './run.js';

export interface ProbeMediaInput {
  path: string;
  demuxer: string;
  signal?: AbortSignal | undefined;
  /** Caps the probe's timeout (see NormalizeInput.maxToolMs). */
  maxToolMs?: number | undefined;
  /** An untrusted input with more streams is refused (MEDIA_REJECTED) here, before any ffmpeg run reads it; unset for our own outputs. */
  maxStreams?: number | undefined;
}

/** ffprobe with the forced (and only allowed) demuxer; unreadable media is a final MEDIA_REJECTED, a killed probe is transient. */
export async function probeMedia(input: ProbeMediaInput): Promise<ProbeDescription> {
  const { stdout } = await withToolErrors('probing the media', () =>
    runFfprobe({ args: buildProbeArgs(input.path, input.demuxer), timeoutMs: capToolTimeout(toolTimeoutMs('probe', null), input.maxToolMs), signal: input.signal }),
  );
  let json: unknown;
  try {
    json = JSON.parse(stdout.toString('utf8'));
  } catch {
    throw new PermanentError('MEDIA_REJECTED', 'probing the media: ffprobe described it in invalid JSON');
  }
  const probe = parseProbe(json);
  const refusal = input.maxStreams === undefined ? null : streamCountRefusal(probe.streamCounts, input.maxStreams);
  if (refusal) throw new PermanentError('MEDIA_REJECTED', refusal);
  return probe;
}
