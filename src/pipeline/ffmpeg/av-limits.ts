/**
 * Audio/video limits as data. The kind's byte and duration limits come from the domain policy; the
 * rest are encoding choices for messaging clients, with the reason for each number beside it.
 */
import { MEDIA_POLICIES } from '../../domain/policies.js';

/**
 * Streams one audio/video file may hold, of every type (attached pictures and data tracks too).
 * We keep one video and one audio stream, but ffmpeg still opens, probes and demuxes every stream
 * of the input in each run, so a file of hundreds of tiny streams costs hundreds of decoders for
 * nothing. 16, not fewer: phones write data tracks beside the picture and sound (an iPhone HDR
 * clip is 1 video + 1 audio + 4 `mebx` metadata tracks; Cinematic mode adds a disparity video and
 * more metadata; GoPro writes tmcd, gpmd and fdsc), and those must still pass.
 */
export const MAX_STREAMS = 16;

/** Why a probed file is refused for its stream count, or null (pure; checked before any ffmpeg run on it). */
export function streamCountRefusal(counts: { video: number; audio: number; attachedPictures: number; other: number }, maxStreams: number): string | null {
  const total = counts.video + counts.audio + counts.attachedPictures + counts.other;
  if (total <= maxStreams) return null;
  return `the file has ${total} streams, over the limit of ${maxStreams} (one video and one audio stream are kept)`;
}

/** A step of the resolution ladder: the box (long side x short side) a re-encode is scaled into. */
export interface LadderRung {
  longSide: number;
  shortSide: number;
}

export interface VideoLimits {
  /**
   * Delivered size limit: the output must fit, re-encoded at a lower bitrate when needed. The
   * kind's policy by default; a per-app override arrives as `NormalizeInput.deliveredLimitBytes`.
   */
  maxBytes: number;
  maxDurationMs: number;
  /** Longest side of the stored video: 720p is what messaging clients play inline. */
  maxLongSide: number;
  /**
   * Where a tight budget steps down to (1080p → 720p → 480p), below the `maxLongSide` size: a
   * rung is used only when it is smaller than the one above it, never to upscale. The last rung
   * is the smallest picture we store.
   */
  ladder: readonly LadderRung[];
  /**
   * Bits per pixel per frame a rung needs to be chosen. 0.06 is where published H.264 ladders put
   * their rungs (720p30 from ~1.7 Mbit/s, 480p30 from ~0.75); below it fewer pixels look better
   * than blocky ones, until the last rung, which takes whatever is left down to the floor.
   */
  minBitsPerPixel: number;
  /** Frame rates above this are dropped to it (`-fpsmax`): 240 fps slow motion costs 4x to encode for nothing. */
  maxFps: number;
  /** Coded frames larger than 8K are refused before decoding: one frame would be 130 MB of YUV. */
  maxInputPixels: number;
  /** Below this video bitrate a 480p picture is mush: refuse (FILE_TOO_LARGE) rather than store it. */
  minVideoKbps: number;
  /** A ceiling even when the budget allows more: crf decides quality, this bounds pathological content. */
  maxVideoKbps: number;
  crf: number;
  /** veryfast: 3.6x realtime for 720p on 2 cores here, within ~10% of `medium`'s size at crf 23. */
  preset: string;
  /** AAC for stereo: a ceiling, since a source below it is encoded at its own rate (never under `lowAudioKbps`). */
  audioKbps: number;
  /**
   * AAC for mono, and for any audio once the video budget is tight (`tightVideoKbps`): speech
   * stays intelligible at 64k AAC-LC, and below it ffmpeg's AAC encoder (LC only) falls apart.
   */
  lowAudioKbps: number;
  /** Below this much video bitrate every audio kbit is taken from the picture: audio drops to `lowAudioKbps`. */
  tightVideoKbps: number;
  /** VBV buffer in seconds of maxrate: the encoder can exceed maxrate by at most this much in total. */
  bufferSeconds: number;
  /**
   * Share of the budget kept for the MP4 container (moov and sample tables: ~0.2% for a phone
   * clip) and rate-control slack (x264's VBV model and the AAC encoder's ABR drift a little).
   */
  overheadRatio: number;
  threads: number;
  /** See MAX_STREAMS. */
  maxStreams: number;
}

export const VIDEO_LIMITS: VideoLimits = {
  maxBytes: MEDIA_POLICIES.video.maxBytes,
  maxDurationMs: MEDIA_POLICIES.video.maxDurationMs ?? 3 * 60 * 60 * 1000,
  maxLongSide: 1280,
  ladder: [
    { longSide: 1920, shortSide: 1080 },
    { longSide: 1280, shortSide: 720 },
    { longSide: 854, shortSide: 480 },
  ],
  minBitsPerPixel: 0.06,
  maxFps: 60,
  maxInputPixels: 7680 * 4320,
  minVideoKbps: 150,
  maxVideoKbps: 8000,
  crf: 23,
  preset: 'veryfast',
  audioKbps: 128,
  lowAudioKbps: 64,
  tightVideoKbps: 1000,
  bufferSeconds: 2,
  overheadRatio: 0.03,
  threads: 2,
  maxStreams: MAX_STREAMS,
};

export interface VoiceNoteLimits {
  maxBytes: number;
  maxDurationMs: number;
  /** Messaging apps send voice notes of a few hundred KB; the bitrate is chosen to stay under this. */
  targetBytes: number;
  /** Opus speech below 16 kbit/s loses consonants: the floor wins over the target for long notes. */
  minKbps: number;
  /** Above 32 kbit/s mono Opus speech is transparent: spending more is waste. */
  maxKbps: number;
  /** The waveform is computed from a low-rate decode: 4 kHz is plenty for an amplitude envelope. */
  waveformSampleRate: number;
  waveformBars: number;
  threads: number;
  maxStreams: number;
}

export const VOICE_NOTE_LIMITS: VoiceNoteLimits = {
  maxBytes: MEDIA_POLICIES.voice_note.maxBytes,
  maxDurationMs: MEDIA_POLICIES.voice_note.maxDurationMs ?? 60 * 60 * 1000,
  targetBytes: 512_000,
  minKbps: 16,
  maxKbps: 32,
  waveformSampleRate: 4000,
  waveformBars: 64,
  threads: 2,
  maxStreams: MAX_STREAMS,
};

export interface AudioLimits {
  /** Delivered size limit (see VideoLimits.maxBytes): a longer file is re-encoded at a bitrate that fits. */
  maxBytes: number;
  maxDurationMs: number;
  /** AAC-LC at 128k stereo: transparent enough for music shared in a chat. */
  aacKbps: number;
  /** Below this a stereo AAC-LC encode is worse than a mono one at the same rate: fit encodes go mono. */
  stereoMinKbps: number;
  /** The floor of a fit encode, mono: ffmpeg's AAC (LC only) is still clear speech at 32k, not below. */
  minKbps: number;
  /** Share of the budget kept for the MP4 container and the AAC encoder's ABR drift. */
  overheadRatio: number;
  threads: number;
  maxStreams: number;
}

export const AUDIO_LIMITS: AudioLimits = {
  maxBytes: MEDIA_POLICIES.audio.maxBytes,
  maxDurationMs: MEDIA_POLICIES.audio.maxDurationMs ?? 3 * 60 * 60 * 1000,
  aacKbps: 128,
  stereoMinKbps: 64,
  minKbps: 32,
  overheadRatio: 0.03,
  threads: 2,
  maxStreams: MAX_STREAMS,
};

export type ToolOperation = 'probe' | 'scan' | 'copy' | 'encode' | 'poster' | 'decode';

/**
 * Wall-clock limit for one tool run, from the media's duration. Generous on purpose (a busy
 * machine is slower, and a timeout is retried from scratch), but finite so a stuck decoder frees
 * its worker: encoding is allowed 3 s of wall time per second of media, 10x slower than seen here.
 */
export function toolTimeoutMs(op: ToolOperation, durationMs: number | null): number {
  const d = Math.max(0, durationMs ?? 0);
  switch (op) {
    case 'probe':
    case 'poster':
      return 30_000;
    case 'scan':
    case 'copy':
      return 30_000 + Math.ceil(d / 10);
    case 'decode':
      return 30_000 + Math.ceil(d / 2);
    case 'encode':
      return 60_000 + d * 3;
  }
}

/**
 * A run's limit under the caller's cap (`NormalizeInput.maxToolMs`: a job with a tighter deadline,
 * or a test that wants a stuck run stopped quickly); no cap keeps the budget above.
 */
export function capToolTimeout(ms: number, maxToolMs: number | undefined): number {
  return maxToolMs !== undefined && maxToolMs > 0 ? Math.min(ms, maxToolMs) : ms;
}
