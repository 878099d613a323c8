import { access, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '../domain/errors.js';
import { canonicalMime } from '../domain/policies.js';
import { buildPosterArgs, buildVideoArgs, videoCopied, type InputSpec } from './ffmpeg/args.js';
import { capToolTimeout, toolTimeoutMs, VIDEO_LIMITS, type VideoLimits } from './ffmpeg/av-limits.js';
import { decideVideo, formatMegabytes, posterSeekSeconds, refitVideo, remuxedDurationMs, type VideoDecision } from './ffmpeg/decide-video.js';
import { demuxerFor } from './ffmpeg/demuxer.js';
import { withToolErrors } from './ffmpeg/failure.js';
import { probeMedia } from './ffmpeg/probe-media.js';
import type { ProbeDescription } from './ffmpeg/probe.js';
import { createProgressThrottle, progressPercent } from './ffmpeg/progress.js';
import { runFfmpeg } from './ffmpeg/run.js';
import { scanDuration } from './ffmpeg/scan-duration.js';
import { reencodedTransform, type NormalizeInput, type NormalizeOutput } from './normalize-types.js';

type Decided = Exclude<VideoDecision, { action: 'reject' }>;

/**
 * Video → MP4 (H.264 + AAC, faststart) within the delivered limit, with a JPEG poster: probe,
 * decide (remux when compliant and small enough), run, check the size (a remux or stream copy that
 * came out too large is encoded; an encode over the limit gets one retry at a lower bitrate, then
 * FILE_TOO_LARGE), then the stored facts and the poster.
 *
 * Every ffmpeg or ffprobe process costs about 100 ms of CPU before it reads a byte (Debian's build
 * loads 215 shared libraries), several times what a remux itself costs. So a compliant MP4 takes
 * two: the probe, and one run that writes both the remuxed file and the poster; the stored facts
 * come from the probe, since a stream copy keeps them. An encode also probes its output and takes
 * the poster from it (a few percent of the encode, and the poster shows what was stored).
 *
 * The delivered limit is `input.deliveredLimitBytes` (a per-app override) when set, else the
 * limits' own `maxBytes` (the kind's policy).
 */
export async function normalizeVideo(input: NormalizeInput, baseLimits: VideoLimits = VIDEO_LIMITS): Promise<NormalizeOutput> {
  const limits: VideoLimits = input.deliveredLimitBytes !== undefined ? { ...baseLimits, maxBytes: input.deliveredLimitBytes } : baseLimits;
  const mime = canonicalMime(input.sniffedMime);
  const demuxer = demuxerFor(mime);
  if (!demuxer) throw new PermanentError('UNSUPPORTED_MEDIA_TYPE', `${mime} cannot be read as video`);
  const source: InputSpec = { path: input.inputPath, demuxer, threads: limits.threads };
  const report = createProgressThrottle(input.onProgress);

  const probe = await probeMedia({ path: input.inputPath, demuxer, signal: input.signal, maxToolMs: input.maxToolMs, maxStreams: limits.maxStreams });
  const sizeBytes = (await stat(input.inputPath)).size;
  let durationMs = probe.durationMs;
  if (durationMs === null && probe.video) durationMs = await scanDuration(source, probe.video.index, limits.maxDurationMs, input.signal, input.maxToolMs);

  const first = decideVideo(probe, { durationMs, sizeBytes }, limits);
  if (first.action === 'reject') throw new PermanentError(first.code, first.reason);
  let decision: Decided = first;

  const outputPath = join(input.scratchDir, 'video.mp4');
  const posterPath = join(input.scratchDir, 'poster.jpg');
  let outBytes = 0;
  let encodes = 0;
  // The main run is 95% of the work (an output probe and a poster run, when needed, are the rest). A second run
  // (a retry) fills what is left above what the first one reached, so progress never goes back.
  let reached = 0;
  for (;;) {
    const isEncode = decision.action === 'transcode' && decision.video.mode === 'encode';
    if (isEncode) encodes += 1;
    const from = reached;
    const run: Decided = decision;
    input.log.debug({ decision: run, encodes }, 'video decision');
    // A run that copies the video also writes the poster (ignored by an encode): the budget is both.
    const posterMs = videoCopied(run) ? toolTimeoutMs('poster', null) : 0;
    await withToolErrors(run.action === 'remux' ? 'remuxing the video' : 'transcoding the video', () =>
      runFfmpeg({
        args: buildVideoArgs(source, run, limits.maxDurationMs, outputPath, { path: posterPath, seekSeconds: posterSeekSeconds(run.durationMs) }),
        timeoutMs: capToolTimeout(toolTimeoutMs(isEncode ? 'encode' : 'copy', run.durationMs) + posterMs, input.maxToolMs),
        signal: input.signal,
        log: input.log,
        onProgressTime: (ms) => {
          const p = progressPercent(ms, run.durationMs);
          if (p === null) return;
          reached = Math.max(reached, from + ((95 - from) * p) / 100);
          report(reached);
        },
      }),
    );
    outBytes = (await stat(outputPath)).size;
    if (outBytes <= limits.maxBytes) break;
    const next: VideoDecision | null = !isEncode
      ? decideVideo(probe, { durationMs, sizeBytes, forceEncode: true }, limits)
      : encodes < 2
        ? refitVideo(run, outBytes, limits)
        : null;
    if (next?.action === 'reject') throw new PermanentError(next.code, next.reason);
    if (!next) {
      // Only an encode gets here: a remux or a copy that came out too large is always encoded next.
      const kbps = run.action === 'transcode' && run.video.mode === 'encode' ? run.video.maxrateKbps : 0;
      throw new PermanentError(
        'FILE_TOO_LARGE',
        `the video does not fit ${formatMegabytes(limits.maxBytes)}: re-encoded at ${kbps} kbit/s it is still ${(outBytes / 1_000_000).toFixed(1)} MB` +
          (encodes < 2 ? `, and a lower bitrate would be under the ${limits.minVideoKbps} kbit/s floor` : ''),
      );
    }
    input.log.info({ outBytes, maxBytes: limits.maxBytes }, 'video over the size limit; encoding again at a lower bitrate');
    decision = next;
  }

  const out = await storedFacts(input, probe, decision, demuxer, outputPath);
  // A copied video's poster came from the run; an encode's is taken from what it stored, and so is
  // one the run could not write (a seek past a duration the container overstated).
  if (!videoCopied(decision) || !(await exists(posterPath))) {
    const seekSeconds = posterSeekSeconds(out.durationMs);
    await withToolErrors('extracting the poster frame', () =>
      runFfmpeg({
        args: buildPosterArgs({ path: outputPath, demuxer: 'mov', threads: limits.threads, seekSeconds }, posterPath),
        timeoutMs: capToolTimeout(toolTimeoutMs('poster', null), input.maxToolMs),
        signal: input.signal,
        log: input.log,
      }),
    );
  }
  report(100);

  const transform = decision.action === 'remux' ? 'remuxed' : reencodedTransform(mime, 'video/mp4');
  input.log.info({ transform, inBytes: sizeBytes, outBytes, ...out }, 'video normalized');
  return {
    outputPath,
    mimeType: 'video/mp4',
    transform,
    width: out.width,
    height: out.height,
    durationMs: out.durationMs,
    pages: null,
    waveform: null,
    variants: [{ name: 'poster', path: posterPath, mimeType: 'image/jpeg' }],
  };
}

interface StoredFacts {
  width: number;
  height: number;
  durationMs: number;
}

/**
 * The displayed size and duration of the stored MP4. A remux of an MP4 stores the probed streams
 * unchanged (the display matrix included), so the input's probe answers; an encode, a copy beside
 * an encoded track, or a Matroska/AVI input (whose timings are the muxer's word, not the packets')
 * is probed, which also checks that H.264 came out.
 */
async function storedFacts(input: NormalizeInput, probe: ProbeDescription, decision: Decided, demuxer: string, outputPath: string): Promise<StoredFacts> {
  const known = decision.action === 'remux' && demuxer === 'mov' ? remuxedDurationMs(probe, decision) : null;
  if (known !== null) return { width: decision.width, height: decision.height, durationMs: known };
  const out = await probeMedia({ path: outputPath, demuxer: 'mov', signal: input.signal, maxToolMs: input.maxToolMs });
  if (!out.video || out.video.codec !== 'h264') throw new Error('transcoding the video: the output has no H.264 stream');
  return { width: out.video.displayWidth, height: out.video.displayHeight, durationMs: out.durationMs ?? decision.durationMs };
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
