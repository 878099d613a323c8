import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '../domain/errors.js';
import { canonicalMime } from '../domain/policies.js';
import { buildVoiceNoteRunArgs, type InputSpec } from './ffmpeg/args.js';
import { capToolTimeout, toolTimeoutMs, VOICE_NOTE_LIMITS, type VoiceNoteLimits } from './ffmpeg/av-limits.js';
import { decideVoiceNote, type VoiceNoteDecision } from './ffmpeg/decide-audio.js';
import { demuxerFor } from './ffmpeg/demuxer.js';
import { withToolErrors } from './ffmpeg/failure.js';
import { probeMedia } from './ffmpeg/probe-media.js';
import { createProgressThrottle, progressPercent } from './ffmpeg/progress.js';
import { runFfmpeg } from './ffmpeg/run.js';
import { scanDuration } from './ffmpeg/scan-duration.js';
import { knownStreamCount } from './ffmpeg/stream-count.js';
import { createWaveformAccumulator, type WaveformAccumulator } from './ffmpeg/waveform.js';
import { reencodedTransform, type NormalizeInput, type NormalizeOutput } from './normalize-types.js';

/**
 * Voice note → OGG Opus mono 48 kHz with a 64-bar waveform. Mono OGG Opus keeps its packets: it is
 * remuxed into a fresh Ogg without its comment tags; anything else is encoded at a bitrate sized
 * from the duration. Either way the waveform comes from the same ffmpeg run (a second output of raw
 * PCM on stdout).
 */
export async function normalizeVoiceNote(input: NormalizeInput, baseLimits: VoiceNoteLimits = VOICE_NOTE_LIMITS): Promise<NormalizeOutput> {
  // A per-app delivered limit replaces the kind's, and a note is sized for it when it is the smaller.
  const limits: VoiceNoteLimits =
    input.deliveredLimitBytes !== undefined
      ? { ...baseLimits, maxBytes: input.deliveredLimitBytes, targetBytes: Math.min(baseLimits.targetBytes, input.deliveredLimitBytes) }
      : baseLimits;
  const mime = canonicalMime(input.sniffedMime);
  const demuxer = demuxerFor(mime);
  if (!demuxer) throw new PermanentError('UNSUPPORTED_MEDIA_TYPE', `${mime} cannot be read as a voice note`);
  const source: InputSpec = { path: input.inputPath, demuxer, threads: limits.threads };
  // A phone's voice note (AAC, AMR, MP3, WAV, WebM: anything but an Ogg that may be remuxed) is
  // encoded while it is probed: the encode the probe almost always decides on is known in advance.
  // Only when our own reading of the container says it holds no more streams than the probe allows:
  // a file over that cap still never reaches ffmpeg.
  const streams = mime === 'audio/ogg' ? null : await knownStreamCount(input.inputPath, mime).catch(() => null);
  const guess = streams !== null && streams >= 1 && streams <= limits.maxStreams ? startGuessedEncode(input, source, limits) : null;
  let decision: VoiceNoteDecision;
  try {
    let probe = await probeMedia({ path: input.inputPath, demuxer, signal: input.signal, maxToolMs: input.maxToolMs, maxStreams: limits.maxStreams });
    if (probe.durationMs === null && probe.audio) {
      // Browser recordings (WebM) state no duration; the bitrate is chosen from it, so measure it.
      probe = { ...probe, durationMs: await scanDuration(source, probe.audio.index, limits.maxDurationMs, input.signal, input.maxToolMs) };
    }
    const sizeBytes = (await stat(input.inputPath)).size;
    decision = decideVoiceNote(probe, mime, sizeBytes, limits);
  } catch (err) {
    await guess?.discard();
    throw err;
  }
  if (decision.action === 'reject') {
    await guess?.discard();
    throw new PermanentError('MEDIA_REJECTED', decision.reason);
  }

  const report = createProgressThrottle(input.onProgress);
  const remux = decision.action === 'remux';
  let run: { outputPath: string; waveform: WaveformAccumulator };
  if (guess && guess.matches(decision)) {
    run = await withToolErrors('encoding the voice note', () => guess.finished);
  } else {
    await guess?.discard();
    const waveform = createWaveformAccumulator({ sampleRate: limits.waveformSampleRate, bars: limits.waveformBars });
    const outputPath = join(input.scratchDir, 'voice.ogg');
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
    run = { outputPath, waveform };
  }
  const { outputPath, waveform } = run;
  if (decision.action === 'encode') {
    const outBytes = (await stat(outputPath)).size;
    if (outBytes > limits.maxBytes) {
      throw new PermanentError(
        'FILE_TOO_LARGE',
        `the voice note is ${outBytes} bytes as Opus at ${decision.kbps} kbps (the lowest for its length), over the limit of ${limits.maxBytes} bytes; send a shorter note`,
        { maxBytes: limits.maxBytes, bytes: outBytes },
      );
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

/** Voice notes up to this long are encoded at the top bitrate (`voiceNoteKbps`): almost all of them. */
const GUESSED_MAX_DURATION_MS = 120_000;

interface GuessedEncode {
  /** Whether the probe's decision is the encode already running. */
  matches(decision: Exclude<VoiceNoteDecision, { action: 'reject' }>): boolean;
  finished: Promise<{ outputPath: string; waveform: WaveformAccumulator }>;
  /** Stops it, waits for the process to be gone and removes its output. */
  discard(): Promise<void>;
}

/**
 * The encode of a short voice note, started before the probe returns: the first stream (where
 * every phone and browser puts the audio), at the top bitrate (any note under about two minutes),
 * with the policy's duration cap. The probe still decides: a reject, another stream, a remux or a
 * longer note discards it (killed, output removed) before anything is kept, and the normal run
 * follows. Its wall-clock limit is that of a note of GUESSED_MAX_DURATION_MS, which covers every
 * note it can be kept for. No progress is reported from it: the duration is not known yet, and
 * such a note takes well under a second.
 */
function startGuessedEncode(input: NormalizeInput, source: InputSpec, limits: VoiceNoteLimits): GuessedEncode {
  const controller = new AbortController();
  const signal = input.signal ? AbortSignal.any([input.signal, controller.signal]) : controller.signal;
  const kbps = limits.maxKbps;
  // The same name as the normal run's: a discarded guess's file is removed before that run starts.
  const outputPath = join(input.scratchDir, 'voice.ogg');
  const waveform = createWaveformAccumulator({ sampleRate: limits.waveformSampleRate, bars: limits.waveformBars });
  const guessed = { action: 'encode' as const, audioIndex: 0, durationMs: null, kbps };
  const finished = runFfmpeg({
    args: buildVoiceNoteRunArgs(source, guessed, limits, outputPath),
    timeoutMs: capToolTimeout(toolTimeoutMs('encode', GUESSED_MAX_DURATION_MS), input.maxToolMs),
    signal,
    log: input.log,
    onStdout: (chunk) => waveform.push(chunk),
  }).then(() => ({ outputPath, waveform }));
  // Settled either way before anyone awaits it: a discarded run's failure is nobody's error.
  finished.catch(() => undefined);
  return {
    matches: (d) => d.action === 'encode' && d.audioIndex === guessed.audioIndex && d.kbps === kbps && (d.durationMs ?? Infinity) <= GUESSED_MAX_DURATION_MS,
    finished,
    async discard() {
      controller.abort(new Error('voice note guess discarded'));
      await finished.catch(() => undefined);
      await rm(outputPath, { force: true });
    },
  };
}
