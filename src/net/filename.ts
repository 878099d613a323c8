import { sanitizeFilename } from '../domain/filename.js';

/** The one sanitiser every way in uses (src/domain/filename.ts); re-exported for the URL fetcher's callers. */
export { sanitizeFilename };

function unquote(v: string): string {
  if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) return v.slice(1, -1).replace(/\\(.)/g, '$1');
  return v;
}

/** RFC 5987 ext-value: `UTF-8''%e2%82%ac.pdf`. Other charsets are not worth supporting; ISO-8859-1 is decoded as bytes. */
function decodeExtValue(v: string): string | null {
  const m = /^([\w!#$%&+^`{}~-]+)'[^']*'(.*)$/.exec(v);
  if (!m) return null;
  const charset = m[1]!.toLowerCase();
  const encoded = m[2]!;
  try {
    if (charset === 'utf-8') return decodeURIComponent(encoded);
    if (charset === 'iso-8859-1') return encoded.replace(/%([0-9a-f]{2})/gi, (_s, h: string) => String.fromCharCode(parseInt(h, 16)));
  } catch {
    return null;
  }
  return null;
}

/**
 * undici hands header values over as latin1, but many servers put raw UTF-8 in a plain `filename=`.
 * When the bytes are valid UTF-8 they are read as such; otherwise latin1 was probably meant.
 */
function utf8IfValid(latin1: string): string {
  if (!/[\u0080-\u00ff]/.test(latin1)) return latin1;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(latin1, 'latin1'));
  } catch {
    return latin1;
  }
}

/** The file name a Content-Disposition header suggests (`filename*` preferred, RFC 6266), sanitised. */
export function filenameFromContentDisposition(header: string | null | undefined): string | null {
  if (!header) return null;
  const params = new Map<string, string>();
  // Parameters: token=token or token="quoted \"string\"", separated by semicolons.
  const re = /;\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
  for (const m of `;${header}`.matchAll(re)) {
    const key = m[1]!.toLowerCase();
    if (!params.has(key)) params.set(key, m[2]!.trim());
  }
  const ext = params.get('filename*');
  if (ext !== undefined) {
    const decoded = decodeExtValue(unquote(ext));
    const safe = sanitizeFilename(decoded);
    if (safe) return safe;
  }
  const plain = params.get('filename');
  return plain === undefined ? null : sanitizeFilename(utf8IfValid(unquote(plain)));
}

/** The last path segment of a URL, percent-decoded when it decodes, sanitised. */
export function filenameFromUrl(url: URL): string | null {
  const segment = url.pathname.slice(url.pathname.lastIndexOf('/') + 1);
  if (segment === '') return null;
  let decoded = segment;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    // A malformed escape is shown as written rather than rejected: the name is only a hint.
  }
  return sanitizeFilename(decoded);
}
