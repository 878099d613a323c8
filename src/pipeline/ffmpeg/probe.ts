/**
 * ffprobe's JSON (`-show_format -show_streams`) turned into the few facts our decisions use.
 * Pure and defensive: ffprobe writes numbers as strings, omits what it does not know, and writes
 * `N/A` or `0/0` for unknown rates; every field here is either a real value or null.
 */

export interface ProbeVideo {
  index: number;
  codec: string;
  profile: string | null;
  pixFmt: string | null;
  /** Coded size. */
  width: number;
  height: number;
  /** Size as shown: sample aspect ratio applied, then a 90/270° display rotation swapping the axes. */
  displayWidth: number;
  displayHeight: number;
  /** Display-matrix rotation normalized to 0, 90, 180 or 270. */
  rotation: 0 | 90 | 180 | 270;
  /** Sample (pixel) aspect ratio, null when square or unknown. */
  sampleAspectRatio: number | null;
  fps: number | null;
  bitRate: number | null;
  /** The stream's own timing (see StreamTiming). */
  timing: StreamTiming | null;
}

export interface ProbeAudio {
  index: number;
  codec: string;
  profile: string | null;
  sampleRate: number | null;
  channels: number | null;
  bitRate: number | null;
  timing: StreamTiming | null;
}

/**
 * When a stream starts and how long it lasts, as the demuxer states it (for MP4, from the track's
 * own sample tables and edit list). A stream copy keeps it, so the timing of a remuxed file is
 * known from these without probing the output. Null when either is unknown (Matroska states none).
 */
export interface StreamTiming {
  startMs: number;
  durationMs: number;
}

export interface ProbeDescription {
  /** Demuxer names, e.g. ['mov','mp4','m4a','3gp','3g2','mj2']. */
  formatNames: string[];
  durationMs: number | null;
  sizeBytes: number | null;
  bitRate: number | null;
  /** The first real video stream (cover art is not video). */
  video: ProbeVideo | null;
  /** The first audio stream. */
  audio: ProbeAudio | null;
  streamCounts: { video: number; audio: number; attachedPictures: number; other: number };
  /** Subtitle streams ffprobe could not name a codec for (see decideVideo: GAB2 in AVI). */
  unidentifiedSubtitles: number;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function num(v: unknown): number | null {
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (typeof v !== 'string' || v.trim() === '' || v === 'N/A') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

function positive(v: unknown): number | null {
  const n = num(v);
  return n !== null && n > 0 ? n : null;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v !== '' && v !== 'unknown' ? v : null;
}

/** "30000/1001" → 29.97; "0/0" or junk → null. */
export function parseRational(v: unknown): number | null {
  if (typeof v !== 'string') return null;
  const m = /^(-?\d+(?:\.\d+)?)[/:](\d+(?:\.\d+)?)$/.exec(v.trim());
  if (!m) return positive(v);
  const den = Number(m[2]);
  const r = den === 0 ? NaN : Number(m[1]) / den;
  return Number.isFinite(r) && r > 0 ? r : null;
}

function rotationOf(stream: Json): 0 | 90 | 180 | 270 {
  let deg: number | null = null;
  const sideData = stream.side_data_list;
  if (Array.isArray(sideData)) {
    for (const sd of sideData) {
      if (isObject(sd) && num(sd.rotation) !== null) deg = num(sd.rotation);
    }
  }
  // Older ffprobe (< 5) exported the display matrix as a `rotate` tag instead.
  if (deg === null && isObject(stream.tags)) deg = num(stream.tags.rotate);
  if (deg === null) return 0;
  const r = ((Math.round(deg / 90) * 90) % 360 + 360) % 360;
  return r as 0 | 90 | 180 | 270;
}

function durationOf(o: Json): number | null {
  const s = positive(o.duration);
  return s === null ? null : Math.round(s * 1000);
}

function timingOf(stream: Json): StreamTiming | null {
  const start = num(stream.start_time);
  const durationMs = durationOf(stream);
  return start === null || durationMs === null ? null : { startMs: Math.round(start * 1000), durationMs };
}

export function parseProbe(json: unknown): ProbeDescription {
  if (!isObject(json)) throw new TypeError('ffprobe output is not a JSON object');
  const format = isObject(json.format) ? json.format : {};
  const streams = Array.isArray(json.streams) ? json.streams.filter(isObject) : [];

  const counts = { video: 0, audio: 0, attachedPictures: 0, other: 0 };
  let unidentifiedSubtitles = 0;
  let video: ProbeVideo | null = null;
  let audio: ProbeAudio | null = null;
  let longestStreamMs: number | null = null;

  for (const s of streams) {
    const type = s.codec_type;
    const index = num(s.index) ?? 0;
    const codec = str(s.codec_name) ?? 'unknown';
    const disposition = isObject(s.disposition) ? s.disposition : {};
    const d = durationOf(s);
    if (type === 'video' && num(disposition.attached_pic) === 1) {
      counts.attachedPictures += 1;
      continue;
    }
    if (d !== null && (type === 'video' || type === 'audio')) longestStreamMs = Math.max(longestStreamMs ?? 0, d);
    if (type === 'video') {
      counts.video += 1;
      const width = positive(s.width);
      const height = positive(s.height);
      if (video || width === null || height === null) continue;
      const sarRaw = parseRational(s.sample_aspect_ratio);
      const sar = sarRaw !== null && Math.abs(sarRaw - 1) > 1e-3 ? sarRaw : null;
      const rotation = rotationOf(s);
      const shownW = sar !== null ? Math.round(width * sar) : width;
      const swap = rotation === 90 || rotation === 270;
      video = {
        index,
        codec,
        profile: str(s.profile),
        pixFmt: str(s.pix_fmt),
        width,
        height,
        displayWidth: swap ? height : shownW,
        displayHeight: swap ? shownW : height,
        rotation,
        sampleAspectRatio: sar,
        fps: parseRational(s.avg_frame_rate) ?? parseRational(s.r_frame_rate),
        bitRate: positive(s.bit_rate),
        timing: timingOf(s),
      };
    } else if (type === 'audio') {
      counts.audio += 1;
      if (audio) continue;
      audio = {
        index,
        codec,
        profile: str(s.profile),
        sampleRate: positive(s.sample_rate),
        channels: positive(s.channels),
        bitRate: positive(s.bit_rate),
        timing: timingOf(s),
      };
    } else {
      counts.other += 1;
      if (type === 'subtitle' && codec === 'unknown') unidentifiedSubtitles += 1;
    }
  }

  const formatName = str(format.format_name);
  return {
    formatNames: formatName ? formatName.split(',') : [],
    durationMs: durationOf(format) ?? longestStreamMs,
    sizeBytes: positive(format.size),
    bitRate: positive(format.bit_rate),
    video,
    audio,
    streamCounts: counts,
    unidentifiedSubtitles,
  };
}
