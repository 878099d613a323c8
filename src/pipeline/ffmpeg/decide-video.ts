/**
 * Remux or re-encode, decided from the probe alone (pure). The rule: never re-encode what a phone
 * already plays (H.264 yuv420p + AAC within the size and resolution limits); re-encode only the
 * streams that need it; and when re-encoding, pick a bitrate that makes the file fit by
 * construction rather than by trial.
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
  | { action: 'reject'; reason: string }
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

/** Scales (w, h) to fit `longSide`, never up, both even (yuv420p needs it), at least 2. */
export function fitEven(width: number, height: number, longSide: number): { width: number; height: number } {
  const scale = Math.min(1, longSide / Math.max(width, height));
  const even = (n: number): number => Math.max(2, Math.round((n * scale) / 2) * 2);
  return { width: even(width), height: even(height) };
}

/** Lower resolution when the budget is low: fewer pixels at the same bitrate look better than mush. */
export function longSideForBitrate(maxrateKbps: number, maxLongSide: number): number {
  if (maxrateKbps < 500) return Math.min(640, maxLongSide);
  if (maxrateKbps < 1000) return Math.min(854, maxLongSide);
  return maxLongSide;
}

function fmtMinutes(ms: number): string {
  const s = Math.round(ms / 1000);
  return s >= 120 ? `${Math.round(s / 60)} min` : `${s} s`;
}

export function decideVideo(probe: ProbeDescription, facts: VideoFacts, limits: VideoLimits): VideoDecision {
  const v = probe.video;
  if (!v) return { action: 'reject', reason: 'the file has no video stream' };
  // An AVI subtitle stream is a GAB2 packet that ffmpeg hands to an inner demuxer chosen by probing
  // the payload; one it cannot name a subtitle codec for carried something else (the "HLS playlist
  // in an AVI" attack). ffmpeg 5.1 refuses such inner demuxers, and this refuses the file.
  if (probe.unidentifiedSubtitles > 0 && probe.formatNames.includes('avi')) {
    return { action: 'reject', reason: 'the AVI carries a subtitle stream that is not a subtitle (GAB2 payload of another format)' };
  }
  const durationMs = facts.durationMs;
  if (durationMs === null || durationMs <= 0) return { action: 'reject', reason: 'the video has no measurable duration' };
  if (durationMs > limits.maxDurationMs) {
    return { action: 'reject', reason: `the video lasts ${fmtMinutes(durationMs)}, over the ${fmtMinutes(limits.maxDurationMs)} limit` };
  }
  if (v.width * v.height > limits.maxInputPixels) {
    return { action: 'reject', reason: `video frames of ${v.width}x${v.height} exceed the ${limits.maxInputPixels} pixel limit` };
  }

  const a = probe.audio;
  const audioIndex = a ? a.index : null;
  const videoOk = !facts.forceEncode && videoStreamCompliant(v, limits);
  const audioOk = !facts.forceEncode && (a === null || audioStreamCompliant(a));

  if (videoOk && audioOk && facts.sizeBytes <= limits.maxBytes) {
    return { action: 'remux', durationMs, videoIndex: v.index, audioIndex, width: v.displayWidth, height: v.displayHeight };
  }

  const durS = durationMs / 1000;
  const budgetKbits = (limits.maxBytes * 8 * (1 - limits.overheadRatio)) / 1000;

  // Audio: copy compliant AAC of a known, modest bitrate; otherwise encode.
  let audio: AudioEncode | StreamCopy | null = null;
  let audioKbps = 0;
  if (a) {
    const copyKbps = a.bitRate !== null ? a.bitRate / 1000 : null;
    if (audioOk && copyKbps !== null && copyKbps <= 192) {
      audio = { mode: 'copy' };
      audioKbps = copyKbps;
    } else {
      audio = { mode: 'encode', kbps: limits.audioKbps, channels: Math.min(2, a.channels ?? 2) };
      audioKbps = limits.audioKbps;
    }
  }

  // Video copy: compliant H.264 whose own bitrate fits beside the audio (only the audio was wrong).
  if (videoOk) {
    const sourceVideoKbps = v.bitRate !== null ? v.bitRate / 1000 : (facts.sizeBytes * 8) / 1000 / durS - audioKbps;
    if ((sourceVideoKbps + audioKbps) * durS <= budgetKbits) {
      return {
        action: 'transcode',
        durationMs,
        videoIndex: v.index,
        audioIndex,
        width: v.displayWidth,
        height: v.displayHeight,
        video: { mode: 'copy' },
        audio,
        audioKbps,
      };
    }
  }

  // The VBV model bounds video bits by maxrate × (duration + buffer), so this maxrate fits by construction.
  const maxrateFor = (aKbps: number): number => Math.floor((budgetKbits - aKbps * durS) / (durS + limits.bufferSeconds));
  let maxrate = maxrateFor(audioKbps);
  if (maxrate < 1000 && audio?.mode === 'encode' && limits.lowAudioKbps < audio.kbps) {
    audio = { ...audio, kbps: limits.lowAudioKbps };
    audioKbps = limits.lowAudioKbps;
    maxrate = maxrateFor(audioKbps);
  }
  if (maxrate < limits.minVideoKbps) {
    return {
      action: 'reject',
      reason:
        `a ${fmtMinutes(durationMs)} video cannot fit ${limits.maxBytes / 1_000_000} MB: it would get ` +
        `${Math.max(0, maxrate)} kbit/s of video, below the ${limits.minVideoKbps} kbit/s floor`,
    };
  }
  maxrate = Math.min(maxrate, limits.maxVideoKbps);
  const { width, height } = fitEven(v.displayWidth, v.displayHeight, longSideForBitrate(maxrate, limits.maxLongSide));
  return {
    action: 'transcode',
    durationMs,
    videoIndex: v.index,
    audioIndex,
    width,
    height,
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
 * Another try when an encode still came out over the limit (x264's VBV is a model, copied audio
 * can exceed its declared bitrate, a wrong duration skews the budget, and a first pass decided by
 * crf alone never met the cap). The new cap is the lowest of: the budget recomputed with a 10%
 * margin instead of 4%; 90% of the old cap; 90% of the video bitrate actually achieved — so it
 * binds whatever decided the first size. Null when that is below the floor, or there is nothing
 * to lower (a copy or a remux).
 */
export function refitVideo(decision: VideoDecision, actualBytes: number, limits: VideoLimits): VideoDecision | null {
  if (decision.action !== 'transcode' || decision.video.mode !== 'encode') return null;
  if (actualBytes <= limits.maxBytes) return null;
  const durS = decision.durationMs / 1000;
  const achievedVideoKbps = (actualBytes * 8) / 1000 / durS - decision.audioKbps;
  const budgetKbps = ((limits.maxBytes * 8 * 0.9) / 1000 - decision.audioKbps * durS) / (durS + limits.bufferSeconds);
  const maxrate = Math.floor(Math.min(budgetKbps, decision.video.maxrateKbps * 0.9, achievedVideoKbps * 0.9));
  if (maxrate < limits.minVideoKbps) return null;
  const { width, height } = fitEven(decision.width, decision.height, longSideForBitrate(maxrate, Math.max(decision.width, decision.height)));
  return {
    ...decision,
    width,
    height,
    video: { ...decision.video, width, height, maxrateKbps: maxrate, bufsizeKbps: maxrate * limits.bufferSeconds },
  };
}
