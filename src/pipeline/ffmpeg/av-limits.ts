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

export interface VideoLimits {
  /** Stored size limit: the output must fit, re-encoded at a lower bitrate when needed. */
  maxBytes: number;
  maxDurationMs: number;
  /** Longest side of the stored video: 720p is what messaging clients play inline. */
  maxLongSide: number;
  /** Frame rates above this are dropped to it (`-fpsmax`): 240 fps slow motion costs 4x to encode for nothing. */
  maxFps: number;
  /** Coded frames larger than 8K are refused before decoding: one frame would be 130 MB of YUV. */
  maxInputPixels: number;
  /** Below this video bitrate a 720p/360p picture is mush: refuse rather than store it. */
  minVideoKbps: number;
  /** A ceiling even when the budget allows more: crf decides quality, this bounds pathological content. */
  maxVideoKbps: number;
  crf: number;
  /** veryfast: 3.6x realtime for 720p on 2 cores here, within ~10% of `medium`'s size at crf 23. */
  preset: string;
  audioKbps: number;
  /** Used when the budget is tight (long videos): speech stays intelligible at 64k AAC. */
  lowAudioKbps: number;
  /** VBV buffer in seconds of maxrate: the encoder can exceed maxrate by at most this much in total. */
  bufferSeconds: number;
  /** Share of the budget kept for the MP4 container and the encoder's rate-control slack. */
  overheadRatio: number;
  threads: number;
  /** See MAX_STREAMS. */
  maxStreams: number;
}

export const VIDEO_LIMITS: VideoLimits = {
  maxBytes: MEDIA_POLICIES.video.maxBytes,
  maxDurationMs: MEDIA_POLICIES.video.maxDurationMs ?? 3 * 60 * 60 * 1000,
  maxLongSide: 1280,
  maxFps: 60,
  maxInputPixels: 7680 * 4320,
  minVideoKbps: 150,
  maxVideoKbps: 8000,
  crf: 23,
  preset: 'veryfast',
  audioKbps: 128,
  lowAudioKbps: 64,
  bufferSeconds: 2,
  overheadRatio: 0.04,
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
  maxBytes: number;
  maxDurationMs: number;
  /** AAC-LC at 128k stereo: transparent enough for music shared in a chat. */
  aacKbps: number;
  threads: number;
  maxStreams: number;
}

export const AUDIO_LIMITS: AudioLimits = {
  maxBytes: MEDIA_POLICIES.audio.maxBytes,
  maxDurationMs: MEDIA_POLICIES.audio.maxDurationMs ?? 3 * 60 * 60 * 1000,
  aacKbps: 128,
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
