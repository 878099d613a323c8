/**
 * Whether a HEIF file may be handed to the decoder, decided from its `meta` box alone (pure): one
 * photo, every image item within the pixel limit, no data outside the file. What a header cannot
 * promise (the coded size inside the HEVC stream) is bounded by the decoder's address-space cap and
 * checked again on the decoded PNG (`checkDecodedSize`).
 */
import { IMAGE_ITEM_TYPES, itemDataLocation, topLevelImages, type HeifItem, type HeifMeta } from './heif-header.js';

export interface HeifLimits {
  maxPixels: number;
}

export type HeifPlan =
  | { action: 'reject'; code: 'MEDIA_REJECTED'; reason: string }
  | {
      action: 'decode';
      primary: HeifItem;
      /** Size as coded (`ispe`), before rotation. */
      width: number;
      height: number;
      /** A grid or overlay states its canvas in its item data: read it and check it (`checkCanvas`). */
      canvas: { type: 'grid' | 'iovl'; source: 'idat' | 'file'; offset: number; length: number } | null;
    };

const reject = (reason: string): HeifPlan => ({ action: 'reject', code: 'MEDIA_REJECTED', reason });

function overLimit(width: number, height: number, limits: HeifLimits): string | null {
  const pixels = width * height;
  if (pixels <= limits.maxPixels) return null;
  return `the image is ${width}x${height} (${(pixels / 1e6).toFixed(1)} MP), over the ${(limits.maxPixels / 1e6).toFixed(0)} MP limit`;
}

export function planHeifDecode(meta: HeifMeta, limits: HeifLimits): HeifPlan {
  if (meta.primaryId === null) return reject('the HEIF file names no primary image');
  const primary = meta.items.find((it) => it.id === meta.primaryId);
  if (!primary || !IMAGE_ITEM_TYPES.has(primary.type)) {
    return reject(`the HEIF primary item is not an image this service decodes (${primary?.type || 'missing'})`);
  }
  if (primary.width === null || primary.height === null || primary.width === 0 || primary.height === 0) {
    return reject('the HEIF primary image declares no size');
  }
  // Every image the decoder may touch (tiles, alpha, thumbnails too) is within the limit.
  for (const it of meta.items) {
    if (!IMAGE_ITEM_TYPES.has(it.type) || it.width === null || it.height === null) continue;
    const over = overLimit(it.width, it.height, limits);
    if (over) return reject(over);
  }
  const tops = topLevelImages(meta);
  // heif-convert decodes and writes every top-level image: a collection (burst, sequence) is not a photo.
  if (tops.length > 1) return reject(`the HEIF file holds ${tops.length} images; only a single photo is accepted`);
  // Items whose data live in another file (dref) would make the decoder open paths we do not control.
  if (meta.items.some((it) => it.location !== null && it.location.dataReferenceIndex !== 0)) {
    return reject('the HEIF file refers to data outside itself');
  }
  let canvas: Extract<HeifPlan, { action: 'decode' }>['canvas'] = null;
  if (primary.type === 'grid' || primary.type === 'iovl') {
    const at = itemDataLocation(primary);
    if (!at) return reject(`the HEIF ${primary.type} image has no readable descriptor`);
    canvas = { type: primary.type, ...at };
  }
  return { action: 'decode', primary, width: primary.width, height: primary.height, canvas };
}

/** The canvas a grid/overlay descriptor states must be within the limit and no larger than its `ispe`. */
export function checkCanvas(canvas: { width: number; height: number }, plan: Extract<HeifPlan, { action: 'decode' }>, limits: HeifLimits): string | null {
  const over = overLimit(canvas.width, canvas.height, limits);
  if (over) return over;
  if (canvas.width * canvas.height > plan.width * plan.height) {
    return `the HEIF ${plan.primary.type} canvas is ${canvas.width}x${canvas.height}, larger than the ${plan.width}x${plan.height} its header declares`;
  }
  return null;
}

/**
 * After decoding: the picture may be rotated (irot) or cropped (clap), never larger. A larger one
 * means the coded stream disagrees with the header the limits were checked on.
 */
export function checkDecodedSize(decoded: { width: number; height: number }, plan: Extract<HeifPlan, { action: 'decode' }>, limits: HeifLimits): string | null {
  const over = overLimit(decoded.width, decoded.height, limits);
  if (decoded.width * decoded.height > plan.width * plan.height) {
    return `the HEIF image decoded to ${decoded.width}x${decoded.height}, larger than the ${plan.width}x${plan.height} its header declares`;
  }
  return over;
}
