import { PermanentError } from './errors.js';
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
  /** Delivered size limit: the most bytes the stored (normalized) file may have. */
  readonly maxBytes: number;
  /**
   * Largest input accepted, for kinds whose normalization makes a larger input fit `maxBytes`
   * (re-encoding, resizing). Absent: the kind is not shrunk, so its input limit is the delivered one.
   */
  readonly maxInputBytes?: number;
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
  image: { mimes: IMAGE_STORED, converted: IMAGE_CONVERTED, maxBytes: 5 * MB, maxInputBytes: 50 * MB, maxPixels: 40_000_000, maxFrames: 1000, messageType: 'image' },
  sticker: { mimes: ['image/webp', 'image/png', 'image/gif'], converted: [], maxBytes: 100 * KB, maxBytesAnimated: 500 * KB, maxPixels: 40_000_000, maxFrames: 1000, messageType: 'sticker' },
  video: { mimes: VIDEO_STORED, converted: VIDEO_CONVERTED, maxBytes: 16 * MB, maxInputBytes: HARD_CAP_BYTES, maxDurationMs: 3 * 60 * 60 * 1000, messageType: 'video' },
  audio: { mimes: AUDIO_STORED, converted: AUDIO_CONVERTED, maxBytes: 16 * MB, maxInputBytes: HARD_CAP_BYTES, maxDurationMs: 3 * 60 * 60 * 1000, messageType: 'audio' },
  voice_note: {
    mimes: ['audio/ogg', 'audio/opus'],
    converted: ['audio/mpeg', 'audio/webm', 'video/webm', 'audio/mp4', 'audio/x-m4a', 'audio/aac', 'audio/amr', 'audio/wav', 'audio/x-wav', 'audio/vnd.wave'],
    maxBytes: 16 * MB,
    maxInputBytes: 16 * MB,
    maxDurationMs: 60 * 60 * 1000,
    messageType: 'ptt',
  },
  document: { mimes: DOCUMENTS, converted: [], maxBytes: 10 * MB, messageType: 'document' },
};

/** Per-app overrides of delivered limits (the `limits` of an app row), in bytes per kind. */
export type KindLimits = Partial<Record<MediaKind, number>>;

/**
 * A kind's delivered limit: the app's override if it has one, else the kind's own (for stickers the
 * static one; the animated limit stays in the policy). Never above the built-in hard cap.
 */
export function deliveredLimitBytes(kind: MediaKind, override?: number): number {
  return Math.min(override ?? MEDIA_POLICIES[kind].maxBytes, HARD_CAP_BYTES);
}

/**
 * A kind's input limit, what the 413 at every way in is measured against. A kind that normalization
 * shrinks (image, video, audio, voice note) takes inputs up to its own input cap, or up to an app's
 * larger delivered override; an app's smaller override lowers only what is delivered, the input is
 * still made to fit. A kind that is not shrunk (document; sticker, whose animated limit bounds it)
 * takes what it may deliver, so there the override is the input limit too. Never above the configured
 * or the built-in hard cap.
 */
export function inputLimitBytes(kind: MediaKind, override?: number, configuredCap: number = HARD_CAP_BYTES): number {
  const p = MEDIA_POLICIES[kind];
  const base = p.maxInputBytes === undefined ? override ?? (p.maxBytesAnimated ?? p.maxBytes) : Math.max(p.maxInputBytes, override ?? 0);
  return Math.min(base, configuredCap, HARD_CAP_BYTES);
}

/** The refusal of an input over its limit, wherever it is measured (first bytes, stream, whole file). */
export function fileTooLarge(limit: number, kind?: MediaKind): PermanentError {
  return new PermanentError('FILE_TOO_LARGE', `the file is larger than the limit of ${limit} bytes${kind ? ` for ${kind}` : ''}`, { maxBytes: limit });
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

export interface KindQuestion {
  /** The client's kind; inferred from the type when absent. */
  kind?: MediaKind | null;
  /** The type judged: sniffed from the bytes, or, for an upload slot before any byte arrives, the declared one. */
  mime: string | null | undefined;
  /** The client's declared type: it may only agree with `mime`, never override it. */
  declared?: string | null;
  /**
   * What `mime` was read from: the first bytes, the whole file, or only the client's word (a slot).
   * From the first bytes a zip may still turn out an OOXML document (its telltale entries come
   * later), so it passes as a provisional document and the worker, which sniffs the whole file, decides.
   */
  seen: 'head' | 'whole' | 'declared';
}

/**
 * The kind and type rule of every way in (upload, slot, worker): the sniffed type decides, the
 * client's kind must accept it, and a declared type may only agree. Throws 415 otherwise.
 */
export function decideKind(q: KindQuestion): MediaKind {
  const { mime, declared } = q;
  const kind = q.kind ?? undefined;
  if (!mime) throw new PermanentError('UNSUPPORTED_MEDIA_TYPE', 'the file is not in a recognised format', { detected: null });
  const provisional = q.seen === 'head' && mime === 'application/zip' && (kind === 'document' || kind === undefined);
  const k = kind ?? (provisional ? 'document' : inferKind(mime));
  if (!k) throw new PermanentError('UNSUPPORTED_MEDIA_TYPE', `${mime} is not an accepted media type`, { detected: mime });
  if (provisional) return k;
  if (!kindAccepts(k, mime)) throw new PermanentError('UNSUPPORTED_MEDIA_TYPE', `${mime} is not accepted for kind ${k}`, { detected: mime, kind: k });
  if (!declaredAgrees(declared, mime)) {
    throw new PermanentError('UNSUPPORTED_MEDIA_TYPE', `declared type ${declared} contradicts the content (${mime})`, { declared, detected: mime });
  }
  return k;
}

export function suggestedMessageType(kind: MediaKind): MediaPolicy['messageType'] {
  return MEDIA_POLICIES[kind].messageType;
}
