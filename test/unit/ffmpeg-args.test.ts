import { describe, expect, it } from 'vitest';
import {
  buildAudioArgs,
  buildAudioRemuxArgs,
  buildBmpToPngArgs,
  buildDurationScanArgs,
  buildPosterArgs,
  buildProbeArgs,
  buildVideoArgs,
  buildVoiceNoteArgs,
  buildVoiceNoteRemuxArgs,
  buildVoiceNoteRunArgs,
  inputArgs,
} from '../../src/pipeline/ffmpeg/args.js';
import { AUDIO_REMUX_TARGETS } from '../../src/pipeline/ffmpeg/decide-audio.js';
import { demuxerFor } from '../../src/pipeline/ffmpeg/demuxer.js';

const HEAD = ['-nostdin', '-y', '-hide_banner', '-loglevel', 'error', '-threads', '2', '-protocol_whitelist', 'file,pipe'];
const STRIP = ['-map_metadata', '-1', '-map_chapters', '-1', '-sn', '-dn'];
const webm = { path: '/s/in.webm', demuxer: 'matroska', threads: 2 };
const mp4 = { path: '/s/in.mp4', demuxer: 'mov', threads: 2 };

describe('inputArgs', () => {
  it('forces the demuxer, whitelists protocols, uses a file: URL', () => {
    expect(inputArgs(webm)).toEqual([...HEAD, '-format_whitelist', 'matroska', '-f', 'matroska', '-i', 'file:/s/in.webm']);
  });
  it('MOV inputs never follow data references; a seek goes before -i', () => {
    expect(inputArgs({ ...mp4, seekSeconds: 1 })).toEqual([...HEAD, '-enable_drefs', '0', '-ss', '1.000', '-format_whitelist', 'mov', '-f', 'mov', '-i', 'file:/s/in.mp4']);
  });
  it.each(['mov', 'matroska', 'avi', 'mp3', 'ogg', 'aac', 'amr', 'wav', 'flac', 'bmp_pipe'])('%s: the format whitelist is the forced demuxer alone', (demuxer) => {
    const args = inputArgs({ path: '/s/in', demuxer, threads: 1 });
    expect(args.filter((a) => a === '-format_whitelist')).toHaveLength(1);
    expect(args[args.indexOf('-format_whitelist') + 1]).toBe(demuxer);
    expect(buildProbeArgs('/s/in', demuxer)).toEqual(expect.arrayContaining(['-format_whitelist', demuxer]));
  });
  it('a path that looks like a protocol or an option stays a file', () => {
    const args = inputArgs({ path: 'concat:/etc/passwd|-y', demuxer: 'mp3', threads: 1 });
    expect(args.slice(-2)).toEqual(['-i', 'file:concat:/etc/passwd|-y']);
  });
});

describe('buildProbeArgs', () => {
  it('json of format and streams, forced demuxer, and only that demuxer allowed', () => {
    expect(buildProbeArgs('/s/a.mp4', 'mov')).toEqual([
      '-hide_banner', '-loglevel', 'error', '-protocol_whitelist', 'file,pipe', '-enable_drefs', '0', '-format_whitelist', 'mov', '-f', 'mov',
      '-print_format', 'json', '-show_format', '-show_streams', 'file:/s/a.mp4',
    ]);
  });
});

describe('buildVideoArgs', () => {
  it('remux: copy both mapped streams, faststart, no metadata', () => {
    expect(buildVideoArgs(mp4, { action: 'remux', durationMs: 4000, videoIndex: 0, audioIndex: 1, width: 320, height: 240 }, 10_800_000, '/s/out.mp4')).toEqual([
      ...HEAD, '-enable_drefs', '0', '-format_whitelist', 'mov', '-f', 'mov', '-i', 'file:/s/in.mp4',
      '-map', '0:0', '-map', '0:1', ...STRIP, '-t', '5.000',
      '-c', 'copy',
      '-threads', '2', '-movflags', '+faststart', '-fflags', '+bitexact', '-f', 'mp4', 'file:/s/out.mp4',
    ]);
  });

  it('transcode: x264 with crf capped by maxrate/bufsize, exact scale, AAC', () => {
    expect(
      buildVideoArgs(
        webm,
        {
          action: 'transcode', durationMs: 30008, videoIndex: 0, audioIndex: 1, width: 1280, height: 720, fps: 15,
          video: { mode: 'encode', width: 1280, height: 720, crf: 23, preset: 'veryfast', maxrateKbps: 1857, bufsizeKbps: 3714, maxFps: 60 },
          audio: { mode: 'encode', kbps: 128, channels: 2 },
          audioKbps: 128,
        },
        10_800_000,
        '/s/out.mp4',
      ),
    ).toEqual([
      ...HEAD, '-format_whitelist', 'matroska', '-f', 'matroska', '-i', 'file:/s/in.webm',
      '-map', '0:0', '-map', '0:1', ...STRIP, '-t', '31.008',
      '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '23', '-profile:v', 'high', '-pix_fmt', 'yuv420p',
      '-vf', 'scale=1280:720:flags=bicubic,setsar=1', '-fpsmax', '60', '-maxrate', '1857k', '-bufsize', '3714k',
      '-c:a', 'aac', '-b:a', '128k', '-ac', '2',
      '-threads', '2', '-movflags', '+faststart', '-fflags', '+bitexact', '-f', 'mp4', 'file:/s/out.mp4',
    ]);
  });

  it("fit of a phone's 1080p clip: scaled to 720p, crf capped at the budget's maxrate, AAC copied, two threads", () => {
    expect(
      buildVideoArgs(
        { path: '/s/phone.mp4', demuxer: 'mov', threads: 2 },
        {
          action: 'transcode', durationMs: 40_000, videoIndex: 0, audioIndex: 1, width: 1280, height: 720, fps: 30,
          video: { mode: 'encode', width: 1280, height: 720, crf: 23, preset: 'veryfast', maxrateKbps: 2834, bufsizeKbps: 5668, maxFps: 60 },
          audio: { mode: 'copy' },
          audioKbps: 128,
        },
        10_800_000,
        '/s/video.mp4',
      ),
    ).toEqual([
      ...HEAD, '-enable_drefs', '0', '-format_whitelist', 'mov', '-f', 'mov', '-i', 'file:/s/phone.mp4',
      '-map', '0:0', '-map', '0:1', ...STRIP, '-t', '41.000',
      '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '23', '-profile:v', 'high', '-pix_fmt', 'yuv420p',
      '-vf', 'scale=1280:720:flags=bicubic,setsar=1', '-fpsmax', '60', '-maxrate', '2834k', '-bufsize', '5668k',
      '-c:a', 'copy',
      '-threads', '2', '-movflags', '+faststart', '-fflags', '+bitexact', '-f', 'mp4', 'file:/s/video.mp4',
    ]);
  });

  it('video copied, audio encoded; no audio stream maps nothing for it', () => {
    const copy = buildVideoArgs(
      mp4,
      { action: 'transcode', durationMs: 3000, videoIndex: 0, audioIndex: 1, width: 320, height: 240, fps: 25, video: { mode: 'copy' }, audio: { mode: 'encode', kbps: 128, channels: 1 }, audioKbps: 128 },
      10_800_000,
      '/s/o.mp4',
    );
    expect(copy.slice(copy.indexOf('-t'), copy.indexOf('-threads', 10))).toEqual(['-t', '4.000', '-c:v', 'copy', '-c:a', 'aac', '-b:a', '128k', '-ac', '1']);
    const silent = buildVideoArgs(mp4, { action: 'remux', durationMs: 3000, videoIndex: 0, audioIndex: null, width: 2, height: 2 }, 10_800_000, '/s/o.mp4');
    expect(silent.filter((a) => a === '-map')).toHaveLength(1);
  });

  it('the duration cap never exceeds the policy', () => {
    const a = buildVideoArgs(mp4, { action: 'remux', durationMs: 10_800_000, videoIndex: 0, audioIndex: null, width: 2, height: 2 }, 10_800_000, '/s/o.mp4');
    expect(a[a.indexOf('-t') + 1]).toBe('10800.000');
  });

  const remux = { action: 'remux', durationMs: 4000, videoIndex: 0, audioIndex: 1, width: 320, height: 240 } as const;
  const poster = { path: '/s/p.jpg', seekSeconds: 1 };

  it('remux with its poster in the same run: the input opened again, seeked and bounded, one MJPEG frame, written first', () => {
    expect(buildVideoArgs(mp4, remux, 10_800_000, '/s/out.mp4', poster)).toEqual([
      ...HEAD, '-enable_drefs', '0', '-format_whitelist', 'mov', '-f', 'mov', '-i', 'file:/s/in.mp4',
      '-threads', '2', '-protocol_whitelist', 'file,pipe', '-enable_drefs', '0', '-ss', '1.000', '-t', '1.000', '-format_whitelist', 'mov', '-f', 'mov', '-i', 'file:/s/in.mp4',
      '-map', '1:0', '-an', ...STRIP, '-frames:v', '1', '-c:v', 'mjpeg', '-q:v', '4', '-f', 'image2', '-update', '1', 'file:/s/p.jpg',
      '-map', '0:0', '-map', '0:1', ...STRIP, '-t', '5.000',
      '-c', 'copy',
      '-threads', '2', '-movflags', '+faststart', '-fflags', '+bitexact', '-f', 'mp4', 'file:/s/out.mp4',
    ]);
  });

  it('the poster rides along when the video is copied, never with an encode (its poster comes from the output)', () => {
    const copy = { ...remux, action: 'transcode', fps: 25, video: { mode: 'copy' }, audio: { mode: 'encode', kbps: 64, channels: 1 }, audioKbps: 64 } as const;
    const encode = {
      ...copy,
      video: { mode: 'encode', width: 320, height: 240, crf: 23, preset: 'veryfast', maxrateKbps: 1000, bufsizeKbps: 2000, maxFps: 60 },
    } as const;
    const nonMov = { path: '/s/in.mkv', demuxer: 'matroska', threads: 2 };
    expect(buildVideoArgs(mp4, copy, 10_800_000, '/s/o.mp4', poster)).toContain('file:/s/p.jpg');
    expect(buildVideoArgs(mp4, encode, 10_800_000, '/s/o.mp4', poster)).toEqual(buildVideoArgs(mp4, encode, 10_800_000, '/s/o.mp4'));
    const mkv = buildVideoArgs(nonMov, remux, 10_800_000, '/s/o.mp4', poster);
    expect(mkv.filter((a) => a === 'file:/s/in.mkv')).toHaveLength(2);
    expect(mkv).not.toContain('-enable_drefs');
  });

  it('every input of a two-input run is hardened alike: protocols, the forced demuxer and its whitelist before its -i', () => {
    const args = buildVideoArgs(mp4, remux, 10_800_000, '/s/out.mp4', poster);
    let from = 0;
    for (let i = args.indexOf('-i'); i !== -1; i = args.indexOf('-i', i + 1)) {
      const own = args.slice(from, i);
      expect(own[own.lastIndexOf('-protocol_whitelist') + 1]).toBe('file,pipe');
      expect(own[own.lastIndexOf('-format_whitelist') + 1]).toBe('mov');
      expect(own[own.lastIndexOf('-f') + 1]).toBe('mov');
      expect(own[own.lastIndexOf('-enable_drefs') + 1]).toBe('0');
      expect(own.lastIndexOf('-protocol_whitelist')).toBeGreaterThan(-1);
      from = i + 2;
    }
    expect(args.filter((a) => a === '-i')).toHaveLength(2);
  });
});

describe('audio builders', () => {
  it('voice note: Opus mono 48k voip, constrained VBR, plus a PCM tap on stdout', () => {
    expect(buildVoiceNoteArgs({ path: '/s/v.mp3', demuxer: 'mp3', threads: 2 }, { audioIndex: 0, kbps: 24, maxDurationMs: 4030, waveformSampleRate: 4000 }, '/s/v.ogg')).toEqual([
      ...HEAD, '-format_whitelist', 'mp3', '-f', 'mp3', '-i', 'file:/s/v.mp3',
      '-map', '0:0', '-vn', ...STRIP, '-t', '4.030',
      '-ac', '1', '-ar', '48000', '-c:a', 'libopus', '-b:a', '24k', '-vbr', 'constrained', '-application', 'voip',
      '-threads', '2', '-fflags', '+bitexact', '-f', 'ogg', 'file:/s/v.ogg',
      '-map', '0:0', '-vn', ...STRIP, '-t', '4.030', '-ac', '1', '-ar', '4000', '-c:a', 'pcm_s16le', '-f', 's16le', 'pipe:1',
    ]);
  });
  it('the voice note run: the encode or the remux, capped a second past the probed duration, within the policy', () => {
    const src = { path: '/s/v.m4a', demuxer: 'mov', threads: 2 };
    const limits = { maxDurationMs: 60_000, waveformSampleRate: 4000 };
    expect(buildVoiceNoteRunArgs(src, { action: 'encode', audioIndex: 0, durationMs: 5000, kbps: 32 }, limits, '/s/o.ogg')).toEqual(
      buildVoiceNoteArgs(src, { audioIndex: 0, kbps: 32, maxDurationMs: 6000, waveformSampleRate: 4000 }, '/s/o.ogg'),
    );
    expect(buildVoiceNoteRunArgs(src, { action: 'remux', audioIndex: 1, durationMs: 59_500 }, limits, '/s/o.ogg')).toEqual(
      buildVoiceNoteRemuxArgs(src, { audioIndex: 1, maxDurationMs: 60_000, waveformSampleRate: 4000 }, '/s/o.ogg'),
    );
    const unknown = buildVoiceNoteRunArgs(src, { action: 'encode', audioIndex: 0, durationMs: null, kbps: 16 }, limits, '/s/o.ogg');
    expect(unknown[unknown.indexOf('-t') + 1]).toBe('60.000');
  });
  it('voice note without waveform has one output', () => {
    const a = buildVoiceNoteArgs({ path: '/s/v.wav', demuxer: 'wav', threads: 1 }, { audioIndex: 2, kbps: 16, maxDurationMs: 1000, waveformSampleRate: null }, '/s/v.ogg');
    expect(a[a.length - 1]).toBe('file:/s/v.ogg');
    expect(a).not.toContain('pipe:1');
  });
  it('kept voice note: Opus packets copied into a fresh Ogg without tags, plus the PCM tap', () => {
    expect(buildVoiceNoteRemuxArgs({ path: '/s/v.ogg', demuxer: 'ogg', threads: 2 }, { audioIndex: 0, maxDurationMs: 4000, waveformSampleRate: 4000 }, '/s/o.ogg')).toEqual([
      ...HEAD, '-format_whitelist', 'ogg', '-f', 'ogg', '-i', 'file:/s/v.ogg',
      '-map', '0:0', '-vn', ...STRIP, '-t', '4.000', '-c:a', 'copy', '-fflags', '+bitexact', '-f', 'ogg', 'file:/s/o.ogg',
      '-map', '0:0', '-vn', ...STRIP, '-t', '4.000', '-ac', '1', '-ar', '4000', '-c:a', 'pcm_s16le', '-f', 's16le', 'pipe:1',
    ]);
  });
  it('kept audio: the one stream copied, tags and cover art left behind, same container', () => {
    expect(buildAudioRemuxArgs({ path: '/s/a.mp3', demuxer: 'mp3', threads: 2 }, { audioIndex: 0, target: AUDIO_REMUX_TARGETS['audio/mpeg']!, maxDurationMs: 10_800_000 }, '/s/o.mp3')).toEqual([
      ...HEAD, '-format_whitelist', 'mp3', '-f', 'mp3', '-i', 'file:/s/a.mp3',
      '-map', '0:0', '-vn', ...STRIP, '-t', '10800.000',
      '-c:a', 'copy', '-id3v2_version', '0', '-write_id3v1', '0', '-fflags', '+bitexact', '-f', 'mp3', 'file:/s/o.mp3',
    ]);
    const m4a = buildAudioRemuxArgs({ path: '/s/a.m4a', demuxer: 'mov', threads: 2 }, { audioIndex: 1, target: AUDIO_REMUX_TARGETS['audio/mp4']!, maxDurationMs: 1000 }, '/s/o.m4a');
    expect(m4a.slice(m4a.indexOf('-c:a'))).toEqual(['-c:a', 'copy', '-movflags', '+faststart', '-fflags', '+bitexact', '-f', 'ipod', 'file:/s/o.m4a']);
  });
  it('every playable audio format has a remux target', () => {
    expect(Object.keys(AUDIO_REMUX_TARGETS).sort()).toEqual(['audio/3gpp', 'audio/aac', 'audio/amr', 'audio/mp4', 'audio/mpeg', 'audio/ogg']);
  });
  it('audio: AAC in MP4 with faststart', () => {
    expect(buildAudioArgs({ path: '/s/a.flac', demuxer: 'flac', threads: 2 }, { audioIndex: 0, kbps: 128, channels: 2, maxDurationMs: 4000 }, '/s/a.m4a')).toEqual([
      ...HEAD, '-format_whitelist', 'flac', '-f', 'flac', '-i', 'file:/s/a.flac',
      '-map', '0:0', '-vn', ...STRIP, '-t', '4.000',
      '-c:a', 'aac', '-b:a', '128k', '-ac', '2',
      '-threads', '2', '-movflags', '+faststart', '-fflags', '+bitexact', '-f', 'mp4', 'file:/s/a.m4a',
    ]);
  });
});

describe('one-frame and scan builders', () => {
  it('poster: one MJPEG frame from the seek point', () => {
    expect(buildPosterArgs({ ...mp4, path: '/s/out.mp4', seekSeconds: 1 }, '/s/p.jpg')).toEqual([
      ...HEAD, '-enable_drefs', '0', '-ss', '1.000', '-format_whitelist', 'mov', '-f', 'mov', '-i', 'file:/s/out.mp4',
      '-map', '0:v:0', '-an', ...STRIP, '-frames:v', '1', '-c:v', 'mjpeg', '-q:v', '4', '-f', 'image2', '-update', '1', 'file:/s/p.jpg',
    ]);
  });
  it('duration scan: packets copied to the null muxer, capped a second past the limit', () => {
    expect(buildDurationScanArgs(webm, 1, 60_000)).toEqual([
      ...HEAD, '-format_whitelist', 'matroska', '-f', 'matroska', '-i', 'file:/s/in.webm', '-map', '0:1', ...STRIP, '-t', '61.000', '-c', 'copy', '-f', 'null', 'pipe:1',
    ]);
  });
  it('BMP to PNG: one frame', () => {
    expect(buildBmpToPngArgs({ path: '/s/i.bmp', demuxer: 'bmp_pipe', threads: 1 }, '/s/i.png')).toEqual([
      '-nostdin', '-y', '-hide_banner', '-loglevel', 'error', '-threads', '1', '-protocol_whitelist', 'file,pipe', '-format_whitelist', 'bmp_pipe', '-f', 'bmp_pipe', '-i', 'file:/s/i.bmp',
      '-map', '0:v:0', ...STRIP, '-frames:v', '1', '-c:v', 'png', '-f', 'image2', '-update', '1', 'file:/s/i.png',
    ]);
  });
});

describe('hardening holds for every builder', () => {
  const all: Array<[string, string[]]> = [
    ['video', buildVideoArgs(mp4, { action: 'remux', durationMs: 1, videoIndex: 0, audioIndex: 1, width: 2, height: 2 }, 10, '/o')],
    ['voice', buildVoiceNoteArgs(webm, { audioIndex: 0, kbps: 16, maxDurationMs: 1, waveformSampleRate: 4000 }, '/o')],
    ['audio', buildAudioArgs(webm, { audioIndex: 0, kbps: 1, channels: 1, maxDurationMs: 1 }, '/o')],
    ['voice remux', buildVoiceNoteRemuxArgs(webm, { audioIndex: 0, maxDurationMs: 1, waveformSampleRate: 4000 }, '/o')],
    ['audio remux', buildAudioRemuxArgs(webm, { audioIndex: 0, target: AUDIO_REMUX_TARGETS['audio/ogg']!, maxDurationMs: 1 }, '/o')],
    ['poster', buildPosterArgs(mp4, '/o')],
    ['scan', buildDurationScanArgs(webm, 0, 1)],
    ['bmp', buildBmpToPngArgs({ path: '/i', demuxer: 'bmp_pipe', threads: 1 }, '/o')],
  ];
  it.each(all)('%s', (_name, args) => {
    expect(args.slice(0, 3)).toEqual(['-nostdin', '-y', '-hide_banner']);
    expect(args[args.indexOf('-protocol_whitelist') + 1]).toBe('file,pipe');
    expect(args.indexOf('-f')).toBeLessThan(args.indexOf('-i'));
    // Exactly the forced demuxer may open, nested demuxers included.
    expect(args[args.indexOf('-format_whitelist') + 1]).toBe(args[args.indexOf('-f') + 1]);
    expect(args.indexOf('-format_whitelist')).toBeLessThan(args.indexOf('-i'));
    expect(args).toContain('-map_metadata');
    expect(args[args.indexOf('-map_metadata') + 1]).toBe('-1');
    expect(args).toContain('-threads');
    expect(args.some((a) => /^(https?|concat|subfile|data|crypto|tcp|udp):/.test(a))).toBe(false);
  });
});

describe('demuxerFor', () => {
  it.each([
    ['video/mp4', 'mov'],
    ['video/quicktime', 'mov'],
    ['audio/x-m4a', 'mov'],
    ['video/webm', 'matroska'],
    ['video/x-matroska', 'matroska'],
    ['video/x-msvideo', 'avi'],
    ['audio/mp3', 'mp3'],
    ['audio/ogg; codecs=opus', 'ogg'],
    ['audio/x-wav', 'wav'],
    ['audio/amr', 'amr'],
    ['audio/aac', 'aac'],
    ['audio/flac', 'flac'],
  ])('%s → %s', (mime, demuxer) => {
    expect(demuxerFor(mime)).toBe(demuxer);
  });
  it('no demuxer for playlists or anything unknown', () => {
    expect(demuxerFor('application/vnd.apple.mpegurl')).toBeNull();
    expect(demuxerFor('application/x-mpegurl')).toBeNull();
    expect(demuxerFor('text/plain')).toBeNull();
    expect(demuxerFor('')).toBeNull();
  });
});
