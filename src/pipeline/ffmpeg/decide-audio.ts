/**
 * Audio and voice-note decisions from the probe (pure): keep what recipients already play, encode
 * the rest, size a voice note's bitrate from its duration, and an audio file's AAC bitrate from
 * the delivered limit when 128k would not fit it.
 */
import { canonicalMime } from '../../domain/policies.js';
import type { AudioLimits, VoiceNoteLimits } from './av-limits.js';
import { formatDuration, formatMegabytes } from './decide-video.js';
import type { ProbeDescription } from './probe.js';

/** Container (canonical sniffed MIME) → codecs stored as sent because phones and browsers play them. */
const PLAYABLE: Readonly<Record<string, readonly string[]>> = {
  'audio/mpeg': ['mp3'],
  'audio/aac': ['aac'],
  'audio/mp4': ['aac'],
  'audio/ogg': ['opus', 'vorbis'],
  'audio/amr': ['amr_nb', 'amr_wb'],
  'audio/3gpp': ['amr_nb', 'amr_wb', 'aac'],
};

/**
 * How each playable format is written back when kept: the same container with the stream copied,
 * so the tags go and the sound stays. mp3 without any ID3 frame (`-id3v2_version 0`), MP4 audio
 * as M4A (`ipod`) with the index first.
 */
/** A container an audio stream can be copied into, and the muxer options it needs. */
export interface RemuxTarget {
  muxer: string;
  ext: string;
  options: readonly string[];
}

export const AUDIO_REMUX_TARGETS: Readonly<Record<string, RemuxTarget>> = {
  'audio/mpeg': { muxer: 'mp3', ext: 'mp3', options: ['-id3v2_version', '0', '-write_id3v1', '0'] },
  'audio/aac': { muxer: 'adts', ext: 'aac', options: [] },
  'audio/mp4': { muxer: 'ipod', ext: 'm4a', options: ['-movflags', '+faststart'] },
  'audio/ogg': { muxer: 'ogg', ext: 'ogg', options: [] },
  'audio/amr': { muxer: 'amr', ext: 'amr', options: [] },
  'audio/3gpp': { muxer: '3gp', ext: '3gp', options: ['-movflags', '+faststart'] },
};

export type AudioDecision =
  | { action: 'reject'; code: 'MEDIA_REJECTED' | 'FILE_TOO_LARGE'; reason: string }
  | { action: 'remux'; audioIndex: number; durationMs: number | null; target: RemuxTarget }
  | { action: 'encode'; audioIndex: number; durationMs: number | null; kbps: number; channels: number };

export interface AudioFacts {
  sizeBytes: number;
  /** The probe's duration, or one measured by a packet scan when the container states none. */
  durationMs: number | null;
  /** Set after a remux came out over the limit: only an encode can make it fit. */
  forceEncode?: boolean;
}

function durationCheck(durationMs: number | null, maxMs: number, what: string): string | null {
  if (durationMs !== null && durationMs > maxMs) {
    return `the ${what} lasts ${Math.round(durationMs / 1000)} s, over the ${Math.round(maxMs / 1000)} s limit`;
  }
  return null;
}

/** The budget of a file of `maxBytes` as a constant bitrate over `durationMs`, in kbit/s (rounded down). */
export function audioBudgetKbps(maxBytes: number, durationMs: number, overheadRatio: number): number {
  return Math.floor((maxBytes * 8 * (1 - overheadRatio)) / durationMs);
}

export function decideAudio(probe: ProbeDescription, sniffedMime: string, limits: AudioLimits, facts: AudioFacts): AudioDecision {
  const a = probe.audio;
  if (!a) return { action: 'reject', code: 'MEDIA_REJECTED', reason: 'the file has no audio stream' };
  const durationMs = facts.durationMs;
  const tooLong = durationCheck(durationMs, limits.maxDurationMs, 'audio');
  if (tooLong) return { action: 'reject', code: 'MEDIA_REJECTED', reason: tooLong };
  const mime = canonicalMime(sniffedMime);
  const playable = PLAYABLE[mime]?.includes(a.codec) ?? false;
  const target = AUDIO_REMUX_TARGETS[mime];
  // Copied packets fit when the file does, or when the stream alone does (the rest is tags and
  // cover art, which the remux drops); a remux that still comes out over is encoded next.
  const streamBytes = a.bitRate !== null && durationMs !== null ? (a.bitRate * durationMs) / 8000 : null;
  const fits = facts.sizeBytes <= limits.maxBytes || (streamBytes !== null && streamBytes <= limits.maxBytes * (1 - limits.overheadRatio));
  // A real video track in an "audio" file (an M4A that is a film) would be stored as audio: drop it by encoding.
  if (playable && target && probe.streamCounts.video === 0 && fits && !facts.forceEncode) {
    return { action: 'remux', audioIndex: a.index, durationMs, target };
  }
  const channels = Math.min(2, a.channels ?? 2);
  if (durationMs === null || durationMs <= 0) return { action: 'encode', audioIndex: a.index, durationMs, kbps: limits.aacKbps, channels };
  const budget = audioBudgetKbps(limits.maxBytes, durationMs, limits.overheadRatio);
  if (budget >= limits.aacKbps) return { action: 'encode', audioIndex: a.index, durationMs, kbps: limits.aacKbps, channels };
  if (budget < limits.minKbps) return tooLargeAudio(durationMs, limits);
  return { action: 'encode', audioIndex: a.index, durationMs, kbps: budget, channels: budget >= limits.stereoMinKbps ? channels : 1 };
}

function tooLargeAudio(durationMs: number, limits: AudioLimits): AudioDecision {
  const longestMs = Math.floor((limits.maxBytes * 8 * (1 - limits.overheadRatio)) / limits.minKbps / 1000) * 1000;
  return {
    action: 'reject',
    code: 'FILE_TOO_LARGE',
    reason: `an audio file of ${formatDuration(durationMs)} cannot fit ${formatMegabytes(limits.maxBytes)} even at ${limits.minKbps} kbit/s mono; at most ${formatDuration(longestMs)} fits`,
  };
}

/**
 * The one more try when an AAC encode came out over the limit (ABR drift, a duration the
 * container understated): the rate scaled by how far over it landed, with 5% more margin, and
 * at most 90% of the first. Null below the floor (the caller refuses).
 */
export function refitAudio(decision: AudioDecision, actualBytes: number, limits: AudioLimits): AudioDecision | null {
  if (decision.action !== 'encode' || actualBytes <= limits.maxBytes) return null;
  const kbps = Math.floor(Math.min(decision.kbps * 0.9, (decision.kbps * limits.maxBytes * 0.95) / actualBytes));
  if (kbps < limits.minKbps) return null;
  return { ...decision, kbps, channels: kbps >= limits.stereoMinKbps ? decision.channels : 1 };
}

export type VoiceNoteDecision =
  | { action: 'reject'; reason: string }
  /** Mono OGG Opus: the packets are kept, remuxed into a fresh Ogg without the comment tags. */
  | { action: 'remux'; audioIndex: number; durationMs: number | null }
  | { action: 'encode'; audioIndex: number; durationMs: number | null; kbps: number };

/**
 * The Opus bitrate that keeps a note of this duration under the target size, within the speech
 * range [minKbps, maxKbps]; unknown duration gets the floor (the safe side of the size target).
 */
export function voiceNoteKbps(durationMs: number | null, limits: VoiceNoteLimits): number {
  if (durationMs === null || durationMs <= 0) return limits.minKbps;
  // 3% for Ogg page headers (about 1% at 20 ms frames) and VBR drift.
  const kbps = Math.floor((limits.targetBytes * 8 * 0.97) / (durationMs / 1000) / 1000);
  return Math.max(limits.minKbps, Math.min(limits.maxKbps, kbps));
}

export function decideVoiceNote(
  probe: ProbeDescription,
  sniffedMime: string,
  sizeBytes: number,
  limits: VoiceNoteLimits,
): VoiceNoteDecision {
  const a = probe.audio;
  if (!a) return { action: 'reject', reason: 'the file has no audio stream' };
  const tooLong = durationCheck(probe.durationMs, limits.maxDurationMs, 'voice note');
  if (tooLong) return { action: 'reject', reason: tooLong };
  const isMonoOggOpus =
    canonicalMime(sniffedMime) === 'audio/ogg' &&
    a.codec === 'opus' &&
    a.channels === 1 &&
    probe.streamCounts.audio === 1 &&
    probe.streamCounts.video === 0 &&
    probe.streamCounts.attachedPictures === 0;
  if (isMonoOggOpus && sizeBytes <= limits.maxBytes) return { action: 'remux', audioIndex: a.index, durationMs: probe.durationMs };
  return { action: 'encode', audioIndex: a.index, durationMs: probe.durationMs, kbps: voiceNoteKbps(probe.durationMs, limits) };
}
