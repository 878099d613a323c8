import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AUDIO_LIMITS, capToolTimeout, VIDEO_LIMITS, VOICE_NOTE_LIMITS, toolTimeoutMs } from '../../src/pipeline/ffmpeg/av-limits.js';
import { decideAudio, decideVoiceNote, voiceNoteKbps } from '../../src/pipeline/ffmpeg/decide-audio.js';
import { decideVideo, fitEven, longSideForBitrate, refitVideo } from '../../src/pipeline/ffmpeg/decide-video.js';
import { parseProbe, type ProbeDescription } from '../../src/pipeline/ffmpeg/probe.js';

const probe = (name: string): ProbeDescription =>
  parseProbe(JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'ffprobe', `${name}.json`), 'utf8')));

describe('decideVideo', () => {
  it('compliant H.264/AAC MP4 within limits is remuxed, never re-encoded', () => {
    const p = probe('mp4Compliant');
    expect(decideVideo(p, { durationMs: p.durationMs, sizeBytes: 414262 }, VIDEO_LIMITS)).toEqual({
      action: 'remux', durationMs: 4000, videoIndex: 0, audioIndex: 1, width: 320, height: 240,
    });
  });

  it('a rotated compliant clip is remuxed and reported at its displayed size', () => {
    const p = probe('mp4Rotated');
    expect(decideVideo(p, { durationMs: 3000, sizeBytes: 266035 }, VIDEO_LIMITS)).toEqual({
      action: 'remux', durationMs: 3000, videoIndex: 0, audioIndex: null, width: 240, height: 320,
    });
  });

  it('VP9/Opus WebM: both streams encoded, bitrate from the 16 MB budget', () => {
    const p = probe('webmVp9Opus30s');
    // (16e6 × 8 × 0.96 / 1000 − 128 × 30.008) / (30.008 + 2) = 3719 kbit/s
    expect(decideVideo(p, { durationMs: p.durationMs, sizeBytes: 1170626 }, VIDEO_LIMITS)).toEqual({
      action: 'transcode', durationMs: 30008, videoIndex: 0, audioIndex: 1, width: 320, height: 240,
      video: { mode: 'encode', width: 320, height: 240, crf: 23, preset: 'veryfast', maxrateKbps: 3719, bufsizeKbps: 7438, maxFps: 60 },
      audio: { mode: 'encode', kbps: 128, channels: 2 },
      audioKbps: 128,
    });
  });

  it('H.264 with PCM audio: the video is copied, only the audio encoded', () => {
    const p = probe('movPcm');
    expect(decideVideo(p, { durationMs: 3000, sizeBytes: 555303 }, VIDEO_LIMITS)).toEqual({
      action: 'transcode', durationMs: 3000, videoIndex: 0, audioIndex: 1, width: 320, height: 240,
      video: { mode: 'copy' },
      audio: { mode: 'encode', kbps: 128, channels: 1 },
      audioKbps: 128,
    });
  });

  it('60 s 1080p at 3 Mbit/s: scaled to 720p at a bitrate that fits, AAC copied and counted', () => {
    const p = probe('mp4HighBitrate1080p60s');
    // (122880 − 128.168 × 60) / 62 = 1857 kbit/s
    expect(decideVideo(p, { durationMs: 60000, sizeBytes: 22628937 }, VIDEO_LIMITS)).toEqual({
      action: 'transcode', durationMs: 60000, videoIndex: 0, audioIndex: 1, width: 1280, height: 720,
      video: { mode: 'encode', width: 1280, height: 720, crf: 23, preset: 'veryfast', maxrateKbps: 1857, bufsizeKbps: 3714, maxFps: 60 },
      audio: { mode: 'copy' },
      audioKbps: 128.168,
    });
  });

  it('a compliant file over the byte limit is re-encoded, not remuxed', () => {
    const p = probe('mp4Compliant');
    const d = decideVideo(p, { durationMs: 4000, sizeBytes: 17_000_000 }, VIDEO_LIMITS);
    expect(d.action).toBe('transcode');
  });

  it('forceEncode (after a remux came out too large) encodes both streams', () => {
    const p = probe('mp4Compliant');
    const d = decideVideo(p, { durationMs: 4000, sizeBytes: 414262, forceEncode: true }, VIDEO_LIMITS);
    expect(d).toMatchObject({ action: 'transcode', video: { mode: 'encode' }, audio: { mode: 'encode', kbps: 128 } });
  });

  it('long videos get less audio and fewer pixels before being refused', () => {
    const p = probe('webmVp9Opus30s');
    const fifteenMin = decideVideo(p, { durationMs: 15 * 60_000, sizeBytes: 1 }, VIDEO_LIMITS);
    // (122880 − 64 × 900) / 902 = 72 kbit/s: below the floor even with 64k audio.
    expect(fifteenMin).toEqual({
      action: 'reject',
      reason: 'a 15 min video cannot fit 16 MB: it would get 72 kbit/s of video, below the 150 kbit/s floor',
    });
    const fiveMin = decideVideo(p, { durationMs: 5 * 60_000, sizeBytes: 1 }, VIDEO_LIMITS);
    // (122880 − 64 × 300) / 302 = 343 kbit/s → 360p-class long side.
    expect(fiveMin).toMatchObject({ action: 'transcode', audio: { mode: 'encode', kbps: 64 }, video: { maxrateKbps: 343 } });
  });

  it('refuses no video, no duration, over-long and over-large frames', () => {
    expect(decideVideo(probe('m4a'), { durationMs: 3000, sizeBytes: 1 }, VIDEO_LIMITS)).toEqual({ action: 'reject', reason: 'the file has no video stream' });
    const p = probe('mp4Compliant');
    expect(decideVideo(p, { durationMs: null, sizeBytes: 1 }, VIDEO_LIMITS)).toEqual({ action: 'reject', reason: 'the video has no measurable duration' });
    expect(decideVideo(p, { durationMs: 3 * 3600_000 + 1000, sizeBytes: 1 }, VIDEO_LIMITS)).toEqual({
      action: 'reject',
      reason: 'the video lasts 180 min, over the 180 min limit',
    });
    const huge = { ...p, video: { ...p.video!, width: 8000, height: 8000 } };
    expect(decideVideo(huge, { durationMs: 1000, sizeBytes: 1 }, VIDEO_LIMITS)).toMatchObject({ action: 'reject' });
  });

  it('refuses an AVI whose GAB2 subtitle is not a subtitle (the HLS-in-AVI carrier), not other files with one', () => {
    expect(decideVideo(probe('aviGab2Hls'), { durationMs: 1000, sizeBytes: 20_000 }, VIDEO_LIMITS)).toEqual({
      action: 'reject',
      reason: 'the AVI carries a subtitle stream that is not a subtitle (GAB2 payload of another format)',
    });
    // The same stream once identified (a real SRT), or an unnamed subtitle outside AVI, is not this attack.
    expect(decideVideo({ ...probe('aviGab2Hls'), unidentifiedSubtitles: 0 }, { durationMs: 1000, sizeBytes: 20_000 }, VIDEO_LIMITS).action).toBe('transcode');
    expect(decideVideo({ ...probe('webmVp9Opus30s'), unidentifiedSubtitles: 1 }, { durationMs: 30_008, sizeBytes: 1 }, VIDEO_LIMITS).action).toBe('transcode');
  });

  it('non-compliant details force an encode: odd size, 4:4:4, high fps, anamorphic, 5.1 AAC', () => {
    const p = probe('mp4Compliant');
    const v = p.video!;
    for (const video of [
      { ...v, width: 321 },
      { ...v, pixFmt: 'yuv444p' },
      { ...v, profile: 'High 10' },
      { ...v, fps: 120 },
      { ...v, sampleAspectRatio: 1.5 },
      { ...v, displayWidth: 1920, displayHeight: 1080, width: 1920, height: 1080 },
    ]) {
      expect(decideVideo({ ...p, video }, { durationMs: 4000, sizeBytes: 1000 }, VIDEO_LIMITS).action).toBe('transcode');
    }
    const surround = { ...p, audio: { ...p.audio!, channels: 6 } };
    expect(decideVideo(surround, { durationMs: 4000, sizeBytes: 1000 }, VIDEO_LIMITS)).toMatchObject({
      action: 'transcode',
      video: { mode: 'copy' },
      audio: { mode: 'encode', channels: 2 },
    });
  });
});

describe('refitVideo', () => {
  const p = probe('mp4HighBitrate1080p60s');
  const d = decideVideo(p, { durationMs: 60000, sizeBytes: 22628937 }, VIDEO_LIMITS);
  if (d.action !== 'transcode' || d.video.mode !== 'encode') throw new Error('expected an encode');

  it('lowers the cap below the old one when the cap was binding', () => {
    // min(budget at 10% margin = 1734, 0.9 × 1857 = 1671, 0.9 × achieved 2538 = 2284) = 1671
    expect(refitVideo(d, 20_000_000, VIDEO_LIMITS)).toMatchObject({ action: 'transcode', width: 1280, height: 720, video: { maxrateKbps: 1671, bufsizeKbps: 3342 } });
  });
  it('binds even when crf, not a loose cap, decided the first size', () => {
    const loose = { ...d, video: { ...d.video, maxrateKbps: 8000 } };
    // (16e6 × 8 × 0.9 / 1000 − 128.168 × 60) / 62 = 1734
    expect(refitVideo(loose, 17_000_000, VIDEO_LIMITS)).toMatchObject({ video: { maxrateKbps: 1734 } });
  });
  it('nothing to do when it fits; gives up below the floor, and for copies or remuxes', () => {
    expect(refitVideo(d, 15_000_000, VIDEO_LIMITS)).toBeNull();
    expect(refitVideo({ ...d, durationMs: 3 * 3600_000 }, 20_000_000, VIDEO_LIMITS)).toBeNull();
    const remux = decideVideo(probe('mp4Compliant'), { durationMs: 4000, sizeBytes: 1 }, VIDEO_LIMITS);
    expect(refitVideo(remux, 20_000_000, VIDEO_LIMITS)).toBeNull();
  });
});

describe('sizes', () => {
  it('fitEven keeps the aspect, never upscales, rounds to even', () => {
    expect(fitEven(1920, 1080, 1280)).toEqual({ width: 1280, height: 720 });
    expect(fitEven(1080, 1920, 1280)).toEqual({ width: 720, height: 1280 });
    expect(fitEven(321, 241, 1280)).toEqual({ width: 322, height: 242 });
    expect(fitEven(4000, 2, 1280)).toEqual({ width: 1280, height: 2 });
  });
  it('longSideForBitrate steps down with the budget', () => {
    expect([longSideForBitrate(2000, 1280), longSideForBitrate(999, 1280), longSideForBitrate(499, 1280), longSideForBitrate(2000, 480)]).toEqual([1280, 854, 640, 480]);
  });
});

describe('decideAudio', () => {
  it.each([
    ['mp3', 'audio/mpeg', 'remux'],
    ['m4a', 'audio/mp4', 'remux'],
    ['oggOpusMono', 'audio/ogg', 'remux'],
    ['wav', 'audio/wav', 'encode'],
    ['flac', 'audio/flac', 'encode'],
    ['webmOpusNoDuration', 'audio/webm', 'encode'],
  ])('%s (%s) → %s', (name, mime, action) => {
    expect(decideAudio(probe(name), mime, AUDIO_LIMITS).action).toBe(action);
  });
  it('a playable file is remuxed into its own container (tags dropped, packets kept)', () => {
    expect(decideAudio(probe('mp3'), 'audio/mpeg', AUDIO_LIMITS)).toEqual({
      action: 'remux',
      audioIndex: 0,
      durationMs: 3030,
      target: { muxer: 'mp3', ext: 'mp3', options: ['-id3v2_version', '0', '-write_id3v1', '0'] },
    });
    expect(decideAudio(probe('m4a'), 'audio/x-m4a', AUDIO_LIMITS)).toMatchObject({ action: 'remux', target: { muxer: 'ipod', ext: 'm4a' } });
  });
  it('encodes to AAC stereo at 128k, downmixing', () => {
    expect(decideAudio(probe('wav'), 'audio/wav', AUDIO_LIMITS)).toEqual({ action: 'encode', audioIndex: 0, durationMs: 3000, kbps: 128, channels: 2 });
  });
  it('an audio file carrying a real video track is encoded (video dropped)', () => {
    expect(decideAudio(probe('mp4Compliant'), 'audio/mp4', AUDIO_LIMITS).action).toBe('encode');
  });
  it('refuses no audio and over-long', () => {
    expect(decideAudio(probe('mp4Rotated'), 'audio/mp4', AUDIO_LIMITS)).toEqual({ action: 'reject', reason: 'the file has no audio stream' });
    expect(decideAudio({ ...probe('mp3'), durationMs: 4 * 3600_000 }, 'audio/mpeg', AUDIO_LIMITS).action).toBe('reject');
  });
});

describe('decideVoiceNote', () => {
  it('mono OGG Opus keeps its packets (remuxed only)', () => {
    expect(decideVoiceNote(probe('oggOpusMono'), 'audio/ogg', 14248, VOICE_NOTE_LIMITS)).toEqual({ action: 'remux', audioIndex: 0, durationMs: 3007 });
  });
  it('stereo Opus, MP3, WAV are encoded at the speech ceiling for short notes', () => {
    const stereo = probe('oggOpusMono');
    stereo.audio = { ...stereo.audio!, channels: 2 };
    expect(decideVoiceNote(stereo, 'audio/ogg', 1, VOICE_NOTE_LIMITS)).toMatchObject({ action: 'encode', kbps: 32 });
    expect(decideVoiceNote(probe('mp3'), 'audio/mpeg', 1, VOICE_NOTE_LIMITS)).toEqual({ action: 'encode', audioIndex: 0, durationMs: 3030, kbps: 32 });
    expect(decideVoiceNote(probe('wav'), 'audio/wav', 1, VOICE_NOTE_LIMITS).action).toBe('encode');
  });
  it('voiceNoteKbps keeps ≤ 512 KB while ≥ 16k allows it', () => {
    expect(voiceNoteKbps(60_000, VOICE_NOTE_LIMITS)).toBe(32);
    // 512000 × 8 × 0.97 / 180 s = 22.07 kbit/s
    expect(voiceNoteKbps(180_000, VOICE_NOTE_LIMITS)).toBe(22);
    expect(voiceNoteKbps(600_000, VOICE_NOTE_LIMITS)).toBe(16);
    expect(voiceNoteKbps(null, VOICE_NOTE_LIMITS)).toBe(16);
  });
  it('refuses over an hour and no audio', () => {
    expect(decideVoiceNote({ ...probe('mp3'), durationMs: 3600_001 }, 'audio/mpeg', 1, VOICE_NOTE_LIMITS).action).toBe('reject');
    expect(decideVoiceNote(probe('mp4Rotated'), 'video/mp4', 1, VOICE_NOTE_LIMITS).action).toBe('reject');
  });
});

describe('toolTimeoutMs', () => {
  it('grows with the duration, bounded below', () => {
    expect(toolTimeoutMs('probe', 10_000_000)).toBe(30_000);
    expect(toolTimeoutMs('encode', null)).toBe(60_000);
    expect(toolTimeoutMs('encode', 60_000)).toBe(240_000);
    expect(toolTimeoutMs('copy', 600_000)).toBe(90_000);
    expect(toolTimeoutMs('decode', 60_000)).toBe(60_000);
  });
  it("a caller's cap only ever lowers it; no cap keeps the default", () => {
    expect(capToolTimeout(30_000, undefined)).toBe(30_000);
    expect(capToolTimeout(30_000, 1500)).toBe(1500);
    expect(capToolTimeout(30_000, 90_000)).toBe(30_000);
    expect(capToolTimeout(30_000, 0)).toBe(30_000);
  });
});
