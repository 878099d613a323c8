import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AUDIO_LIMITS, capToolTimeout, VIDEO_LIMITS, VOICE_NOTE_LIMITS, toolTimeoutMs } from '../../src/pipeline/ffmpeg/av-limits.js';
import { decideAudio, decideVoiceNote, refitAudio, voiceNoteKbps, type AudioDecision, type AudioFacts } from '../../src/pipeline/ffmpeg/decide-audio.js';
import {
  audioEncodeFor,
  decideVideo,
  fitBox,
  fitEven,
  formatDuration,
  formatMegabytes,
  ladderSizes,
  longestFittingMs,
  posterSeekSeconds,
  refitVideo,
  remuxedDurationMs,
  sizeForBitrate,
  type VideoDecision,
} from '../../src/pipeline/ffmpeg/decide-video.js';
import { parseProbe, type ProbeDescription } from '../../src/pipeline/ffmpeg/probe.js';

const probe = (name: string): ProbeDescription =>
  parseProbe(JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'ffprobe', `${name}.json`), 'utf8')));

/** A phone's 40 s 1080p clip: H.264 High at ~10 Mbit/s, AAC-LC stereo 128k, ~50 MB. */
const PHONE: ProbeDescription = {
  formatNames: ['mov', 'mp4', 'm4a', '3gp', '3g2', 'mj2'],
  durationMs: 40_000,
  sizeBytes: 49_600_000,
  bitRate: 9_920_000,
  video: {
    index: 0, codec: 'h264', profile: 'High', pixFmt: 'yuv420p', width: 1920, height: 1080, displayWidth: 1920, displayHeight: 1080,
    rotation: 0, sampleAspectRatio: null, fps: 30, bitRate: 9_790_000, timing: { startMs: 0, durationMs: 40_000 },
  },
  audio: { index: 1, codec: 'aac', profile: 'LC', sampleRate: 48000, channels: 2, bitRate: 128_000, timing: { startMs: 0, durationMs: 40_000 } },
  streamCounts: { video: 1, audio: 1, attachedPictures: 0, other: 0 },
  unidentifiedSubtitles: 0,
};
const PORTRAIT: ProbeDescription = { ...PHONE, video: { ...PHONE.video!, rotation: 90, displayWidth: 1080, displayHeight: 1920 } };
const phoneFor = (durationMs: number, p = PHONE): VideoDecision => decideVideo(p, { durationMs, sizeBytes: Math.round((durationMs / 1000) * 1_240_000) }, VIDEO_LIMITS);

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
    // (16e6 × 8 × 0.97 / 1000 − 128 × 30.008) / (30.008 + 2) = 3759 kbit/s; Opus of unknown bitrate → AAC 128k stereo.
    expect(decideVideo(p, { durationMs: p.durationMs, sizeBytes: 1170626 }, VIDEO_LIMITS)).toEqual({
      action: 'transcode', durationMs: 30008, videoIndex: 0, audioIndex: 1, width: 320, height: 240, fps: 15,
      video: { mode: 'encode', width: 320, height: 240, crf: 23, preset: 'veryfast', maxrateKbps: 3759, bufsizeKbps: 7518, maxFps: 60 },
      audio: { mode: 'encode', kbps: 128, channels: 2 },
      audioKbps: 128,
    });
  });

  it('H.264 with PCM audio: the video is copied, only the (mono) audio encoded, at 64k', () => {
    const p = probe('movPcm');
    expect(decideVideo(p, { durationMs: 3000, sizeBytes: 555303 }, VIDEO_LIMITS)).toEqual({
      action: 'transcode', durationMs: 3000, videoIndex: 0, audioIndex: 1, width: 320, height: 240, fps: 25,
      video: { mode: 'copy' },
      audio: { mode: 'encode', kbps: 64, channels: 1 },
      audioKbps: 64,
    });
  });

  it('60 s 1080p at 3 Mbit/s: scaled to 720p at a bitrate that fits, AAC copied and counted', () => {
    const p = probe('mp4HighBitrate1080p60s');
    // (124160 − 128.168 × 60) / 62 = 1878 kbit/s; 0.136 bit/pixel at 720p15.
    expect(decideVideo(p, { durationMs: 60000, sizeBytes: 22628937 }, VIDEO_LIMITS)).toEqual({
      action: 'transcode', durationMs: 60000, videoIndex: 0, audioIndex: 1, width: 1280, height: 720, fps: 15,
      video: { mode: 'encode', width: 1280, height: 720, crf: 23, preset: 'veryfast', maxrateKbps: 1878, bufsizeKbps: 3756, maxFps: 60 },
      audio: { mode: 'copy' },
      audioKbps: 128.168,
    });
  });

  it("a phone's 40 s 1080p clip of 50 MB: audio copied first, the video gets the rest at 720p", () => {
    // (124160 − 128 × 40) / 42 = 2834 kbit/s: 0.10 bit/pixel at 720p30 (1080p would get 0.046).
    expect(phoneFor(40_000)).toEqual({
      action: 'transcode', durationMs: 40_000, videoIndex: 0, audioIndex: 1, width: 1280, height: 720, fps: 30,
      video: { mode: 'encode', width: 1280, height: 720, crf: 23, preset: 'veryfast', maxrateKbps: 2834, bufsizeKbps: 5668, maxFps: 60 },
      audio: { mode: 'copy' },
      audioKbps: 128,
    });
  });

  it.each([
    // duration, video kbps, size, audio
    [40_000, 2834, '1280x720', 'copy'],
    [60_000, 1878, '1280x720', 'copy'],
    [65_000, 1728, '1280x720', 'copy'],
    [75_000, 1487, '854x480', 'copy'],
    [90_000, 1224, '854x480', 'copy'],
    // (124160 − 128 × 120) / 122 = 891 < 1000: the audio drops to 64k and the video gets 954.
    [120_000, 954, '854x480', 'aac 64k x2'],
    [300_000, 347, '854x480', 'aac 64k x2'],
    [578_000, 150, '854x480', 'aac 64k x2'],
  ] as const)('phone clip of %i ms: %i kbit/s of video at %s, audio %s', (ms, kbps, size, audio) => {
    const d = phoneFor(ms);
    if (d.action !== 'transcode' || d.video.mode !== 'encode') throw new Error(`expected an encode, got ${JSON.stringify(d)}`);
    expect([d.video.maxrateKbps, `${d.width}x${d.height}`, d.audio?.mode === 'encode' ? `aac ${d.audio.kbps}k x${d.audio.channels}` : d.audio?.mode]).toEqual([kbps, size, audio]);
  });

  it('a portrait clip steps down the same ladder on its short side', () => {
    expect(phoneFor(40_000, PORTRAIT)).toMatchObject({ width: 720, height: 1280 });
    expect(phoneFor(90_000, PORTRAIT)).toMatchObject({ width: 480, height: 854 });
  });

  it('60 fps keeps 720p where frames past 30/s would otherwise halve its bits per pixel', () => {
    const sixty = { ...PHONE, video: { ...PHONE.video!, fps: 60 } };
    expect(phoneFor(40_000, sixty)).toMatchObject({ width: 1280, height: 720, fps: 60 });
    expect(phoneFor(60_000, sixty)).toMatchObject({ width: 854, height: 480 });
  });

  it('too long for the floor even at 480p: FILE_TOO_LARGE naming the longest duration that fits', () => {
    // (124160 − 150 × 2) / (150 + 64) = 578.8 s.
    expect(phoneFor(579_000)).toEqual({
      action: 'reject',
      code: 'FILE_TOO_LARGE',
      reason: 'a video of 9 min 39 s cannot fit 16 MB even at 480p; at most 9 min 38 s fits',
    });
    expect(phoneFor(20 * 60_000)).toEqual({
      action: 'reject',
      code: 'FILE_TOO_LARGE',
      reason: 'a video of 20 min cannot fit 16 MB even at 480p; at most 9 min 38 s fits',
    });
    // Without audio every bit goes to the picture: (124160 − 300) / 150 = 825.7 s.
    expect(decideVideo({ ...PHONE, audio: null }, { durationMs: 20 * 60_000, sizeBytes: 1 }, VIDEO_LIMITS)).toMatchObject({
      reason: 'a video of 20 min cannot fit 16 MB even at 480p; at most 13 min 45 s fits',
    });
  });

  it('the delivered limit is a parameter: a per-app 64 MB keeps 1080p-class bitrates, 5 MB steps down sooner', () => {
    expect(decideVideo(PHONE, { durationMs: 40_000, sizeBytes: 49_600_000 }, { ...VIDEO_LIMITS, maxBytes: 64_000_000 })).toMatchObject({
      action: 'transcode', width: 1280, height: 720, video: { maxrateKbps: 8000 },
    });
    expect(decideVideo(PHONE, { durationMs: 40_000, sizeBytes: 49_600_000 }, { ...VIDEO_LIMITS, maxBytes: 5_000_000 })).toMatchObject({
      action: 'transcode', width: 854, height: 480, video: { maxrateKbps: 862 }, audio: { mode: 'encode', kbps: 64, channels: 2 },
    });
    expect(decideVideo(PHONE, { durationMs: 4 * 60_000, sizeBytes: 1 }, { ...VIDEO_LIMITS, maxBytes: 5_000_000 })).toEqual({
      action: 'reject',
      code: 'FILE_TOO_LARGE',
      reason: 'a video of 4 min cannot fit 5 MB even at 480p; at most 2 min 59 s fits',
    });
  });

  it('a compliant file over the byte limit is re-encoded, not remuxed', () => {
    const p = probe('mp4Compliant');
    const d = decideVideo(p, { durationMs: 4000, sizeBytes: 17_000_000 }, VIDEO_LIMITS);
    expect(d.action).toBe('transcode');
  });

  it('forceEncode (after a remux came out too large) encodes both streams, mono AAC at 64k', () => {
    const p = probe('mp4Compliant');
    const d = decideVideo(p, { durationMs: 4000, sizeBytes: 414262, forceEncode: true }, VIDEO_LIMITS);
    expect(d).toMatchObject({ action: 'transcode', video: { mode: 'encode' }, audio: { mode: 'encode', kbps: 64, channels: 1 } });
  });

  it('refuses no video, no duration, over-long and over-large frames (MEDIA_REJECTED)', () => {
    expect(decideVideo(probe('m4a'), { durationMs: 3000, sizeBytes: 1 }, VIDEO_LIMITS)).toEqual({ action: 'reject', code: 'MEDIA_REJECTED', reason: 'the file has no video stream' });
    const p = probe('mp4Compliant');
    expect(decideVideo(p, { durationMs: null, sizeBytes: 1 }, VIDEO_LIMITS)).toEqual({ action: 'reject', code: 'MEDIA_REJECTED', reason: 'the video has no measurable duration' });
    expect(decideVideo(p, { durationMs: 3 * 3600_000 + 1000, sizeBytes: 1 }, VIDEO_LIMITS)).toEqual({
      action: 'reject',
      code: 'MEDIA_REJECTED',
      reason: 'the video lasts 180 min, over the 180 min limit',
    });
    const huge = { ...p, video: { ...p.video!, width: 8000, height: 8000 } };
    expect(decideVideo(huge, { durationMs: 1000, sizeBytes: 1 }, VIDEO_LIMITS)).toMatchObject({ action: 'reject', code: 'MEDIA_REJECTED' });
  });

  it('refuses an AVI whose GAB2 subtitle is not a subtitle (the HLS-in-AVI carrier), not other files with one', () => {
    expect(decideVideo(probe('aviGab2Hls'), { durationMs: 1000, sizeBytes: 20_000 }, VIDEO_LIMITS)).toEqual({
      action: 'reject',
      code: 'MEDIA_REJECTED',
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

describe('what a remux stores, known from the probe', () => {
  const remuxOf = (p: ProbeDescription): Extract<VideoDecision, { action: 'remux' }> => {
    const d = decideVideo(p, { durationMs: p.durationMs, sizeBytes: 1000 }, VIDEO_LIMITS);
    if (d.action !== 'remux') throw new Error(`expected a remux, got ${d.action}`);
    return d;
  };
  const timed = (video: [number, number] | null, audio: [number, number] | null): ProbeDescription => ({
    ...PHONE,
    video: { ...PHONE.video!, width: 1280, height: 720, displayWidth: 1280, displayHeight: 720, timing: video && { startMs: video[0], durationMs: video[1] } },
    audio: { ...PHONE.audio!, timing: audio && { startMs: audio[0], durationMs: audio[1] } },
  });

  it.each([
    ['recorded compliant MP4', probe('mp4Compliant'), 4000],
    ['both streams alike', timed([0, 10_000], [0, 10_000]), 10_000],
    ['audio priming before the first frame', timed([0, 10_000], [-21, 10_021]), 10_021],
    ['audio outlasting the picture', timed([0, 10_000], [0, 10_500]), 10_500],
    ['a stream of unknown timing', timed([0, 10_000], null), null],
  ] as const)('%s → %s ms', (_name, p, ms) => {
    expect(remuxedDurationMs(p, remuxOf(p))).toBe(ms);
  });

  it('a clip without audio: the picture alone', () => {
    const p = { ...timed([0, 3000], null), audio: null, streamCounts: { video: 1, audio: 0, attachedPictures: 0, other: 0 } };
    expect(remuxedDurationMs(p, remuxOf(p))).toBe(3000);
  });

  it('the poster is one second in, or halfway through a shorter clip', () => {
    expect(posterSeekSeconds(4000)).toBe(1);
    expect(posterSeekSeconds(1000)).toBe(0.5);
  });
});

describe('audioEncodeFor (audio first: AAC 64–128k by channels and source)', () => {
  const a = PHONE.audio!;
  it.each([
    ['stereo, unknown bitrate', { ...a, bitRate: null }, 128, 2],
    ['stereo 320k', { ...a, bitRate: 320_000 }, 128, 2],
    ['stereo 96k: no more than the source', { ...a, bitRate: 96_000 }, 96, 2],
    ['stereo 48k Opus: never below 64k', { ...a, codec: 'opus', bitRate: 48_000 }, 64, 2],
    ['mono PCM', { ...a, codec: 'pcm_s16le', channels: 1, bitRate: 768_000 }, 64, 1],
    ['5.1 downmixed', { ...a, channels: 6, bitRate: 384_000 }, 128, 2],
  ] as const)('%s', (_name, audio, kbps, channels) => {
    expect(audioEncodeFor(audio, VIDEO_LIMITS)).toEqual({ mode: 'encode', kbps, channels });
  });
});

describe('refitVideo (the one retry)', () => {
  const p = probe('mp4HighBitrate1080p60s');
  const d = decideVideo(p, { durationMs: 60000, sizeBytes: 22628937 }, VIDEO_LIMITS);
  if (d.action !== 'transcode' || d.video.mode !== 'encode') throw new Error('expected an encode');

  it('lowers the cap below the old one when the cap was binding', () => {
    // min(budget at 10% margin = 1734, 0.9 × 1878 = 1690, 0.9 × achieved 2538 = 2284) = 1690
    expect(refitVideo(d, 20_000_000, VIDEO_LIMITS)).toMatchObject({ action: 'transcode', width: 1280, height: 720, video: { maxrateKbps: 1690, bufsizeKbps: 3380 } });
  });
  it('binds even when crf, not a loose cap, decided the first size', () => {
    const loose = { ...d, video: { ...d.video, maxrateKbps: 8000 } };
    // (16e6 × 8 × 0.9 / 1000 − 128.168 × 60) / 62 = 1734
    expect(refitVideo(loose, 17_000_000, VIDEO_LIMITS)).toMatchObject({ video: { maxrateKbps: 1734 } });
  });
  it('steps down the ladder when the lower cap needs it', () => {
    // 60 s: min(1734, 0.9 × 1878 = 1690, 0.9 × achieved 1865) = 1690, 0.061 bit/pixel at 720p30: still 720p.
    expect(refitVideo(phoneFor(60_000), 16_500_000, VIDEO_LIMITS)).toMatchObject({ width: 1280, height: 720, video: { maxrateKbps: 1690 } });
    // 65 s: first 1728 at 720p; then 0.9 × 1728 = 1555, under 720p's 1659: 480p.
    expect(phoneFor(65_000)).toMatchObject({ width: 1280, height: 720 });
    expect(refitVideo(phoneFor(65_000), 16_500_000, VIDEO_LIMITS)).toMatchObject({ width: 854, height: 480, video: { width: 854, height: 480, maxrateKbps: 1555 } });
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
  it('fitBox bounds the long and the short side', () => {
    expect(fitBox(1440, 1080, 854, 480)).toEqual({ width: 640, height: 480 });
    expect(fitBox(1920, 804, 1280, 720)).toEqual({ width: 1280, height: 536 });
  });
  it.each([
    ['16:9 1080p', 1920, 1080, ['1280x720', '854x480']],
    ['portrait 1080p', 1080, 1920, ['720x1280', '480x854']],
    ['4:3 1440x1080: the 720p rung is 960x720', 1440, 1080, ['1280x960', '960x720', '640x480']],
    ['2.39:1', 1920, 804, ['1280x536', '854x358']],
    ['720p source', 1280, 720, ['1280x720', '854x480']],
    ['smaller than every rung: only itself', 320, 240, ['320x240']],
  ] as const)('ladderSizes: %s', (_name, w, h, sizes) => {
    expect(ladderSizes(w, h, VIDEO_LIMITS).map((s) => `${s.width}x${s.height}`)).toEqual(sizes);
  });
  it.each([
    [2834, 30, '1280x720'],
    [1659, 30, '1280x720'],
    [1658, 30, '854x480'],
    [2000, 60, '854x480'],
    [2500, 60, '1280x720'],
    [150, 30, '854x480'],
  ] as const)('sizeForBitrate: %i kbit/s at %i fps → %s', (kbps, fps, size) => {
    const s = sizeForBitrate(1920, 1080, fps, kbps, VIDEO_LIMITS);
    expect(`${s.width}x${s.height}`).toBe(size);
  });
  it('longestFittingMs: the floor and the audio within the budget, whole seconds', () => {
    expect(longestFittingMs(124_160, 64, VIDEO_LIMITS)).toBe(578_000);
    expect(longestFittingMs(124_160, 0, VIDEO_LIMITS)).toBe(825_000);
    expect(longestFittingMs(100, 64, VIDEO_LIMITS)).toBe(0);
  });
  it.each([
    [0, '0 s'],
    [45_400, '45 s'],
    [60_000, '1 min'],
    [578_000, '9 min 38 s'],
    [1_200_000, '20 min'],
    [3_880_000, '1 h 4 min 40 s'],
    [3_600_000, '1 h'],
  ] as const)('formatDuration(%i) = %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });
  it('formatMegabytes', () => {
    expect([formatMegabytes(16_000_000), formatMegabytes(500_000), formatMegabytes(1_234_567)]).toEqual(['16 MB', '0.5 MB', '1.23 MB']);
  });
});

describe('decideAudio', () => {
  const small = (name: string, sizeBytes = 60_000): AudioFacts => ({ sizeBytes, durationMs: probe(name).durationMs });
  it.each([
    ['mp3', 'audio/mpeg', 'remux'],
    ['m4a', 'audio/mp4', 'remux'],
    ['oggOpusMono', 'audio/ogg', 'remux'],
    ['wav', 'audio/wav', 'encode'],
    ['flac', 'audio/flac', 'encode'],
    ['webmOpusNoDuration', 'audio/webm', 'encode'],
  ])('%s (%s) → %s', (name, mime, action) => {
    expect(decideAudio(probe(name), mime, AUDIO_LIMITS, small(name)).action).toBe(action);
  });
  it('a playable file is remuxed into its own container (tags dropped, packets kept)', () => {
    expect(decideAudio(probe('mp3'), 'audio/mpeg', AUDIO_LIMITS, small('mp3'))).toEqual({
      action: 'remux',
      audioIndex: 0,
      durationMs: 3030,
      target: { muxer: 'mp3', ext: 'mp3', options: ['-id3v2_version', '0', '-write_id3v1', '0'] },
    });
    expect(decideAudio(probe('m4a'), 'audio/x-m4a', AUDIO_LIMITS, small('m4a'))).toMatchObject({ action: 'remux', target: { muxer: 'ipod', ext: 'm4a' } });
  });
  it('encodes to AAC stereo at 128k, downmixing', () => {
    expect(decideAudio(probe('wav'), 'audio/wav', AUDIO_LIMITS, small('wav'))).toEqual({ action: 'encode', audioIndex: 0, durationMs: 3000, kbps: 128, channels: 2 });
  });
  it('an audio file carrying a real video track is encoded (video dropped)', () => {
    expect(decideAudio(probe('mp4Compliant'), 'audio/mp4', AUDIO_LIMITS, small('mp4Compliant')).action).toBe('encode');
  });
  it('refuses no audio and over-long', () => {
    expect(decideAudio(probe('mp4Rotated'), 'audio/mp4', AUDIO_LIMITS, small('mp4Rotated'))).toEqual({ action: 'reject', code: 'MEDIA_REJECTED', reason: 'the file has no audio stream' });
    expect(decideAudio(probe('mp3'), 'audio/mpeg', AUDIO_LIMITS, { sizeBytes: 1, durationMs: 4 * 3600_000 })).toMatchObject({ action: 'reject', code: 'MEDIA_REJECTED' });
  });

  const mp3At = (kbps: number): ProbeDescription => {
    const p = probe('mp3');
    return { ...p, audio: { ...p.audio!, bitRate: kbps * 1000 } };
  };
  it.each([
    // name, probe bitrate kbps, file bytes, duration, → decision
    ['an MP3 over the limit (18 min at 128k): AAC at the rate that fits', 128, 17_280_000, 18 * 60_000, 'encode 114k x2'],
    ['an MP3 over the limit only by its cover art: remuxed (the art is dropped)', 128, 17_000_000, 10 * 60_000, 'remux'],
    ['40 min: mono below 64k', 128, 38_400_000, 40 * 60_000, 'encode 51k x1'],
    ['over the limit, duration unknown: 128k, the size check decides', 128, 20_000_000, null, 'encode 128k x2'],
    ['a 100 s WAV of 19 MB: the usual 128k fits', 1536, 19_200_000, 100_000, 'encode 128k x2'],
  ] as const)('%s', (_name, kbps, sizeBytes, durationMs, expected) => {
    const d = decideAudio(mp3At(kbps), kbps === 1536 ? 'audio/wav' : 'audio/mpeg', AUDIO_LIMITS, { sizeBytes, durationMs });
    expect(d.action === 'encode' ? `encode ${d.kbps}k x${d.channels}` : d.action).toBe(expected);
  });
  it('over the floor at 32k mono: FILE_TOO_LARGE naming the longest duration that fits', () => {
    // 16e6 × 8 × 0.97 / 32k = 3880 s.
    expect(decideAudio(mp3At(128), 'audio/mpeg', AUDIO_LIMITS, { sizeBytes: 62_400_000, durationMs: 65 * 60_000 })).toEqual({
      action: 'reject',
      code: 'FILE_TOO_LARGE',
      reason: 'an audio file of 1 h 5 min cannot fit 16 MB even at 32 kbit/s mono; at most 1 h 4 min 40 s fits',
    });
  });
  it('forceEncode (a remux that came out over) encodes a playable file', () => {
    expect(decideAudio(mp3At(128), 'audio/mpeg', AUDIO_LIMITS, { sizeBytes: 17_000_000, durationMs: 10 * 60_000, forceEncode: true })).toMatchObject({ action: 'encode', kbps: 128 });
  });
  it('refitAudio: lower by how far over it landed, at most 90% of the first; null under the floor', () => {
    const d = decideAudio(mp3At(128), 'audio/mpeg', AUDIO_LIMITS, { sizeBytes: 17_280_000, durationMs: 18 * 60_000 });
    // min(0.9 × 114, 114 × 16e6 × 0.95 / 16.2e6) = min(102.6, 106.9) → 102
    expect(refitAudio(d, 16_200_000, AUDIO_LIMITS)).toMatchObject({ action: 'encode', kbps: 102, channels: 2 });
    expect(refitAudio({ ...d, kbps: 60 } as AudioDecision, 16_200_000, AUDIO_LIMITS)).toMatchObject({ kbps: 54, channels: 1 });
    expect(refitAudio({ ...d, kbps: 34 } as AudioDecision, 16_200_000, AUDIO_LIMITS)).toBeNull();
    expect(refitAudio(d, 15_000_000, AUDIO_LIMITS)).toBeNull();
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
