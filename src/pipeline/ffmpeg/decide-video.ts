/**
 * Remux or re-encode, decided from the probe alone (pure). The rule: never re-encode what a phone
 * already plays (H.264 yuv420p + AAC within the size and resolution limits); re-encode only the
 * streams that need it; and when re-encoding, make the file fit the delivered limit by
 * construction rather than by trial: audio first, the video gets the rest of the budget as a
 * capped-CRF maxrate, and the picture steps down the resolution ladder when that rate is too thin
 * for its pixels. What cannot fit even at the floor is refused with the longest duration that would.
 */
import type { VideoLimits } from './av-limits.js';
import type { ProbeAudio, ProbeDescription, ProbeVideo } from './probe.js';

export interface VideoEncode {
  mode: 'encode';
  width: number;
  height: number;
  crf: number;
  preset: string;
  maxrateKbps: number;
  bufsizeKbps: number;
  maxFps: number;
}
export interface AudioEncode {
  mode: 'encode';
  kbps: number;
  channels: number;
}
export interface StreamCopy {
  mode: 'copy';
}

export type VideoDecision =
  | { action: 'reject'; code: 'MEDIA_REJECTED' | 'FILE_TOO_LARGE'; reason: string }
  | {
      action: 'remux';
      durationMs: number;
      videoIndex: number;
      audioIndex: number | null;
      width: number;
      height: number;
    }
  | {
      action: 'transcode';
      durationMs: number;
      videoIndex: number;
      audioIndex: number | null;
      width: number;
      height: number;
      /** Output frame rate the bitrate was sized for (bits per pixel per frame; a refit reuses it). */
      fps: number;
      video: VideoEncode | StreamCopy;
      audio: AudioEncode | StreamCopy | null;
      /** Audio bitrate counted in the budget (encoded, or the copied stream's own). */
      audioKbps: number;
    };

export interface VideoFacts {
  /** Duration resolved by the caller (probe, or a packet scan when the container has none). */
  durationMs: number | null;
  sizeBytes: number;
  /** Set after a remux came out too large: stream copy is then not an option. */
  forceEncode?: boolean;
}

const H264_PROFILES = new Set(['Baseline', 'Constrained Baseline', 'Main', 'High']);
const AAC_PROFILES = new Set(['LC', 'HE-AAC', 'HE-AACv2']);

/** H.264 that every phone decodes in hardware, at a size we would store. */
export function videoStreamCompliant(v: ProbeVideo, limits: VideoLimits): boolean {
  return (
    v.codec === 'h264' &&
    (v.pixFmt === 'yuv420p' || v.pixFmt === 'yuvj420p') &&
    v.profile !== null &&
    H264_PROFILES.has(v.profile) &&
    v.width % 2 === 0 &&
    v.height % 2 === 0 &&
    v.sampleAspectRatio === null &&
    Math.max(v.displayWidth, v.displayHeight) <= limits.maxLongSide &&
    (v.fps === null || v.fps <= limits.maxFps + 0.5)
  );
}

/** AAC in a profile MP4 players handle, mono or stereo (5.1 is downmixed by re-encoding). */
export function audioStreamCompliant(a: ProbeAudio): boolean {
  return a.codec === 'aac' && (a.profile === null || AAC_PROFILES.has(a.profile)) && (a.channels === null || a.channels <= 2);
}

/** Scales (w, h) into a long side x short side box, never up, both even (yuv420p needs it), at least 2. */
export function fitBox(width: number, height: number, longSide: number, shortSide: number): { width: number; height: number } {
  const scale = Math.min(1, longSide / Math.max(width, height), shortSide / Math.min(width, height));
  const even = (n: number): number => Math.max(2, Math.round((n * scale) / 2) * 2);
  return { width: even(width), height: even(height) };
}

/** Scales (w, h) to fit `longSide`, never up, both even, at least 2. */
export function fitEven(width: number, height: number, longSide: number): { width: number; height: number } {
  return fitBox(width, height, longSide, Infinity);
}

/**
 * The sizes a re-encode of this picture may take, largest first: the stored maximum, then each
 * ladder rung that is smaller than the size above it (portrait and landscape alike, aspect kept).
 */
export function ladderSizes(width: number, height: number, limits: Pick<VideoLimits, 'maxLongSide' | 'ladder'>): Array<{ width: number; height: number }> {
  const sizes = [fitEven(width, height, limits.maxLongSide)];
  for (const rung of limits.ladder) {
    const s = fitBox(width, height, rung.longSide, rung.shortSide);
    const last = sizes[sizes.length - 1]!;
    if (s.width * s.height < last.width * last.height) sizes.push(s);
  }
  return sizes;
}

/**
 * The largest ladder size this video bitrate can feed at `minBitsPerPixel` per frame; the
 * smallest when none can (the caller has already checked the floor). Frames past 30 per second
 * count half: at 60 fps consecutive frames are closer, and x264 spends far less on each.
 */
export function sizeForBitrate(
  width: number,
  height: number,
  fps: number,
  videoKbps: number,
  limits: Pick<VideoLimits, 'maxLongSide' | 'ladder' | 'minBitsPerPixel'>,
): { width: number; height: number } {
  const sizes = ladderSizes(width, height, limits);
  const frames = Math.min(fps, 30) + Math.max(0, fps - 30) / 2;
  return sizes.find((s) => (videoKbps * 1000) / (s.width * s.height * frames) >= limits.minBitsPerPixel) ?? sizes[sizes.length - 1]!;
}

/** The frame rate an encode will have (`-fpsmax`), 30 when the probe does not know. */
export function outputFps(v: Pick<ProbeVideo, 'fps'>, limits: Pick<VideoLimits, 'maxFps'>): number {
  return Math.min(v.fps ?? 30, limits.maxFps);
}

/** The whole file's budget in kbit, the overhead share set aside. */
export function budgetKbits(maxBytes: number, overheadRatio: number): number {
  return (maxBytes * 8 * (1 - overheadRatio)) / 1000;
}

/**
 * The longest video that fits the budget at the floor: the VBV bound (floor × (d + buffer)) plus
 * the audio (audioKbps × d) within the budget, in whole seconds (rounded down, so it does fit).
 */
export function longestFittingMs(budget: number, audioKbps: number, limits: Pick<VideoLimits, 'minVideoKbps' | 'bufferSeconds'>): number {
  const s = (budget - limits.minVideoKbps * limits.bufferSeconds) / (limits.minVideoKbps + audioKbps);
  return Math.max(0, Math.floor(s)) * 1000;
}

/** "45 s", "9 min 38 s", "20 min", "1 h 5 min": a duration as an error message says it. */
export function formatDuration(ms: number): string {
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const parts = [h ? `${h} h` : '', m ? `${m} min` : '', s || total === 0 ? `${s} s` : ''];
  return parts.filter(Boolean).join(' ');
}

/** "16 MB", "0.5 MB" (decimal, as the contract writes limits). */
export function formatMegabytes(bytes: number): string {
  return `${Number((bytes / 1_000_000).toFixed(2))} MB`;
}

function fmtMinutes(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 120 ? `${Math.round(s / 60)} min` : `${s} s`;
}

/**
 * AAC for a stream that must be encoded: stereo at `audioKbps`, mono at `lowAudioKbps`, and never
 * above what the source itself carries (its artifacts are not worth bits), never below the low rate.
 */
export function audioEncodeFor(a: ProbeAudio, limits: Pick<VideoLimits, 'audioKbps' | 'lowAudioKbps'>): AudioEncode {
  const channels = Math.min(2, a.channels ?? 2);
  const ceiling = channels === 1 ? limits.lowAudioKbps : limits.audioKbps;
  const source = a.bitRate !== null ? Math.floor(a.bitRate / 1000) : ceiling;
  return { mode: 'encode', kbps: Math.max(limits.lowAudioKbps, Math.min(ceiling, source)), channels };
}

export function decideVideo(probe: ProbeDescription, facts: VideoFacts, limits: VideoLimits): VideoDecision {
  const v = probe.video;
  if (!v) return { action: 'reject', code: 'MEDIA_REJECTED', reason: 'the file has no video stream' };
  // An AVI subtitle stream is a GAB2 packet that ffmpeg hands to an inner demuxer chosen by probing
  // the payload; one it cannot name a subtitle codec for carried something else (the "HLS playlist
  // in an AVI" attack). ffmpeg 5.1 refuses such inner demuxers, and this refuses the file.
  if (probe.unidentifiedSubtitles > 0 && probe.formatNames.includes('avi')) {
    return { action: 'reject', code: 'MEDIA_REJECTED', reason: 'the AVI carries a subtitle stream that is not a subtitle (GAB2 payload of another format)' };
  }
  const durationMs = facts.durationMs;
  if (durationMs === null || durationMs <= 0) return { action: 'reject', code: 'MEDIA_REJECTED', reason: 'the video has no measurable duration' };
  if (durationMs > limits.maxDurationMs) {
    return { action: 'reject', code: 'MEDIA_REJECTED', reason: `the video lasts ${fmtMinutes(durationMs)}, over the ${fmtMinutes(limits.maxDurationMs)} limit` };
  }
  if (v.width * v.height > limits.maxInputPixels) {
    return { action: 'reject', code: 'MEDIA_REJECTED', reason: `video frames of ${v.width}x${v.height} exceed the ${limits.maxInputPixels} pixel limit` };
  }

  const a = probe.audio;
  const audioIndex = a ? a.index : null;
  const videoOk = !facts.forceEncode && videoStreamCompliant(v, limits);
  const audioOk = !facts.forceEncode && (a === null || audioStreamCompliant(a));

  if (videoOk && audioOk && facts.sizeBytes <= limits.maxBytes) {
    return { action: 'remux', durationMs, videoIndex: v.index, audioIndex, width: v.displayWidth, height: v.displayHeight };
  }

  const durS = durationMs / 1000;
  const budget = budgetKbits(limits.maxBytes, limits.overheadRatio);
  const fps = outputFps(v, limits);

  // Audio first: copy compliant AAC of a known, modest bitrate; otherwise encode.
  let audio: AudioEncode | StreamCopy | null = null;
  let audioKbps = 0;
  if (a) {
    const copyKbps = a.bitRate !== null ? a.bitRate / 1000 : null;
    if (audioOk && copyKbps !== null && copyKbps <= 192) {
      audio = { mode: 'copy' };
      audioKbps = copyKbps;
    } else {
      audio = audioEncodeFor(a, limits);
      audioKbps = audio.kbps;
    }
  }

  // Video copy: compliant H.264 whose own bitrate fits beside the audio (only the audio was wrong).
  if (videoOk) {
    const sourceVideoKbps = v.bitRate !== null ? v.bitRate / 1000 : (facts.sizeBytes * 8) / 1000 / durS - audioKbps;
    if ((sourceVideoKbps + audioKbps) * durS <= budget) {
      return {
        action: 'transcode',
        durationMs,
        videoIndex: v.index,
        audioIndex,
        width: v.displayWidth,
        height: v.displayHeight,
        fps,
        video: { mode: 'copy' },
        audio,
        audioKbps,
      };
    }
  }

  // The VBV model bounds video bits by maxrate × (duration + buffer), so this maxrate fits by construction.
  const maxrateFor = (aKbps: number): number => Math.floor((budget - aKbps * durS) / (durS + limits.bufferSeconds));
  let maxrate = maxrateFor(audioKbps);
  if (maxrate < limits.tightVideoKbps && a && audioKbps > limits.lowAudioKbps) {
    audio = { mode: 'encode', kbps: limits.lowAudioKbps, channels: Math.min(2, a.channels ?? 2) };
    audioKbps = limits.lowAudioKbps;
    maxrate = maxrateFor(audioKbps);
  }
  if (maxrate < limits.minVideoKbps) {
    const smallest = ladderSizes(v.displayWidth, v.displayHeight, limits).at(-1)!;
    return {
      action: 'reject',
      code: 'FILE_TOO_LARGE',
      reason:
        `a video of ${formatDuration(durationMs)} cannot fit ${formatMegabytes(limits.maxBytes)} even at ` +
        `${Math.min(smallest.width, smallest.height)}p; at most ${formatDuration(longestFittingMs(budget, audioKbps, limits))} fits`,
    };
  }
  maxrate = Math.min(maxrate, limits.maxVideoKbps);
  const { width, height } = sizeForBitrate(v.displayWidth, v.displayHeight, fps, maxrate, limits);
  return {
    action: 'transcode',
    durationMs,
    videoIndex: v.index,
    audioIndex,
    width,
    height,
    fps,
    video: {
      mode: 'encode',
      width,
      height,
      crf: limits.crf,
      preset: limits.preset,
      maxrateKbps: maxrate,
      bufsizeKbps: maxrate * limits.bufferSeconds,
      maxFps: limits.maxFps,
    },
    audio,
    audioKbps,
  };
}

/**
 * The duration a remux stores, known without probing its output: the span of the streams it keeps,
 * from the earliest start to the latest end (how ffprobe measures a file), since a stream copy
 * keeps each one's timing. Null when a kept stream's timing is unknown. Only MOV/MP4 inputs state
 * timings taken from their sample tables, which the copy carries over; other containers' figures
 * are the muxer's word, so their output is probed instead (see normalizeVideo).
 */
export function remuxedDurationMs(probe: ProbeDescription, decision: Extract<VideoDecision, { action: 'remux' }>): number | null {
  const kept: Array<ProbeVideo | ProbeAudio | null> = [probe.video?.index === decision.videoIndex ? probe.video : null];
  if (decision.audioIndex !== null) kept.push(probe.audio?.index === decision.audioIndex ? probe.audio : null);
  let start = Infinity;
  let end = -Infinity;
  for (const stream of kept) {
    if (!stream?.timing) return null;
    start = Math.min(start, stream.timing.startMs);
    end = Math.max(end, stream.timing.startMs + stream.timing.durationMs);
  }
  return end > start ? end - start : null;
}

/** Where the poster is taken: one second in, or halfway through a clip shorter than two seconds. */
export function posterSeekSeconds(durationMs: number): number {
  return Math.min(1, durationMs / 2000);
}

/**
 * The one more try when an encode still came out over the limit (x264's VBV is a model, copied
 * audio can exceed its declared bitrate, a wrong duration skews the budget, and a first pass
 * decided by crf alone never met the cap). The new cap is the lowest of: the budget recomputed
 * with a 10% margin; 90% of the old cap; 90% of the video bitrate actually achieved — so it binds
 * whatever decided the first size — and the picture steps down the ladder if that cap needs it.
 * Null when that is below the floor, or there is nothing to lower (a copy or a remux).
 */
export function refitVideo(decision: VideoDecision, actualBytes: number, limits: VideoLimits): VideoDecision | null {
  if (decision.action !== 'transcode' || decision.video.mode !== 'encode') return null;
  if (actualBytes <= limits.maxBytes) return null;
  const durS = decision.durationMs / 1000;
  const achievedVideoKbps = (actualBytes * 8) / 1000 / durS - decision.audioKbps;
  const budgetKbps = (budgetKbits(limits.maxBytes, 0.1) - decision.audioKbps * durS) / (durS + limits.bufferSeconds);
  const maxrate = Math.floor(Math.min(budgetKbps, decision.video.maxrateKbps * 0.9, achievedVideoKbps * 0.9));
  if (maxrate < limits.minVideoKbps) return null;
  const { width, height } = sizeForBitrate(decision.width, decision.height, decision.fps, maxrate, { ...limits, maxLongSide: Math.max(decision.width, decision.height) });
  return {
    ...decision,
    width,
    height,
    video: { ...decision.video, width, height, maxrateKbps: maxrate, bufsizeKbps: maxrate * limits.bufferSeconds },
  };
}
