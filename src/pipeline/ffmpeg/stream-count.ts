import { open, type FileHandle } from 'node:fs/promises';
import { canonicalMime } from '../../domain/policies.js';

/** Containers that hold exactly one audio stream by construction: no tracks, no attached pictures. */
const SINGLE_STREAM = new Set(['audio/wav', 'audio/amr', 'audio/aac']);
/** ISO BMFF brands ffmpeg reads with the `mov` demuxer. */
const ISO_BMFF = new Set(['audio/mp4', 'audio/3gpp', 'video/mp4', 'video/3gpp', 'video/quicktime']);

/** Boxes looked at before giving up: a real file has a handful at the top and a few per track in `moov`. */
const MAX_BOXES = 256;

/**
 * How many streams ffmpeg will see in this file, when our own reading can say so without a tool:
 * 1 for single-stream formats, the `trak` boxes of `moov` for MP4/3GPP/MOV; null when it cannot
 * (another format, a fragmented MP4, anything unexpected). It never decides alone: it only lets a
 * caller start work that the probe's own count would have allowed, so a null costs time, not safety.
 */
export async function knownStreamCount(path: string, sniffedMime: string): Promise<number | null> {
  const mime = canonicalMime(sniffedMime);
  if (SINGLE_STREAM.has(mime)) return 1;
  if (!ISO_BMFF.has(mime)) return null;
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    return await countTracks((offset, length) => readAt(fh, offset, length), size);
  } finally {
    await fh.close();
  }
}

async function readAt(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, offset);
  return buf.subarray(0, bytesRead);
}

interface BoxHeader {
  type: string;
  start: number;
  /** Where the box's content starts (after the 8- or 16-byte header). */
  body: number;
  end: number;
}

async function boxAt(read: (offset: number, length: number) => Promise<Buffer>, offset: number, limit: number): Promise<BoxHeader | null> {
  const head = await read(offset, 16);
  if (head.length < 8) return null;
  let size = head.readUInt32BE(0);
  const type = head.toString('latin1', 4, 8);
  let body = offset + 8;
  if (size === 1) {
    if (head.length < 16) return null;
    const large = head.readBigUInt64BE(8);
    if (large > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    size = Number(large);
    body = offset + 16;
  } else if (size === 0) {
    size = limit - offset;
  }
  if (size < body - offset || offset + size > limit) return null;
  return { type, start: offset, body, end: offset + size };
}

/**
 * The `trak` boxes inside the one top-level `moov`, for an unfragmented ISO BMFF file; null for
 * anything else (no `moov`, two of them, a `moof`, a box that runs past its parent).
 */
export async function countTracks(read: (offset: number, length: number) => Promise<Buffer>, size: number): Promise<number | null> {
  let moov: BoxHeader | null = null;
  let seen = 0;
  for (let offset = 0; offset < size; ) {
    if (++seen > MAX_BOXES) return null;
    const box = await boxAt(read, offset, size);
    if (!box) return null;
    if (box.type === 'moof' || box.type === 'mvex') return null;
    if (box.type === 'moov') {
      if (moov) return null;
      moov = box;
    }
    offset = box.end;
  }
  if (!moov) return null;
  let tracks = 0;
  for (let offset = moov.body; offset < moov.end; ) {
    if (++seen > MAX_BOXES) return null;
    const box = await boxAt(read, offset, moov.end);
    if (!box) return null;
    if (box.type === 'mvex') return null;
    if (box.type === 'trak') tracks++;
    offset = box.end;
  }
  return tracks;
}
