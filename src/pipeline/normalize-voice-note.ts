import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '../domain/errors.js';
import { canonicalMime } from '../domain/policies.js';
import { buildVoiceNoteRunArgs, type InputSpec } from './ffmpeg/args.js';
import { capToolTimeout, toolTimeoutMs, VOICE_NOTE_LIMITS, type VoiceNoteLimits } from './ffmpeg/av-limits.js';
import { decideVoiceNote } from './ffmpeg/decide-audio.js';
import { demuxerFor } from './ffmpeg/demuxer.js';
import { withToolErrors } from './ffmpeg/failure.js';
import { probeMedia } from './ffmpeg/probe-media.js';
import { createProgressThrottle, progressPercent } from './ffmpeg/progress.js';
import { runFfmpeg } from './ffmpeg/run.js';
import { scanDuration } from './ffmpeg/scan-duration.js';
import { createWaveformAccumulator } from './ffmpeg/waveform.js';
import { reencodedTransform, type NormalizeInput, type NormalizeOutput } from './normalize-types.js';

/**
 * Voice note → OGG Opus mono 48 kHz with a 64-bar waveform. Mono OGG Opus keeps its packets: it is
 * remuxed into a fresh Ogg without its comment tags; anything else is encoded at a bitrate sized
 * from the duration. Either way the waveform comes from the same ffmpeg run (a second output of raw
 * PCM on stdout).
 */
export async function normalizeVoiceNote(input: NormalizeInput, limits: VoiceNoteLimits = VOICE_NOTE_LIMITS): Promise<NormalizeOutput> {
  const mime = canonicalMime(input.sniffedMime);
  const demuxer = demuxerFor(mime);
  if (!demuxer) throw new PermanentError('UNSUPPORTED_MEDIA_TYPE', `${mime} cannot be read as a voice note`);
  const source: InputSpec = { path: input.inputPath, demuxer, threads: limits.threads };
  let probe = await probeMedia({ path: input.inputPath, demuxer, signal: input.signal, maxToolMs: input.maxToolMs, maxStreams: limits.maxStreams });
  if (probe.durationMs === null && probe.audio) {
    // Browser recordings (WebM) state no duration; the bitrate is chosen from it, so measure it.
    probe = { ...probe, durationMs: await scanDuration(source, probe.audio.index, limits.maxDurationMs, input.signal, input.maxToolMs) };
  }
  const sizeBytes = (await stat(input.inputPath)).size;
  const decision = decideVoiceNote(probe, mime, sizeBytes, limits);
  if (decision.action === 'reject') throw new PermanentError('MEDIA_REJECTED', decision.reason);

  const report = createProgressThrottle(input.onProgress);
  const waveform = createWaveformAccumulator({ sampleRate: limits.waveformSampleRate, bars: limits.waveformBars });
  const outputPath = join(input.scratchDir, 'voice.ogg');
  const remux = decision.action === 'remux';
  await withToolErrors(remux ? 'remuxing the voice note' : 'encoding the voice note', () =>
    runFfmpeg({
      args: buildVoiceNoteRunArgs(source, decision, limits, outputPath),
      timeoutMs: capToolTimeout(toolTimeoutMs(remux ? 'decode' : 'encode', decision.durationMs ?? limits.maxDurationMs), input.maxToolMs),
      signal: input.signal,
      log: input.log,
      onProgressTime: (ms) => {
        const p = progressPercent(ms, decision.durationMs);
        if (p !== null) report(p);
      },
      onStdout: (chunk) => waveform.push(chunk),
    }),
  );
  if (!remux) {
    const outBytes = (await stat(outputPath)).size;
    if (outBytes > limits.maxBytes) {
      throw new PermanentError('MEDIA_REJECTED', `the voice note is ${(outBytes / 1_000_000).toFixed(1)} MB as Opus, over the ${limits.maxBytes / 1_000_000} MB limit`);
    }
  }
  report(100);

  // The decoded sample count is the duration actually heard; the container's figure is the fallback.
  const decodedMs = Math.round((waveform.samples / limits.waveformSampleRate) * 1000);
  const durationMs = decodedMs > 0 ? decodedMs : decision.durationMs;
  const transform = decision.action === 'remux' ? 'remuxed' : reencodedTransform(mime, 'audio/ogg');
  input.log.info({ transform, kbps: decision.action === 'encode' ? decision.kbps : null, durationMs }, 'voice note normalized');
  return {
    outputPath,
    mimeType: 'audio/ogg',
    transform,
    width: null,
    height: null,
    durationMs,
    pages: null,
    waveform: waveform.finish(),
    variants: [],
  };
}
