/**
 * The HEIF `meta` box (ISO/IEC 23008-12) read into the facts the decode decision needs (pure):
 * the primary item, every item's type and hidden flag, its size (`ispe`), orientation (`irot`,
 * `imir`), where its data lives (`iloc`), and the references between items (`iref`: thumbnails,
 * auxiliary images such as alpha and depth, grid tiles). Nothing here decodes a pixel.
 *
 * Every length is checked against its parent before use: a malformed header is refused with
 * MEDIA_REJECTED, never read past.
 */
import { PermanentError } from '../../domain/errors.js';

export interface HeifExtent {
  offset: number;
  length: number;
}

export interface HeifItemLocation {
  /** 0: offsets in the file; 1: in the meta box's `idat`; 2: another item (not supported here). */
  constructionMethod: number;
  /** 0 means "this file"; anything else points at another file through `dref`. */
  dataReferenceIndex: number;
  baseOffset: number;
  extents: HeifExtent[];
}

export interface HeifItem {
  id: number;
  /** infe item_type: `hvc1`, `av01`, `grid`, `iden`, `iovl`, `Exif`, `mime`… ('' for infe v0/v1). */
  type: string;
  hidden: boolean;
  /** `ispe`: the size of the image as coded, before `irot`/`imir`/`clap`. */
  width: number | null;
  height: number | null;
  /** Anti-clockwise rotation from `irot`, degrees. */
  rotation: 0 | 90 | 180 | 270;
  mirrored: boolean;
  location: HeifItemLocation | null;
}

export interface HeifReference {
  type: string;
  from: number;
  to: number[];
}

export interface HeifMeta {
  primaryId: number | null;
  items: HeifItem[];
  references: HeifReference[];
  /** The `idat` payload (construction method 1 reads from here), or null. */
  idat: Buffer | null;
}

/** The `meta` box is read whole into memory: phones write a few KB; this bounds a forged one. */
export const HEIF_META_MAX_BYTES = 2 * 1024 * 1024;

interface Box {
  type: string;
  /** First byte of the payload (after size, type and any 64-bit size). */
  start: number;
  /** One past the last byte of the box. */
  end: number;
}

function malformed(why: string): PermanentError {
  return new PermanentError('MEDIA_REJECTED', `the HEIF header is malformed (${why})`);
}

/** The boxes between `from` and `to`, sizes checked against the parent. */
export function readBoxes(buf: Buffer, from: number, to: number): Box[] {
  const boxes: Box[] = [];
  let pos = from;
  while (pos < to) {
    if (pos + 8 > to) throw malformed('a box header is cut off');
    let size = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    let start = pos + 8;
    if (size === 1) {
      if (pos + 16 > to) throw malformed(`the ${printable(type)} box is cut off`);
      const large = buf.readBigUInt64BE(pos + 8);
      if (large > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`the ${printable(type)} box is too large`);
      size = Number(large);
      start = pos + 16;
    } else if (size === 0) {
      size = to - pos;
    }
    if (size < start - pos || pos + size > to) throw malformed(`the ${printable(type)} box overruns its parent`);
    boxes.push({ type, start, end: pos + size });
    pos += size;
  }
  return boxes;
}

function printable(type: string): string {
  return /^[\x20-\x7e]{4}$/.test(type) ? `'${type}'` : 'unnamed';
}

/** A bounds-checked cursor over one box's payload. */
class Cursor {
  constructor(
    private readonly buf: Buffer,
    public pos: number,
    private readonly end: number,
    private readonly what: string,
  ) {}
  private need(n: number): void {
    if (this.pos + n > this.end) throw malformed(`the '${this.what}' box is cut off`);
  }
  u8(): number {
    this.need(1);
    return this.buf.readUInt8(this.pos++);
  }
  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  /** An unsigned integer of 0, 4 or 8 bytes (iloc's field sizes). */
  uint(bytes: number): number {
    if (bytes === 0) return 0;
    if (bytes === 4) return this.u32();
    if (bytes === 8) {
      this.need(8);
      const v = this.buf.readBigUInt64BE(this.pos);
      this.pos += 8;
      if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(`a '${this.what}' offset is too large`);
      return Number(v);
    }
    throw malformed(`the '${this.what}' box uses ${bytes}-byte fields`);
  }
  fourcc(): string {
    this.need(4);
    const v = this.buf.toString('latin1', this.pos, this.pos + 4);
    this.pos += 4;
    return v;
  }
  /** FullBox version and flags. */
  full(): { version: number; flags: number } {
    const word = this.u32();
    return { version: word >>> 24, flags: word & 0xffffff };
  }
}

const cursor = (buf: Buffer, box: Box): Cursor => new Cursor(buf, box.start, box.end, box.type);

/** Parses a whole `meta` box (its 8-byte header included). */
export function parseHeifMeta(meta: Buffer): HeifMeta {
  const [top] = readBoxes(meta, 0, meta.length);
  if (!top || top.type !== 'meta') throw malformed('no meta box');
  // meta is a FullBox: version and flags before its children.
  const children = readBoxes(meta, top.start + 4, top.end);

  let primaryId: number | null = null;
  const items = new Map<number, HeifItem>();
  const references: HeifReference[] = [];
  let idat: Buffer | null = null;
  const properties: Box[] = [];
  const associations: Array<{ itemId: number; index: number }> = [];
  const locations = new Map<number, HeifItemLocation>();

  const item = (id: number): HeifItem => {
    let it = items.get(id);
    if (!it) {
      it = { id, type: '', hidden: false, width: null, height: null, rotation: 0, mirrored: false, location: null };
      items.set(id, it);
    }
    return it;
  };

  for (const box of children) {
    switch (box.type) {
      case 'pitm': {
        const c = cursor(meta, box);
        const { version } = c.full();
        primaryId = version === 0 ? c.u16() : c.u32();
        break;
      }
      case 'iinf': {
        const c = cursor(meta, box);
        const { version } = c.full();
        const count = version === 0 ? c.u16() : c.u32();
        const entries = readBoxes(meta, c.pos, box.end).filter((b) => b.type === 'infe');
        if (entries.length !== count) throw malformed(`iinf announces ${count} items and holds ${entries.length}`);
        for (const infe of entries) {
          const e = cursor(meta, infe);
          const { version: v, flags } = e.full();
          const id = v >= 3 ? e.u32() : e.u16();
          e.u16(); // item_protection_index
          const it = item(id);
          it.type = v >= 2 ? e.fourcc() : '';
          it.hidden = (flags & 1) === 1;
        }
        break;
      }
      case 'iref': {
        const c = cursor(meta, box);
        const { version } = c.full();
        for (const ref of readBoxes(meta, c.pos, box.end)) {
          const r = cursor(meta, ref);
          const from = version === 0 ? r.u16() : r.u32();
          const n = r.u16();
          const to: number[] = [];
          for (let i = 0; i < n; i++) to.push(version === 0 ? r.u16() : r.u32());
          references.push({ type: ref.type, from, to });
        }
        break;
      }
      case 'iprp': {
        for (const part of readBoxes(meta, box.start, box.end)) {
          if (part.type === 'ipco') {
            properties.push(...readBoxes(meta, part.start, part.end));
          } else if (part.type === 'ipma') {
            const c = cursor(meta, part);
            const { version, flags } = c.full();
            const entries = c.u32();
            for (let i = 0; i < entries; i++) {
              const itemId = version < 1 ? c.u16() : c.u32();
              const n = c.u8();
              for (let j = 0; j < n; j++) {
                // The top bit is "essential"; the rest is a 1-based index into ipco (0: none).
                const index = (flags & 1) === 1 ? c.u16() & 0x7fff : c.u8() & 0x7f;
                associations.push({ itemId, index });
              }
            }
          }
        }
        break;
      }
      case 'iloc': {
        const c = cursor(meta, box);
        const { version } = c.full();
        if (version > 2) throw malformed(`iloc version ${version}`);
        const sizes = c.u8();
        const offsetSize = sizes >> 4;
        const lengthSize = sizes & 0xf;
        const more = c.u8();
        const baseOffsetSize = more >> 4;
        const indexSize = version >= 1 ? more & 0xf : 0;
        const count = version < 2 ? c.u16() : c.u32();
        for (let i = 0; i < count; i++) {
          const id = version < 2 ? c.u16() : c.u32();
          const constructionMethod = version >= 1 ? c.u16() & 0xf : 0;
          const dataReferenceIndex = c.u16();
          const baseOffset = c.uint(baseOffsetSize);
          const extentCount = c.u16();
          const extents: HeifExtent[] = [];
          for (let j = 0; j < extentCount; j++) {
            if (indexSize > 0) c.uint(indexSize);
            extents.push({ offset: c.uint(offsetSize), length: c.uint(lengthSize) });
          }
          locations.set(id, { constructionMethod, dataReferenceIndex, baseOffset, extents });
        }
        break;
      }
      case 'idat':
        idat = meta.subarray(box.start, box.end);
        break;
      default:
        break;
    }
  }

  for (const { itemId, index } of associations) {
    if (index === 0) continue;
    const prop = properties[index - 1];
    if (!prop) throw malformed(`item ${itemId} names property ${index} of ${properties.length}`);
    const it = item(itemId);
    const c = cursor(meta, prop);
    if (prop.type === 'ispe') {
      c.full();
      it.width = c.u32();
      it.height = c.u32();
    } else if (prop.type === 'irot') {
      it.rotation = (((c.u8() & 3) * 90) as HeifItem['rotation']);
    } else if (prop.type === 'imir') {
      c.u8();
      it.mirrored = true;
    }
  }
  for (const [id, loc] of locations) item(id).location = loc;

  return { primaryId, items: [...items.values()], references, idat };
}

/** Item types libheif 1.15 decodes as images (others are metadata: Exif, mime/XMP…). */
export const IMAGE_ITEM_TYPES: ReadonlySet<string> = new Set(['hvc1', 'av01', 'grid', 'iden', 'iovl']);

/**
 * The images a decoder lists at the top level, as libheif does: image items not hidden, and not a
 * thumbnail (`thmb`) or an auxiliary image (`auxl`: alpha, depth) of another. heif-convert writes
 * one output file for each of them.
 */
export function topLevelImages(meta: HeifMeta): HeifItem[] {
  const attached = new Set(meta.references.filter((r) => r.type === 'thmb' || r.type === 'auxl').map((r) => r.from));
  return meta.items.filter((it) => IMAGE_ITEM_TYPES.has(it.type) && !it.hidden && !attached.has(it.id));
}

/**
 * The canvas size a derived image (`grid`, `iovl`) states in its own item data: what the decoder
 * allocates, whatever `ispe` says. `grid`: version, flags, rows-1, columns-1, then the output size
 * in 16 or 32 bits (flags bit 0). `iovl`: version, flags, four 16-bit fill values, then the same.
 */
export function derivedCanvasSize(type: 'grid' | 'iovl', data: Buffer): { width: number; height: number } {
  const c = new Cursor(data, 0, data.length, type);
  c.u8(); // version
  const flags = c.u8();
  if (type === 'grid') {
    c.u8();
    c.u8();
  } else {
    for (let i = 0; i < 4; i++) c.u16();
  }
  const wide = (flags & 1) === 1;
  const width = wide ? c.u32() : c.u16();
  const height = wide ? c.u32() : c.u16();
  return { width, height };
}

/** Where a derived image's descriptor is: in `idat`, or at a file offset (one extent only). */
export function itemDataLocation(it: HeifItem): { source: 'idat' | 'file'; offset: number; length: number } | null {
  const loc = it.location;
  if (!loc || loc.extents.length !== 1 || loc.constructionMethod > 1) return null;
  const ext = loc.extents[0]!;
  return { source: loc.constructionMethod === 1 ? 'idat' : 'file', offset: loc.baseOffset + ext.offset, length: ext.length };
}
