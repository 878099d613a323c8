import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '../domain/errors.js';
import { canonicalMime } from '../domain/policies.js';
import { buildPosterArgs, buildVideoArgs, type InputSpec } from './ffmpeg/args.js';
import { capToolTimeout, toolTimeoutMs, VIDEO_LIMITS, type VideoLimits } from './ffmpeg/av-limits.js';
import { decideVideo, formatMegabytes, refitVideo, type VideoDecision } from './ffmpeg/decide-video.js';
import { demuxerFor } from './ffmpeg/demuxer.js';
import { withToolErrors } from './ffmpeg/failure.js';
import { probeMedia } from './ffmpeg/probe-media.js';
import { createProgressThrottle, progressPercent } from './ffmpeg/progress.js';
import { runFfmpeg } from './ffmpeg/run.js';
import { scanDuration } from './ffmpeg/scan-duration.js';
import { reencodedTransform, type NormalizeInput, type NormalizeOutput } from './normalize-types.js';

type Decided = Exclude<VideoDecision, { action: 'reject' }>;

/**
 * Video → MP4 (H.264 + AAC, faststart) within the delivered limit, with a JPEG poster: probe,
 * decide (remux when compliant and small enough), run, check the size (a remux or stream copy that
 * came out too large is encoded; an encode over the limit gets one retry at a lower bitrate, then
 * FILE_TOO_LARGE), probe the output for the stored facts, grab the poster.
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
  let outBytes = 0;
  let encodes = 0;
  // The main run is 95% of the work (the output probe and poster are the rest). A second run
  // (a retry) fills what is left above what the first one reached, so progress never goes back.
  let reached = 0;
  for (;;) {
    const isEncode = decision.action === 'transcode' && decision.video.mode === 'encode';
    if (isEncode) encodes += 1;
    const from = reached;
    const run: Decided = decision;
    input.log.debug({ decision: run, encodes }, 'video decision');
    await withToolErrors(run.action === 'remux' ? 'remuxing the video' : 'transcoding the video', () =>
      runFfmpeg({
        args: buildVideoArgs(source, run, limits.maxDurationMs, outputPath),
        timeoutMs: capToolTimeout(toolTimeoutMs(isEncode ? 'encode' : 'copy', run.durationMs), input.maxToolMs),
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

  const out = await probeMedia({ path: outputPath, demuxer: 'mov', signal: input.signal, maxToolMs: input.maxToolMs });
  if (!out.video || out.video.codec !== 'h264') throw new Error('transcoding the video: the output has no H.264 stream');

  const posterPath = join(input.scratchDir, 'poster.jpg');
  const outDurationMs = out.durationMs ?? decision.durationMs;
  const seekSeconds = Math.min(1, outDurationMs / 2000);
  await withToolErrors('extracting the poster frame', () =>
    runFfmpeg({
      args: buildPosterArgs({ path: outputPath, demuxer: 'mov', threads: limits.threads, seekSeconds }, posterPath),
      timeoutMs: capToolTimeout(toolTimeoutMs('poster', null), input.maxToolMs),
      signal: input.signal,
      log: input.log,
    }),
  );
  report(100);

  const transform = decision.action === 'remux' ? 'remuxed' : reencodedTransform(mime, 'video/mp4');
  input.log.info(
    { transform, inBytes: sizeBytes, outBytes, width: out.video.displayWidth, height: out.video.displayHeight, durationMs: outDurationMs },
    'video normalized',
  );
  return {
    outputPath,
    mimeType: 'video/mp4',
    transform,
    width: out.video.displayWidth,
    height: out.video.displayHeight,
    durationMs: outDurationMs,
    pages: null,
    waveform: null,
    variants: [{ name: 'poster', path: posterPath, mimeType: 'image/jpeg' }],
  };
}
