import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '../domain/errors.js';
import { canonicalMime } from '../domain/policies.js';
import { buildPosterArgs, buildVideoArgs, type InputSpec } from './ffmpeg/args.js';
import { capToolTimeout, toolTimeoutMs, VIDEO_LIMITS, type VideoLimits } from './ffmpeg/av-limits.js';
import { decideVideo, refitVideo, type VideoDecision } from './ffmpeg/decide-video.js';
import { demuxerFor } from './ffmpeg/demuxer.js';
import { withToolErrors } from './ffmpeg/failure.js';
import { probeMedia } from './ffmpeg/probe-media.js';
import { createProgressThrottle, progressPercent } from './ffmpeg/progress.js';
import { runFfmpeg } from './ffmpeg/run.js';
import { scanDuration } from './ffmpeg/scan-duration.js';
import { reencodedTransform, type NormalizeInput, type NormalizeOutput } from './normalize-types.js';

type Decided = Exclude<VideoDecision, { action: 'reject' }>;

/**
 * Video → MP4 (H.264 + AAC, faststart) ≤ 16 MB with a JPEG poster: probe, decide (remux when
 * compliant), run, check the size (one forced re-encode or one bitrate refit when over), probe the
 * output for the stored facts, grab the poster.
 */
export async function normalizeVideo(input: NormalizeInput, limits: VideoLimits = VIDEO_LIMITS): Promise<NormalizeOutput> {
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
  if (first.action === 'reject') throw new PermanentError('MEDIA_REJECTED', first.reason);
  let decision: Decided = first;

  const outputPath = join(input.scratchDir, 'video.mp4');
  let outBytes = 0;
  for (let attempt = 0; ; attempt++) {
    input.log.debug({ decision, attempt }, 'video decision');
    await withToolErrors(decision.action === 'remux' ? 'remuxing the video' : 'transcoding the video', () =>
      runFfmpeg({
        args: buildVideoArgs(source, decision, limits.maxDurationMs, outputPath),
        timeoutMs: capToolTimeout(toolTimeoutMs(decision.action === 'remux' ? 'copy' : 'encode', decision.durationMs), input.maxToolMs),
        signal: input.signal,
        log: input.log,
        onProgressTime: (ms) => {
          const p = progressPercent(ms, decision.durationMs);
          // The main run is 95% of the work; the output probe and poster are the rest.
          if (p !== null) report(Math.min(95, p));
        },
      }),
    );
    outBytes = (await stat(outputPath)).size;
    if (outBytes <= limits.maxBytes) break;
    const next: VideoDecision | null =
      attempt >= 2
        ? null
        : decision.action === 'remux' || (decision.action === 'transcode' && decision.video.mode === 'copy')
          ? decideVideo(probe, { durationMs, sizeBytes, forceEncode: true }, limits)
          : refitVideo(decision, outBytes, limits);
    if (!next || next.action === 'reject') {
      throw new PermanentError(
        'MEDIA_REJECTED',
        next?.reason ?? `the video does not fit ${limits.maxBytes / 1_000_000} MB even re-encoded (${(outBytes / 1_000_000).toFixed(1)} MB)`,
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
