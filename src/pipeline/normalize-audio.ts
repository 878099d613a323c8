import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '../domain/errors.js';
import { canonicalMime } from '../domain/policies.js';
import { buildAudioArgs, buildAudioRemuxArgs, type InputSpec } from './ffmpeg/args.js';
import { AUDIO_LIMITS, capToolTimeout, toolTimeoutMs, type AudioLimits } from './ffmpeg/av-limits.js';
import { decideAudio } from './ffmpeg/decide-audio.js';
import { demuxerFor } from './ffmpeg/demuxer.js';
import { withToolErrors } from './ffmpeg/failure.js';
import { probeMedia } from './ffmpeg/probe-media.js';
import { createProgressThrottle, progressPercent } from './ffmpeg/progress.js';
import { runFfmpeg } from './ffmpeg/run.js';
import { reencodedTransform, type NormalizeInput, type NormalizeOutput } from './normalize-types.js';

/**
 * Audio: the stream is kept when recipients play it (MP3, AAC, M4A, OGG, AMR — ffprobe must still
 * read it), remuxed into a fresh container of the same format so that no tag rides along (ID3 with
 * cover art, Vorbis comments, iTunes atoms: names, locations, pictures). Anything else becomes AAC
 * in MP4, stripped the same way.
 */
export async function normalizeAudio(input: NormalizeInput, limits: AudioLimits = AUDIO_LIMITS): Promise<NormalizeOutput> {
  const mime = canonicalMime(input.sniffedMime);
  const demuxer = demuxerFor(mime);
  if (!demuxer) throw new PermanentError('UNSUPPORTED_MEDIA_TYPE', `${mime} cannot be read as audio`);
  const probe = await probeMedia({ path: input.inputPath, demuxer, signal: input.signal, maxToolMs: input.maxToolMs, maxStreams: limits.maxStreams });
  const decision = decideAudio(probe, mime, limits);
  if (decision.action === 'reject') throw new PermanentError('MEDIA_REJECTED', decision.reason);
  const report = createProgressThrottle(input.onProgress);
  const source: InputSpec = { path: input.inputPath, demuxer, threads: limits.threads };

  if (decision.action === 'remux') {
    const outputPath = join(input.scratchDir, `audio.${decision.target.ext}`);
    await withToolErrors('remuxing the audio', () =>
      runFfmpeg({
        // The policy's cap, not the probed duration: a VBR MP3 without a Xing header has only an estimate.
        args: buildAudioRemuxArgs(source, { audioIndex: decision.audioIndex, target: decision.target, maxDurationMs: limits.maxDurationMs }, outputPath),
        timeoutMs: capToolTimeout(toolTimeoutMs('copy', decision.durationMs ?? limits.maxDurationMs), input.maxToolMs),
        signal: input.signal,
        log: input.log,
      }),
    );
    const outBytes = (await stat(outputPath)).size;
    if (outBytes > limits.maxBytes) {
      throw new PermanentError('MEDIA_REJECTED', `the audio is ${(outBytes / 1_000_000).toFixed(1)} MB, over the ${limits.maxBytes / 1_000_000} MB limit`);
    }
    report(100);
    input.log.info({ transform: 'remuxed', codec: probe.audio?.codec, outBytes, durationMs: decision.durationMs }, 'audio normalized');
    return {
      outputPath,
      mimeType: mime,
      transform: 'remuxed',
      width: null,
      height: null,
      durationMs: decision.durationMs,
      pages: null,
      waveform: null,
      variants: [],
    };
  }

  const outputPath = join(input.scratchDir, 'audio.m4a');
  const capMs = Math.min((decision.durationMs ?? limits.maxDurationMs) + 1000, limits.maxDurationMs);
  await withToolErrors('converting the audio', () =>
    runFfmpeg({
      args: buildAudioArgs(source, { audioIndex: decision.audioIndex, kbps: decision.kbps, channels: decision.channels, maxDurationMs: capMs }, outputPath),
      timeoutMs: capToolTimeout(toolTimeoutMs('encode', decision.durationMs ?? limits.maxDurationMs), input.maxToolMs),
      signal: input.signal,
      log: input.log,
      onProgressTime: (ms) => {
        const p = progressPercent(ms, decision.durationMs);
        if (p !== null) report(p);
      },
    }),
  );
  const outBytes = (await stat(outputPath)).size;
  if (outBytes > limits.maxBytes) {
    throw new PermanentError('MEDIA_REJECTED', `the audio is ${(outBytes / 1_000_000).toFixed(1)} MB as AAC, over the ${limits.maxBytes / 1_000_000} MB limit`);
  }
  const out = await probeMedia({ path: outputPath, demuxer: 'mov', signal: input.signal, maxToolMs: input.maxToolMs });
  report(100);
  const transform = reencodedTransform(mime, 'audio/mp4');
  input.log.info({ transform, outBytes, durationMs: out.durationMs }, 'audio normalized');
  return {
    outputPath,
    mimeType: 'audio/mp4',
    transform,
    width: null,
    height: null,
    durationMs: out.durationMs ?? decision.durationMs,
    pages: null,
    waveform: null,
    variants: [],
  };
}
