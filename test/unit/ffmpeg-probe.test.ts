import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseProbe, parseRational } from '../../src/pipeline/ffmpeg/probe.js';

const recorded = (name: string): unknown =>
  JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'ffprobe', `${name}.json`), 'utf8'));

const MOV = ['mov', 'mp4', 'm4a', '3gp', '3g2', 'mj2'];

describe('parseProbe on recorded ffprobe 5.1 output', () => {
  it('WebM VP9 + Opus: duration from the format, streams with no bitrate', () => {
    expect(parseProbe(recorded('webmVp9Opus30s'))).toEqual({
      formatNames: ['matroska', 'webm'],
      durationMs: 30008,
      sizeBytes: 1170626,
      bitRate: 312083,
      video: {
        index: 0, codec: 'vp9', profile: 'Profile 0', pixFmt: 'yuv420p', width: 320, height: 240,
        displayWidth: 320, displayHeight: 240, rotation: 0, sampleAspectRatio: null, fps: 15, bitRate: null, timing: null,
      },
      audio: { index: 1, codec: 'opus', profile: null, sampleRate: 48000, channels: 2, bitRate: null, timing: null },
      streamCounts: { video: 1, audio: 1, attachedPictures: 0, other: 0 },
      unidentifiedSubtitles: 0,
    });
  });

  it('compliant MP4: H.264 + AAC-LC with their bitrates', () => {
    expect(parseProbe(recorded('mp4Compliant'))).toEqual({
      formatNames: MOV,
      durationMs: 4000,
      sizeBytes: 414262,
      bitRate: 828524,
      video: {
        index: 0, codec: 'h264', profile: 'Constrained Baseline', pixFmt: 'yuv420p', width: 320, height: 240,
        displayWidth: 320, displayHeight: 240, rotation: 0, sampleAspectRatio: null, fps: 25, bitRate: 723448,
        timing: { startMs: 0, durationMs: 4000 },
      },
      audio: { index: 1, codec: 'aac', profile: 'LC', sampleRate: 44100, channels: 1, bitRate: 96430, timing: { startMs: 0, durationMs: 4000 } },
      streamCounts: { video: 1, audio: 1, attachedPictures: 0, other: 0 },
      unidentifiedSubtitles: 0,
    });
  });

  it('a -90° display matrix swaps the displayed size', () => {
    const p = parseProbe(recorded('mp4Rotated'));
    expect(p.video).toMatchObject({ width: 320, height: 240, rotation: 270, displayWidth: 240, displayHeight: 320 });
    expect(p.audio).toBeNull();
  });

  it('QuickTime with PCM audio', () => {
    const p = parseProbe(recorded('movPcm'));
    expect(p.audio).toEqual({ index: 1, codec: 'pcm_s16le', profile: null, sampleRate: 48000, channels: 1, bitRate: 768000, timing: { startMs: 0, durationMs: 3000 } });
    expect(p.video?.codec).toBe('h264');
  });

  it('audio-only files have no video', () => {
    for (const [name, codec, ms] of [
      ['wav', 'pcm_s16le', 3000],
      ['mp3', 'mp3', 3030],
      ['flac', 'flac', 3000],
      ['m4a', 'aac', 3000],
      ['oggOpusMono', 'opus', 3007],
    ] as const) {
      const p = parseProbe(recorded(name));
      expect(p.video, name).toBeNull();
      expect(p.audio?.codec, name).toBe(codec);
      expect(p.durationMs, name).toBe(ms);
    }
  });

  it('the HLS-in-AVI carrier: raw video plus a GAB2 subtitle ffmpeg could not name', () => {
    const p = parseProbe(recorded('aviGab2Hls'));
    expect(p.formatNames).toEqual(['avi']);
    expect(p.video).toMatchObject({ codec: 'rawvideo', width: 16, height: 16 });
    expect(p.streamCounts).toEqual({ video: 1, audio: 0, attachedPictures: 0, other: 1 });
    expect(p.unidentifiedSubtitles).toBe(1);
  });

  it('a MediaRecorder-style WebM states no duration: null, not 0', () => {
    const p = parseProbe(recorded('webmOpusNoDuration'));
    expect(p.durationMs).toBeNull();
    expect(p.bitRate).toBeNull();
    expect(p.audio).toMatchObject({ codec: 'opus', channels: 1 });
  });
});

describe('parseProbe edge cases', () => {
  it('cover art is not video; data streams are counted as other', () => {
    const p = parseProbe({
      format: { format_name: 'mp3', duration: '1.5' },
      streams: [
        { index: 0, codec_type: 'audio', codec_name: 'mp3', sample_rate: '44100', channels: 2 },
        { index: 1, codec_type: 'video', codec_name: 'mjpeg', width: 500, height: 500, disposition: { attached_pic: 1 } },
        { index: 2, codec_type: 'data', codec_name: 'bin_data' },
      ],
    });
    expect(p.video).toBeNull();
    expect(p.streamCounts).toEqual({ video: 0, audio: 1, attachedPictures: 1, other: 1 });
    expect(p.unidentifiedSubtitles).toBe(0);
    expect(p.durationMs).toBe(1500);
  });

  it('anamorphic video: the sample aspect ratio widens the displayed size', () => {
    const p = parseProbe({
      format: {},
      streams: [{ index: 0, codec_type: 'video', codec_name: 'mpeg2video', width: 720, height: 576, sample_aspect_ratio: '16:15', avg_frame_rate: '0/0', r_frame_rate: '25/1' }],
    });
    expect(p.video).toMatchObject({ sampleAspectRatio: 16 / 15, displayWidth: 768, displayHeight: 576, fps: 25 });
  });

  it('unknowns become null: N/A, 0/0, missing format duration falls back to the longest stream', () => {
    const p = parseProbe({
      format: { duration: 'N/A', size: 'N/A', bit_rate: 'N/A' },
      streams: [
        { index: 0, codec_type: 'video', codec_name: 'h264', width: 64, height: 64, avg_frame_rate: '0/0', r_frame_rate: '0/0', duration: '2.5', bit_rate: 'N/A' },
        { index: 1, codec_type: 'audio', codec_name: 'aac', duration: '2.75', channels: 'x' },
      ],
    });
    expect(p.durationMs).toBe(2750);
    expect(p.sizeBytes).toBeNull();
    expect(p.video).toMatchObject({ fps: null, bitRate: null, profile: null, pixFmt: null });
    expect(p.audio).toMatchObject({ channels: null, sampleRate: null });
  });

  it("each stream's timing: start and duration together, or null when either is unknown", () => {
    const p = parseProbe({
      streams: [
        { index: 0, codec_type: 'video', codec_name: 'h264', width: 64, height: 64, start_time: '0.000000', duration: '10.010000' },
        { index: 1, codec_type: 'audio', codec_name: 'aac', start_time: '-0.021333', duration: '10.042667' },
      ],
    });
    expect(p.video?.timing).toEqual({ startMs: 0, durationMs: 10_010 });
    expect(p.audio?.timing).toEqual({ startMs: -21, durationMs: 10_043 });
    const unknown = parseProbe({ streams: [{ index: 0, codec_type: 'audio', codec_name: 'opus', start_time: 'N/A', duration: '3.0' }] });
    expect(unknown.audio?.timing).toBeNull();
  });

  it('the older rotate tag is read when there is no display matrix', () => {
    const p = parseProbe({ streams: [{ index: 0, codec_type: 'video', codec_name: 'h264', width: 1920, height: 1080, tags: { rotate: '90' } }] });
    expect(p.video).toMatchObject({ rotation: 90, displayWidth: 1080, displayHeight: 1920 });
  });

  it('a video stream without a size is skipped for the next one', () => {
    const p = parseProbe({
      streams: [
        { index: 0, codec_type: 'video', codec_name: 'h264' },
        { index: 1, codec_type: 'video', codec_name: 'h264', width: 10, height: 20 },
      ],
    });
    expect(p.video?.index).toBe(1);
    expect(p.streamCounts.video).toBe(2);
  });

  it('refuses what is not an object', () => {
    expect(() => parseProbe(null)).toThrow(TypeError);
    expect(() => parseProbe([1])).toThrow(TypeError);
    expect(parseProbe({}).formatNames).toEqual([]);
  });

  it('parseRational', () => {
    expect(parseRational('30000/1001')).toBeCloseTo(29.97, 2);
    expect(parseRational('0/0')).toBeNull();
    expect(parseRational('4:3')).toBeCloseTo(4 / 3);
    expect(parseRational('25')).toBe(25);
    expect(parseRational(12)).toBeNull();
    expect(parseRational('-1/2')).toBeNull();
  });
});
