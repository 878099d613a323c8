import { PermanentError } from '../domain/errors.js';

export interface DecodedBase64 {
  bytes: Buffer;
  /** The MIME type a `data:` prefix declared (essence, lower case), or null without one. */
  dataUrlMime: string | null;
}

export type Base64Reason =
  | 'empty'
  | 'data_url'
  | 'invalid_character'
  | 'url_safe_alphabet'
  | 'padding'
  | 'length'
  | 'non_canonical';

function invalid(reason: Base64Reason, message: string, extra: Record<string, unknown> = {}): PermanentError {
  return new PermanentError('VALIDATION_FAILED', message, { field: 'base64', reason, ...extra });
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/** Splits off `data:<mime>[;param=value]*;base64,` and returns where the payload starts. */
function splitDataUrl(input: string): { start: number; mime: string | null } {
  if (!/^\s*data:/i.test(input)) return { start: 0, mime: null };
  const comma = input.indexOf(',');
  if (comma === -1) throw invalid('data_url', 'data URL has no comma before its payload');
  const meta = input.slice(input.indexOf(':') + 1, comma).trim();
  const parts = meta.split(';').map((p) => p.trim());
  if (parts.at(-1)?.toLowerCase() !== 'base64') throw invalid('data_url', 'data URL is not base64-encoded (no ;base64 before the comma)');
  const type = parts[0]!.toLowerCase();
  if (type === '') return { start: comma + 1, mime: null };
  const [main, sub, ...more] = type.split('/');
  if (more.length > 0 || !main || !sub || !TOKEN.test(main) || !TOKEN.test(sub)) {
    throw invalid('data_url', 'data URL has a malformed media type');
  }
  return { start: comma + 1, mime: type };
}

// 0..63 for the standard alphabet, -1 for whitespace we tolerate, -2 for '=', -3 for the URL-safe
// pair, -4 for everything else. One table lookup per character keeps the scan allocation-free.
const CLASS = new Int8Array(128).fill(-4);
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.split('').forEach((c, i) => (CLASS[c.charCodeAt(0)] = i));
for (const c of ' \t\r\n') CLASS[c.charCodeAt(0)] = -1;
CLASS['='.charCodeAt(0)] = -2;
CLASS['-'.charCodeAt(0)] = -3;
CLASS['_'.charCodeAt(0)] = -3;

/**
 * Decodes standard (RFC 4648 §4) padded base64 and refuses anything a lenient decoder would quietly
 * reinterpret: Buffer.from(s, 'base64') skips unknown characters, accepts either alphabet, and stops at
 * the first '=', so a corrupted upload would decode to different bytes instead of failing.
 *
 * The URL-safe alphabet (`-`, `_`) is refused, with its own reason: the contract says base64, a payload
 * mixing both alphabets is corrupt by definition, and a clear "use standard base64" beats guessing.
 *
 * The size is checked from the character count before any bytes are produced, so an oversized payload
 * costs one scan of the string and no decoded buffer; the scan stops as soon as the count alone proves
 * the payload too large, so past that point the rest of the text is not validated.
 */
export function decodeBase64Strict(input: string, maxBytes: number): DecodedBase64 {
  const { start, mime } = splitDataUrl(input);
  const maxChars = Math.ceil(maxBytes / 3) * 4;
  let significant = 0;
  let padding = 0;
  let whitespace = 0;
  let lastValue = 0;

  for (let i = start; i < input.length; i++) {
    const code = input.charCodeAt(i);
    const cls = code < 128 ? CLASS[code]! : -4;
    if (cls === -1) {
      whitespace++;
      continue;
    }
    if (cls === -2) {
      padding++;
      significant++;
      if (padding > 2) throw invalid('padding', 'base64 has more than two padding characters', { position: i });
      continue;
    }
    if (cls < 0) {
      if (cls === -3) {
        throw invalid('url_safe_alphabet', `base64 uses the URL-safe alphabet ('${input[i]}' at position ${i}); send standard base64 (+ and /)`, { position: i });
      }
      throw invalid('invalid_character', `base64 has a character outside the alphabet at position ${i}`, { position: i });
    }
    if (padding > 0) throw invalid('padding', 'base64 has data after its padding', { position: i });
    significant++;
    lastValue = cls;
    if (significant > maxChars) {
      throw new PermanentError('FILE_TOO_LARGE', `base64 payload decodes to more than the ${maxBytes}-byte limit`, { limit: maxBytes });
    }
  }

  if (significant === 0) throw invalid('empty', 'base64 payload is empty');
  if (significant % 4 !== 0) {
    throw invalid('length', `base64 length (${significant} characters without whitespace) is not a multiple of 4`, { length: significant });
  }
  // The bits past the last whole byte must be zero, or two different strings decode to the same bytes.
  if ((padding === 1 && (lastValue & 0b11) !== 0) || (padding === 2 && (lastValue & 0b1111) !== 0)) {
    throw invalid('non_canonical', 'base64 has non-zero bits in its final character before the padding');
  }

  const decodedSize = (significant / 4) * 3 - padding;
  if (decodedSize > maxBytes) {
    throw new PermanentError('FILE_TOO_LARGE', `base64 payload decodes to ${decodedSize} bytes, over the ${maxBytes}-byte limit`, {
      limit: maxBytes,
      size: decodedSize,
    });
  }

  const payload = start === 0 && whitespace === 0 ? input : input.slice(start).replace(/[ \t\r\n]/g, '');
  const bytes = Buffer.from(payload, 'base64');
  if (bytes.length !== decodedSize) throw new Error(`base64 decoder produced ${bytes.length} bytes, expected ${decodedSize}`);
  return { bytes, dataUrlMime: mime };
}
