import { mimeEssence } from './policies.js';

/** Bounds of a kept name: most file systems allow 255 bytes; 200 code points leaves room for a suffix. */
export const FILENAME_MAX_CODE_POINTS = 200;
export const FILENAME_MAX_UTF8_BYTES = 255;
/** A trailing `.xyz` this long or shorter (code points, dot included) is kept whole when a name is cut. */
const MAX_EXTENSION = 16;

/**
 * Characters that change how a name reads without being seen: C0/C1 controls and DEL; the bidi
 * marks, embeddings, overrides and isolates (U+202E turns `invoice\u202Egpj.exe` into what reads
 * as `invoiceexe.jpg`); the Arabic letter mark; line and paragraph separators; the deprecated
 * format controls U+206A–206F; the BOM; and the noncharacters U+FFFE/U+FFFF. U+200D (zero-width
 * joiner) stays: emoji sequences need it.
 */
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u206f\ufeff\ufffe\uffff]/g;
/** Half of a surrogate pair on its own: not UTF-8-encodable, so it would break any header built from it. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
/** Reserved on Windows; `"` would also end a quoted header parameter. */
const RESERVED = /[<>:"|?*]/g;

/**
 * The extensions each stored type may be downloaded under, the first being the one given when the
 * name's own does not fit. A type missing here downloads as `.bin`, which no system runs.
 */
const EXTENSIONS: Record<string, readonly string[]> = {
  'image/jpeg': ['jpg', 'jpeg', 'jpe', 'jfif'],
  'image/png': ['png'],
  'image/webp': ['webp'],
  'image/gif': ['gif'],
  'video/mp4': ['mp4', 'm4v'],
  'video/3gpp': ['3gp', '3gpp'],
  'audio/mpeg': ['mp3'],
  'audio/ogg': ['ogg', 'oga', 'opus'],
  'audio/opus': ['opus', 'ogg'],
  'audio/mp4': ['m4a', 'mp4'],
  'audio/x-m4a': ['m4a'],
  'audio/aac': ['aac'],
  'audio/amr': ['amr'],
  'audio/3gpp': ['3gp', '3gpp'],
  'application/pdf': ['pdf'],
  'text/plain': ['txt', 'text', 'log', 'csv'],
  'application/msword': ['doc', 'dot'],
  'application/vnd.ms-excel': ['xls', 'xlt'],
  'application/x-cfb': ['bin', 'doc', 'xls', 'ppt'],
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': ['docx'],
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': ['xlsx'],
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': ['pptx'],
};

/** The canonical extension (no dot) a stored type downloads under; `bin` for a type we do not know. */
export function extensionFor(mime: string | null | undefined): string {
  return EXTENSIONS[mimeEssence(mime)]?.[0] ?? 'bin';
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

const GRAPHEMES = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** Cuts on grapheme boundaries (never inside a surrogate pair or an emoji sequence) to fit both bounds. */
function cut(s: string, maxCodePoints: number, maxBytes: number): string {
  let out = '';
  let points = 0;
  let bytes = 0;
  for (const { segment } of GRAPHEMES.segment(s)) {
    const p = [...segment].length;
    const b = utf8Length(segment);
    if (points + p > maxCodePoints || bytes + b > maxBytes) break;
    out += segment;
    points += p;
    bytes += b;
  }
  return out;
}

const trimEnds = (s: string): string => s.replace(/^[.\s]+/, '').replace(/[.\s]+$/, '');

/**
 * Turns a name from outside (a multipart or base64 `filename`, a slot's `name`, a Content-Disposition
 * or URL path, a producer's storage key or file path, a CLI argument) into one safe to store as
 * `originalName` and to show: NFC, the last path segment only, no invisible or bidi controls, no
 * Windows-reserved characters, no leading or trailing dots or spaces, at most 200 code points and 255
 * UTF-8 bytes (cut on a character boundary, extension kept). Null when nothing usable is left.
 */
export function sanitizeFilename(raw: string | null | undefined): string | null {
  if (raw == null) return null;
  // Invisibles go before NFC: one between a letter and its accent would otherwise block composing.
  let name = raw.replace(LONE_SURROGATE, '').replace(INVISIBLE, '').normalize('NFC');
  name = name.slice(Math.max(name.lastIndexOf('/'), name.lastIndexOf('\\')) + 1);
  name = trimEnds(name.replace(RESERVED, '_'));
  if ([...name].length > FILENAME_MAX_CODE_POINTS || utf8Length(name) > FILENAME_MAX_UTF8_BYTES) {
    const dot = name.lastIndexOf('.');
    const ext = dot > 0 && [...name.slice(dot)].length <= MAX_EXTENSION ? name.slice(dot) : '';
    const stem = cut(name.slice(0, name.length - ext.length), FILENAME_MAX_CODE_POINTS - [...ext].length, FILENAME_MAX_UTF8_BYTES - utf8Length(ext));
    name = trimEnds(trimEnds(stem) + ext);
  }
  return name === '' ? null : name;
}

/**
 * The name a download is offered under: the sanitised name with the extension of what is stored
 * (a HEIC stored as JPEG downloads as `.jpg`, an `invoice.exe` that sniffed as PDF as `invoice.pdf`),
 * or `<fallbackBase>.<ext>` when no usable name is left. Total for any input, so a bad stored name
 * can never fail a download.
 */
export function downloadFilename(raw: string | null | undefined, storedMime: string | null | undefined, fallbackBase = 'file'): string {
  const ext = extensionFor(storedMime);
  const allowed = EXTENSIONS[mimeEssence(storedMime)] ?? ['bin'];
  const name = sanitizeFilename(raw);
  if (!name) return `${sanitizeFilename(fallbackBase) ?? 'file'}.${ext}`;
  const m = /^(.+)\.([A-Za-z0-9]{1,10})$/.exec(name);
  if (m && allowed.includes(m[2]!.toLowerCase())) return name;
  const stem = trimEnds(m ? m[1]! : name) || 'file';
  // The swapped extension may be longer than the one it replaces: cut again to stay in bounds.
  const kept = trimEnds(cut(stem, FILENAME_MAX_CODE_POINTS - ext.length - 1, FILENAME_MAX_UTF8_BYTES - ext.length - 1)) || 'file';
  return `${kept}.${ext}`;
}
