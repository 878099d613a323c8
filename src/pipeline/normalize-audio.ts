import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '../domain/errors.js';
import { canonicalMime } from '../domain/policies.js';
import { buildAudioArgs, buildAudioRemuxArgs, type InputSpec } from './ffmpeg/args.js';
import { AUDIO_LIMITS, capToolTimeout, toolTimeoutMs, type AudioLimits } from './ffmpeg/av-limits.js';
import { decideAudio, refitAudio, type AudioDecision } from './ffmpeg/decide-audio.js';
import { formatMegabytes } from './ffmpeg/decide-video.js';
import { demuxerFor } from './ffmpeg/demuxer.js';
import { withToolErrors } from './ffmpeg/failure.js';
import { probeMedia } from './ffmpeg/probe-media.js';
import { createProgressThrottle, progressPercent } from './ffmpeg/progress.js';
import { runFfmpeg } from './ffmpeg/run.js';
import { scanDuration } from './ffmpeg/scan-duration.js';
import { reencodedTransform, type NormalizeInput, type NormalizeOutput } from './normalize-types.js';

type AudioEncodeDecision = Extract<AudioDecision, { action: 'encode' }>;

/**
 * Audio: the stream is kept when recipients play it (MP3, AAC, M4A, OGG, AMR — ffprobe must still
 * read it), remuxed into a fresh container of the same format so that no tag rides along (ID3 with
 * cover art, Vorbis comments, iTunes atoms: names, locations, pictures). Anything else, and a
 * playable file too large for the delivered limit, becomes AAC in MP4, stripped the same way, at a
 * bitrate that fits the limit over its duration (one retry lower if it still lands over, then
 * FILE_TOO_LARGE). The limit is `input.deliveredLimitBytes` when set, else the limits' `maxBytes`.
 */
export async function normalizeAudio(input: NormalizeInput, baseLimits: AudioLimits = AUDIO_LIMITS): Promise<NormalizeOutput> {
  const limits: AudioLimits = input.deliveredLimitBytes !== undefined ? { ...baseLimits, maxBytes: input.deliveredLimitBytes } : baseLimits;
  const mime = canonicalMime(input.sniffedMime);
  const demuxer = demuxerFor(mime);
  if (!demuxer) throw new PermanentError('UNSUPPORTED_MEDIA_TYPE', `${mime} cannot be read as audio`);
  const probe = await probeMedia({ path: input.inputPath, demuxer, signal: input.signal, maxToolMs: input.maxToolMs, maxStreams: limits.maxStreams });
  const source: InputSpec = { path: input.inputPath, demuxer, threads: limits.threads };
  const sizeBytes = (await stat(input.inputPath)).size;
  let durationMs = probe.durationMs;
  // Only a file that must be fitted needs its duration measured (the bitrate comes from it).
  if (durationMs === null && probe.audio && sizeBytes > limits.maxBytes) {
    durationMs = await scanDuration(source, probe.audio.index, limits.maxDurationMs, input.signal, input.maxToolMs);
  }
  let decision = decideAudio(probe, mime, limits, { sizeBytes, durationMs });
  if (decision.action === 'reject') throw new PermanentError(decision.code, decision.reason);
  const report = createProgressThrottle(input.onProgress);

  if (decision.action === 'remux') {
    const outputPath = join(input.scratchDir, `audio.${decision.target.ext}`);
    const remux = decision;
    await withToolErrors('remuxing the audio', () =>
      runFfmpeg({
        // The policy's cap, not the probed duration: a VBR MP3 without a Xing header has only an estimate.
        args: buildAudioRemuxArgs(source, { audioIndex: remux.audioIndex, target: remux.target, maxDurationMs: limits.maxDurationMs }, outputPath),
        timeoutMs: capToolTimeout(toolTimeoutMs('copy', remux.durationMs ?? limits.maxDurationMs), input.maxToolMs),
        signal: input.signal,
        log: input.log,
      }),
    );
    const outBytes = (await stat(outputPath)).size;
    if (outBytes <= limits.maxBytes) {
      report(100);
      input.log.info({ transform: 'remuxed', codec: probe.audio?.codec, outBytes, durationMs: remux.durationMs }, 'audio normalized');
      return {
        outputPath,
        mimeType: mime,
        transform: 'remuxed',
        width: null,
        height: null,
        durationMs: remux.durationMs,
        pages: null,
        waveform: null,
        variants: [],
      };
    }
    input.log.info({ outBytes, maxBytes: limits.maxBytes }, 'audio over the size limit as sent; encoding it to fit');
    decision = decideAudio(probe, mime, limits, { sizeBytes, durationMs, forceEncode: true });
    if (decision.action === 'reject') throw new PermanentError(decision.code, decision.reason);
  }

  const outputPath = join(input.scratchDir, 'audio.m4a');
  let outBytes = 0;
  let reached = 0;
  if (decision.action !== 'encode') throw new Error(`unexpected audio decision ${decision.action}`);
  let encode: AudioEncodeDecision = decision;
  for (let attempt = 0; ; attempt++) {
    const run = encode;
    const from = reached;
    const capMs = Math.min((run.durationMs ?? limits.maxDurationMs) + 1000, limits.maxDurationMs);
    await withToolErrors('converting the audio', () =>
      runFfmpeg({
        args: buildAudioArgs(source, { audioIndex: run.audioIndex, kbps: run.kbps, channels: run.channels, maxDurationMs: capMs }, outputPath),
        timeoutMs: capToolTimeout(toolTimeoutMs('encode', run.durationMs ?? limits.maxDurationMs), input.maxToolMs),
        signal: input.signal,
        log: input.log,
        onProgressTime: (ms) => {
          const p = progressPercent(ms, run.durationMs);
          if (p === null) return;
          // A retry continues from where the first run got to: progress never goes back.
          reached = Math.max(reached, from + ((99 - from) * p) / 100);
          report(reached);
        },
      }),
    );
    outBytes = (await stat(outputPath)).size;
    if (outBytes <= limits.maxBytes) break;
    const next = attempt === 0 ? refitAudio(run, outBytes, limits) : null;
    if (next?.action !== 'encode') {
      throw new PermanentError(
        'FILE_TOO_LARGE',
        `the audio does not fit ${formatMegabytes(limits.maxBytes)}: as AAC at ${run.kbps} kbit/s it is still ${(outBytes / 1_000_000).toFixed(1)} MB`,
      );
    }
    input.log.info({ outBytes, maxBytes: limits.maxBytes, kbps: next.kbps }, 'audio over the size limit; encoding again at a lower bitrate');
    encode = next;
  }
  const out = await probeMedia({ path: outputPath, demuxer: 'mov', signal: input.signal, maxToolMs: input.maxToolMs });
  report(100);
  const transform = reencodedTransform(mime, 'audio/mp4');
  input.log.info({ transform, outBytes, durationMs: out.durationMs, kbps: encode.kbps }, 'audio normalized');
  return {
    outputPath,
    mimeType: 'audio/mp4',
    transform,
    width: null,
    height: null,
    durationMs: out.durationMs ?? encode.durationMs,
    pages: null,
    waveform: null,
    variants: [],
  };
}
