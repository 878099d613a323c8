import { PermanentError } from '../domain/errors.js';
import { canonicalMime, kindAccepts } from '../domain/policies.js';
import type { MediaKind } from '../domain/kinds.js';
import { normalizeAv } from './normalize-av.js';
import { normalizeDocument } from './normalize-document.js';
import { normalizeImage } from './normalize-image.js';
import { normalizeSticker } from './normalize-sticker.js';
import type { NormalizeInput, NormalizeOutput } from './normalize-types.js';

export type { NormalizeInput, NormalizeOutput, NormalizeTransform, NormalizeVariant } from './normalize-types.js';

/** The image types sharp decodes in this process: the others (BMP, HEIC) go through a tool and a file. */
const IN_MEMORY_IMAGE_MIMES: ReadonlySet<string> = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/gif', 'image/tiff', 'image/avif']);

/**
 * Whether this kind and type can be normalized from bytes in memory (`inputBuffer`), with no
 * scratch file on either side: still and animated images that sharp decodes here. Every other
 * step reads a file (ffmpeg, heif-convert, the document checks).
 */
export function decodesInMemory(kind: MediaKind, sniffedMime: string): boolean {
  return kind === 'image' && IN_MEMORY_IMAGE_MIMES.has(canonicalMime(sniffedMime));
}

/**
 * Makes one media file deliverable for its kind: the worker's single entry point. The sniffed type
 * must be one the kind accepts (checked again here: this step must be safe whoever calls it);
 * then each kind has its own step. Content faults throw PermanentError, anything else is transient.
 */
export async function normalize(input: NormalizeInput): Promise<NormalizeOutput> {
  const mime = canonicalMime(input.sniffedMime);
  if (!kindAccepts(input.kind, mime)) {
    throw new PermanentError('UNSUPPORTED_MEDIA_TYPE', `${mime || 'this type'} is not accepted as ${input.kind}`);
  }
  if (input.inputBuffer && !decodesInMemory(input.kind, mime)) throw new Error(`${input.kind} ${mime} is normalized from a file, not from memory`);
  input.signal?.throwIfAborted();
  const started = Date.now();
  const step = { ...input, sniffedMime: mime };
  let out: NormalizeOutput;
  switch (input.kind) {
    case 'image':
      out = await normalizeImage(step);
      break;
    case 'sticker':
      out = await normalizeSticker(step);
      break;
    case 'video':
    case 'audio':
    case 'voice_note':
      out = await normalizeAv(step);
      break;
    case 'document':
      out = await normalizeDocument(step);
      break;
  }
  input.log.debug({ kind: input.kind, transform: out.transform, ms: Date.now() - started }, 'normalize finished');
  return out;
}
