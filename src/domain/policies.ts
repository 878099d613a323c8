import type { MediaKind } from './kinds.js';

/** Limits use decimal units, as the contract writes them: 5 MB = 5,000,000 bytes. */
export const MB = 1_000_000;
export const KB = 1_000;
export const HARD_CAP_BYTES = 100 * MB;

export interface MediaPolicy {
  /** Sniffed MIME essences stored (after normalization) in their own format. */
  readonly mimes: readonly string[];
  /** Sniffed MIME essences accepted and converted into one of `mimes`' formats. */
  readonly converted: readonly string[];
  /** Input size limit, enforced while streaming. */
  readonly maxBytes: number;
  /** Limit for animated stickers (only stickers). */
  readonly maxBytesAnimated?: number;
  readonly maxPixels?: number;
  readonly maxFrames?: number;
  readonly maxDurationMs?: number;
  /** The message type a gateway should send this media as. */
  readonly messageType: 'image' | 'video' | 'audio' | 'ptt' | 'document' | 'sticker';
}

const IMAGE_STORED = ['image/jpeg', 'image/png', 'image/webp', 'image/gif'];
const IMAGE_CONVERTED = ['image/heic', 'image/heif', 'image/avif', 'image/tiff', 'image/bmp'];
const VIDEO_STORED = ['video/mp4', 'video/3gpp'];
const VIDEO_CONVERTED = ['video/quicktime', 'video/webm', 'video/matroska', 'video/x-matroska', 'video/vnd.avi', 'video/x-msvideo', 'video/avi'];
const AUDIO_STORED = ['audio/mpeg', 'audio/ogg', 'audio/opus', 'audio/mp4', 'audio/x-m4a', 'audio/aac', 'audio/amr', 'audio/3gpp'];
const AUDIO_CONVERTED = ['audio/wav', 'audio/x-wav', 'audio/vnd.wave', 'audio/flac', 'audio/x-flac', 'audio/webm'];
const DOCUMENTS = [
  'application/pdf',
  'application/msword',
  'application/vnd.ms-excel',
  'application/x-cfb',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  'text/plain',
];

export const MEDIA_POLICIES: Readonly<Record<MediaKind, MediaPolicy>> = {
  image: { mimes: IMAGE_STORED, converted: IMAGE_CONVERTED, maxBytes: 5 * MB, maxPixels: 40_000_000, maxFrames: 1000, messageType: 'image' },
  sticker: { mimes: ['image/webp', 'image/png', 'image/gif'], converted: [], maxBytes: 100 * KB, maxBytesAnimated: 500 * KB, maxPixels: 40_000_000, maxFrames: 1000, messageType: 'sticker' },
  video: { mimes: VIDEO_STORED, converted: VIDEO_CONVERTED, maxBytes: 16 * MB, maxDurationMs: 3 * 60 * 60 * 1000, messageType: 'video' },
  audio: { mimes: AUDIO_STORED, converted: AUDIO_CONVERTED, maxBytes: 16 * MB, maxDurationMs: 3 * 60 * 60 * 1000, messageType: 'audio' },
  voice_note: {
    mimes: ['audio/ogg', 'audio/opus'],
    converted: ['audio/mpeg', 'audio/webm', 'video/webm', 'audio/mp4', 'audio/x-m4a', 'audio/aac', 'audio/amr', 'audio/wav', 'audio/x-wav', 'audio/vnd.wave'],
    maxBytes: 16 * MB,
    maxDurationMs: 60 * 60 * 1000,
    messageType: 'ptt',
  },
  document: { mimes: DOCUMENTS, converted: [], maxBytes: 10 * MB, messageType: 'document' },
};

/**
 * Stickers accept an input larger than the stored limit (they are re-encoded to fit), but images
 * are limited on input, so the input cap of a kind is its `maxBytes`, except stickers whose
 * animated limit bounds the input.
 */
/** Per-app overrides of input limits (the `limits` of an app row), in bytes per kind. */
export type KindLimits = Partial<Record<MediaKind, number>>;

export function inputLimitBytes(kind: MediaKind, override?: number): number {
  const p = MEDIA_POLICIES[kind];
  const base = override ?? (p.maxBytesAnimated ?? p.maxBytes);
  return Math.min(base, HARD_CAP_BYTES);
}

/** MIME essence: lower case, parameters dropped (file-type says `audio/ogg; codecs=opus`). */
export function mimeEssence(mime: string | undefined | null): string {
  if (!mime) return '';
  return mime.split(';')[0]!.trim().toLowerCase();
}

const MIME_ALIASES: Record<string, string> = {
  'image/jpg': 'image/jpeg',
  'image/pjpeg': 'image/jpeg',
  'image/x-png': 'image/png',
  'image/x-ms-bmp': 'image/bmp',
  'image/heic-sequence': 'image/heic',
  'image/heif-sequence': 'image/heif',
  'audio/mp3': 'audio/mpeg',
  'audio/x-mp3': 'audio/mpeg',
  'audio/mpeg3': 'audio/mpeg',
  'audio/x-wav': 'audio/wav',
  'audio/vnd.wave': 'audio/wav',
  'audio/wave': 'audio/wav',
  'audio/x-flac': 'audio/flac',
  'audio/x-m4a': 'audio/mp4',
  'audio/m4a': 'audio/mp4',
  'audio/opus': 'audio/ogg',
  'audio/x-aac': 'audio/aac',
  'audio/aacp': 'audio/aac',
  'video/x-matroska': 'video/matroska',
  'video/x-msvideo': 'video/vnd.avi',
  'video/avi': 'video/vnd.avi',
  'video/msvideo': 'video/vnd.avi',
  'application/x-pdf': 'application/pdf',
  'application/vnd.ms-word': 'application/msword',
};

/** One canonical name per format, so the declared and sniffed types compare as formats, not strings. */
export function canonicalMime(mime: string | undefined | null): string {
  const e = mimeEssence(mime);
  return MIME_ALIASES[e] ?? e;
}

/** Legacy Office files sniff as the OLE2 container; the declared type says which one. */
const OLE2_TYPES = new Set(['application/x-cfb', 'application/msword', 'application/vnd.ms-excel', 'application/vnd.ms-powerpoint']);
/** An MP4/3GP container carries audio or video: its declared flavour is not a contradiction. */
const CONTAINER_FAMILIES: readonly (readonly string[])[] = [
  ['video/mp4', 'audio/mp4', 'video/3gpp', 'audio/3gpp', 'video/quicktime'],
  ['video/webm', 'audio/webm'],
  ['audio/ogg', 'video/ogg', 'application/ogg'],
  ['image/heic', 'image/heif'],
];

/**
 * Whether a client's declared type agrees with the sniffed one. An absent or generic declaration
 * (application/octet-stream) agrees with anything: only a contradiction is refused.
 */
export function declaredAgrees(declared: string | undefined | null, sniffed: string): boolean {
  const d = canonicalMime(declared);
  const s = canonicalMime(sniffed);
  if (!d || d === 'application/octet-stream' || d === 'binary/octet-stream') return true;
  if (d === s) return true;
  if (OLE2_TYPES.has(d) && OLE2_TYPES.has(s)) return true;
  return CONTAINER_FAMILIES.some((f) => f.includes(d) && f.includes(s));
}

/** Whether `kind` accepts a sniffed type at all (stored as is, or converted). */
export function kindAccepts(kind: MediaKind, sniffed: string): boolean {
  const p = MEDIA_POLICIES[kind];
  const s = canonicalMime(sniffed);
  const all = [...p.mimes, ...p.converted].map(canonicalMime);
  return all.includes(s);
}

/** The kind to use when the client names none: decided from the sniffed type. */
export function inferKind(sniffed: string): MediaKind | undefined {
  const s = canonicalMime(sniffed);
  for (const k of ['image', 'video', 'audio', 'document'] as const) {
    if (kindAccepts(k, s)) return k;
  }
  return undefined;
}

export function suggestedMessageType(kind: MediaKind): MediaPolicy['messageType'] {
  return MEDIA_POLICIES[kind].messageType;
}
