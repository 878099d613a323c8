/**
 * Argument lists for every ffmpeg/ffprobe run, as pure functions (tested with exact equality).
 *
 * Hardening common to all of them, and why:
 * - `-nostdin`: ffmpeg must never wait on (or read commands from) a terminal; `-y` for the same
 *   reason (it would otherwise ask before overwriting, and fail without a terminal).
 * - `-protocol_whitelist file,pipe` and `file:` URLs: no network, no `concat:`/`subfile:`, and a
 *   path can never be read as a protocol.
 * - `-f <demuxer>` forced from the sniffed type: no format guessing, so no playlist (HLS), concat
 *   script or image-sequence demuxer can be reached; `-enable_drefs 0` stops MOV data references
 *   from pointing at other files.
 * - `-format_whitelist <the same demuxer>`: `-f` only picks the outer demuxer, while some demuxers
 *   open an inner one chosen by probing the payload (AVI's GAB2 subtitles, and any future nesting);
 *   the whitelist is inherited by every nested context, so nothing but the forced demuxer ever
 *   parses a byte. ffmpeg matches it against any of the demuxer's names (`mov` is
 *   `mov,mp4,m4a,3gp,3g2,mj2`, `matroska` is `matroska,webm`), so the one name we force is enough.
 * - `-map_metadata -1 -map_chapters -1`, `-sn -dn` and explicit `-map`s: only the one audio and
 *   video stream we chose go out, without tags (GPS in `©xyz`, device names) or chapters.
 * - `-t`: a duration cap even when the container lies about its duration.
 * - `-threads`: bounded decoder/encoder threads, so one job cannot take the machine.
 * - `-fflags +bitexact`: no muxer version or creation time, so output is deterministic.
 */
import type { VoiceNoteLimits } from './av-limits.js';
import type { RemuxTarget, VoiceNoteDecision } from './decide-audio.js';
import type { VideoDecision } from './decide-video.js';

export interface InputSpec {
  path: string;
  demuxer: string;
  threads: number;
  /** Input seek, seconds (poster frames). */
  seekSeconds?: number;
}

const seconds = (ms: number): string => (ms / 1000).toFixed(3);

/** The demuxer forced, and the only one allowed to open, for an input (ffmpeg and ffprobe alike). */
function forcedDemuxer(demuxer: string): string[] {
  return ['-format_whitelist', demuxer, '-f', demuxer];
}

/** Global options and one hardened input. */
export function inputArgs(input: InputSpec): string[] {
  return [
    '-nostdin',
    // Outputs are our own scratch paths: a second attempt (a refit) overwrites the first, where
    // ffmpeg without -y would refuse and exit 1.
    '-y',
    '-hide_banner',
    '-loglevel',
    'error',
    '-threads',
    String(input.threads),
    '-protocol_whitelist',
    'file,pipe',
    ...(input.demuxer === 'mov' ? ['-enable_drefs', '0'] : []),
    ...(input.seekSeconds !== undefined ? ['-ss', input.seekSeconds.toFixed(3)] : []),
    ...forcedDemuxer(input.demuxer),
    '-i',
    `file:${input.path}`,
  ];
}

export function buildProbeArgs(path: string, demuxer: string): string[] {
  return [
    '-hide_banner',
    '-loglevel',
    'error',
    '-protocol_whitelist',
    'file,pipe',
    ...(demuxer === 'mov' ? ['-enable_drefs', '0'] : []),
    ...forcedDemuxer(demuxer),
    '-print_format',
    'json',
    '-show_format',
    '-show_streams',
    `file:${path}`,
  ];
}

const STRIP = ['-map_metadata', '-1', '-map_chapters', '-1', '-sn', '-dn'];

/** Where the poster frame goes and the moment it shows. */
export interface PosterPlan {
  path: string;
  seekSeconds: number;
}

/**
 * The poster as a second output of a run that copies the video: its frame is read from the same
 * file opened a second time and seeked, which costs the frames decoded from the keyframe before
 * the seek point, not a second ffmpeg process (about 100 ms of CPU each: Debian's ffmpeg loads 215
 * shared libraries before `main`). The poster output goes first, which lets ffmpeg 5.1 stop reading
 * that input once its frame is out (listed after the remux, it read and decoded the whole file);
 * the input's `-t` bounds the reading whatever a later scheduler does.
 */
function posterFromInput(input: InputSpec, videoIndex: number, poster: PosterPlan): { input: string[]; output: string[] } {
  return {
    input: [
      '-threads',
      String(input.threads),
      '-protocol_whitelist',
      'file,pipe',
      ...(input.demuxer === 'mov' ? ['-enable_drefs', '0'] : []),
      '-ss',
      poster.seekSeconds.toFixed(3),
      '-t',
      '1.000',
      ...forcedDemuxer(input.demuxer),
      '-i',
      `file:${input.path}`,
    ],
    output: ['-map', `1:${videoIndex}`, ...posterOutput(poster.path)],
  };
}

/** One MJPEG frame of the mapped video, without metadata. */
function posterOutput(outputPath: string): string[] {
  return ['-an', ...STRIP, '-frames:v', '1', '-c:v', 'mjpeg', '-q:v', '4', '-f', 'image2', '-update', '1', `file:${outputPath}`];
}

/**
 * MP4 for every stored video: H.264 + AAC (encoded or copied), moov first for progressive playback.
 * With `poster`, a run that copies the video (a remux, or only the audio encoded) also writes the
 * poster frame; an encode ignores it (its poster is taken from the encoded output).
 */
export function buildVideoArgs(
  input: InputSpec,
  decision: Exclude<VideoDecision, { action: 'reject' }>,
  maxDurationMs: number,
  outputPath: string,
  poster?: PosterPlan,
): string[] {
  const withPoster = poster !== undefined && videoCopied(decision) ? posterFromInput(input, decision.videoIndex, poster) : null;
  const args = [...inputArgs(input), ...(withPoster?.input ?? []), ...(withPoster?.output ?? []), '-map', `0:${decision.videoIndex}`];
  if (decision.audioIndex !== null) args.push('-map', `0:${decision.audioIndex}`);
  args.push(...STRIP, '-t', seconds(Math.min(decision.durationMs + 1000, maxDurationMs)));
  if (decision.action === 'remux') {
    args.push('-c', 'copy');
  } else {
    const v = decision.video;
    if (v.mode === 'copy') {
      args.push('-c:v', 'copy');
    } else {
      args.push(
        '-c:v',
        'libx264',
        '-preset',
        v.preset,
        '-crf',
        String(v.crf),
        '-profile:v',
        'high',
        '-pix_fmt',
        'yuv420p',
        // Autorotation happens before the filter, so the size is the displayed one; setsar=1 makes
        // anamorphic sources square-pixelled at their display size.
        '-vf',
        `scale=${v.width}:${v.height}:flags=bicubic,setsar=1`,
        '-fpsmax',
        String(v.maxFps),
        '-maxrate',
        `${v.maxrateKbps}k`,
        '-bufsize',
        `${v.bufsizeKbps}k`,
      );
    }
    const a = decision.audio;
    if (a?.mode === 'copy') args.push('-c:a', 'copy');
    else if (a?.mode === 'encode') args.push('-c:a', 'aac', '-b:a', `${a.kbps}k`, '-ac', String(a.channels));
  }
  args.push('-threads', String(input.threads), '-movflags', '+faststart', '-fflags', '+bitexact', '-f', 'mp4', `file:${outputPath}`);
  return args;
}

/** A second output that decodes the same audio to raw mono PCM on stdout, for the waveform. */
function waveformOutput(audioIndex: number, maxDurationMs: number, sampleRate: number): string[] {
  return ['-map', `0:${audioIndex}`, '-vn', ...STRIP, '-t', seconds(maxDurationMs), '-ac', '1', '-ar', String(sampleRate), '-c:a', 'pcm_s16le', '-f', 's16le', 'pipe:1'];
}

export interface VoiceNotePlan {
  audioIndex: number;
  kbps: number;
  maxDurationMs: number;
  /** When set, the same run also writes s16le mono PCM at this rate to stdout (one decode for both). */
  waveformSampleRate: number | null;
}

/** OGG Opus mono 48 kHz, tuned for speech, with an optional waveform tap. */
export function buildVoiceNoteArgs(input: InputSpec, plan: VoiceNotePlan, outputPath: string): string[] {
  const args = [
    ...inputArgs(input),
    '-map',
    `0:${plan.audioIndex}`,
    '-vn',
    ...STRIP,
    '-t',
    seconds(plan.maxDurationMs),
    '-ac',
    '1',
    '-ar',
    '48000',
    '-c:a',
    'libopus',
    '-b:a',
    `${plan.kbps}k`,
    // Constrained VBR keeps the size promise of the chosen bitrate while still saving on silence.
    '-vbr',
    'constrained',
    '-application',
    'voip',
    '-threads',
    String(input.threads),
    '-fflags',
    '+bitexact',
    '-f',
    'ogg',
    `file:${outputPath}`,
  ];
  if (plan.waveformSampleRate !== null) args.push(...waveformOutput(plan.audioIndex, plan.maxDurationMs, plan.waveformSampleRate));
  return args;
}

/** The one audio stream copied, untouched, with every tag and picture left behind. */
function audioStreamCopy(input: InputSpec, audioIndex: number, maxDurationMs: number): string[] {
  return [...inputArgs(input), '-map', `0:${audioIndex}`, '-vn', ...STRIP, '-t', seconds(maxDurationMs), '-c:a', 'copy'];
}

/** A muxer and its options: how a kept format is written back out. */
export interface AudioRemuxPlan {
  audioIndex: number;
  target: RemuxTarget;
  maxDurationMs: number;
}

/**
 * The one audio stream copied into a fresh container of the same format: packets unchanged, and
 * nothing else carried over (ID3v2/ID3v1 frames, Vorbis comments, iTunes atoms, cover art — an
 * attached picture is a video stream, left out by the single `-map`).
 */
export function buildAudioRemuxArgs(input: InputSpec, plan: AudioRemuxPlan, outputPath: string): string[] {
  return [
    ...audioStreamCopy(input, plan.audioIndex, plan.maxDurationMs),
    ...plan.target.options,
    '-fflags',
    '+bitexact',
    '-f',
    plan.target.muxer,
    `file:${outputPath}`,
  ];
}

/**
 * The one run of a voice note: a mono Ogg Opus remuxed, anything else encoded, both with the
 * waveform tap. The duration cap is a second past the probed duration (an unknown one gets the
 * policy's), never past the policy.
 */
export function buildVoiceNoteRunArgs(
  input: InputSpec,
  decision: Exclude<VoiceNoteDecision, { action: 'reject' }>,
  limits: Pick<VoiceNoteLimits, 'maxDurationMs' | 'waveformSampleRate'>,
  outputPath: string,
): string[] {
  const maxDurationMs = Math.min((decision.durationMs ?? limits.maxDurationMs) + 1000, limits.maxDurationMs);
  if (decision.action === 'remux') {
    return buildVoiceNoteRemuxArgs(input, { audioIndex: decision.audioIndex, maxDurationMs, waveformSampleRate: limits.waveformSampleRate }, outputPath);
  }
  return buildVoiceNoteArgs(input, { audioIndex: decision.audioIndex, kbps: decision.kbps, maxDurationMs, waveformSampleRate: limits.waveformSampleRate }, outputPath);
}

/** A mono OGG Opus voice note remuxed without its tags, and its waveform decoded in the same run. */
export function buildVoiceNoteRemuxArgs(input: InputSpec, plan: Omit<VoiceNotePlan, 'kbps' | 'waveformSampleRate'> & { waveformSampleRate: number }, outputPath: string): string[] {
  return [
    ...audioStreamCopy(input, plan.audioIndex, plan.maxDurationMs),
    '-fflags',
    '+bitexact',
    '-f',
    'ogg',
    `file:${outputPath}`,
    ...waveformOutput(plan.audioIndex, plan.maxDurationMs, plan.waveformSampleRate),
  ];
}

export interface AudioPlan {
  audioIndex: number;
  kbps: number;
  channels: number;
  maxDurationMs: number;
}

/** AAC-LC in MP4 (`audio/mp4`) for audio recipients cannot play as sent (WAV, FLAC, WEBM). */
export function buildAudioArgs(input: InputSpec, plan: AudioPlan, outputPath: string): string[] {
  return [
    ...inputArgs(input),
    '-map',
    `0:${plan.audioIndex}`,
    '-vn',
    ...STRIP,
    '-t',
    seconds(plan.maxDurationMs),
    '-c:a',
    'aac',
    '-b:a',
    `${plan.kbps}k`,
    '-ac',
    String(plan.channels),
    '-threads',
    String(input.threads),
    '-movflags',
    '+faststart',
    '-fflags',
    '+bitexact',
    '-f',
    'mp4',
    `file:${outputPath}`,
  ];
}

/** One JPEG frame from the stored MP4 (our own output, so its demuxer is known). */
export function buildPosterArgs(input: InputSpec, outputPath: string): string[] {
  return [...inputArgs(input), '-map', '0:v:0', ...posterOutput(outputPath)];
}

/** Whether a video run copies the video packets (so its poster can come from the input as is). */
export function videoCopied(decision: Exclude<VideoDecision, { action: 'reject' }>): boolean {
  return decision.action === 'remux' || decision.video.mode === 'copy';
}

/** Reads every packet of one stream without decoding, to learn a duration the container does not state (MediaRecorder WebM). */
export function buildDurationScanArgs(input: InputSpec, streamIndex: number, capMs: number): string[] {
  // Stop one second past the cap: a longer file is then measured as over the limit, and rejected, without reading it all.
  return [...inputArgs(input), '-map', `0:${streamIndex}`, ...STRIP, '-t', seconds(capMs + 1000), '-c', 'copy', '-f', 'null', 'pipe:1'];
}

/** BMP, which sharp's libvips cannot read, to PNG (lossless), after the header was checked. */
export function buildBmpToPngArgs(input: InputSpec, outputPath: string): string[] {
  return [...inputArgs(input), '-map', '0:v:0', ...STRIP, '-frames:v', '1', '-c:v', 'png', '-f', 'image2', '-update', '1', `file:${outputPath}`];
}
