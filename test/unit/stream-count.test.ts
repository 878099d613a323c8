import { describe, expect, it } from 'vitest';
import { countTracks } from '../../src/pipeline/ffmpeg/stream-count.js';

/** An ISO BMFF box: 32-bit size, type, content. */
function box(type: string, ...children: Buffer[]): Buffer {
  const body = Buffer.concat(children);
  const head = Buffer.alloc(8);
  head.writeUInt32BE(8 + body.length, 0);
  head.write(type, 4, 'latin1');
  return Buffer.concat([head, body]);
}

function reader(file: Buffer): (offset: number, length: number) => Promise<Buffer> {
  return async (offset, length) => file.subarray(offset, offset + length);
}

const count = (file: Buffer) => countTracks(reader(file), file.length);
const ftyp = box('ftyp', Buffer.from('M4A \0\0\0\0isomM4A '));

describe('countTracks: the streams an MP4 holds, read from its boxes', () => {
  it('counts the trak boxes of moov, wherever moov is', async () => {
    const moov = box('moov', box('mvhd', Buffer.alloc(100)), box('trak', box('tkhd')), box('trak'), box('udta'));
    expect(await count(Buffer.concat([ftyp, moov, box('mdat', Buffer.alloc(500))]))).toBe(2);
    expect(await count(Buffer.concat([ftyp, box('mdat', Buffer.alloc(500)), moov]))).toBe(2);
  });

  it('a 64-bit box size and a last box that runs to the end (size 0) are followed', async () => {
    const mdat = Buffer.alloc(16 + 40);
    mdat.writeUInt32BE(1, 0);
    mdat.write('mdat', 4, 'latin1');
    mdat.writeBigUInt64BE(BigInt(mdat.length), 8);
    const moov = box('moov', box('trak'));
    const tail = box('free', Buffer.alloc(10));
    tail.writeUInt32BE(0, 0);
    expect(await count(Buffer.concat([ftyp, mdat, moov, tail]))).toBe(1);
  });

  it('says nothing (null) for what it does not read: fragments, no moov, two moovs, a box past its parent, truncation', async () => {
    const moov = box('moov', box('trak'));
    expect(await count(Buffer.concat([ftyp, moov, box('moof', box('mfhd'))]))).toBeNull();
    expect(await count(Buffer.concat([ftyp, box('moov', box('trak'), box('mvex'))]))).toBeNull();
    expect(await count(Buffer.concat([ftyp, box('mdat')]))).toBeNull();
    expect(await count(Buffer.concat([ftyp, moov, moov]))).toBeNull();
    const lying = box('moov', box('trak', Buffer.alloc(8)));
    lying.writeUInt32BE(0xffff, 8);
    expect(await count(Buffer.concat([ftyp, lying]))).toBeNull();
    expect(await count(Buffer.concat([ftyp, moov]).subarray(0, ftyp.length + 12))).toBeNull();
    const tiny = box('moov', box('trak'));
    tiny.writeUInt32BE(4, 8);
    expect(await count(Buffer.concat([ftyp, tiny]))).toBeNull();
  });

  it('stops after a bounded number of boxes', async () => {
    const many = Array.from({ length: 300 }, () => box('free'));
    expect(await count(Buffer.concat([ftyp, ...many, box('moov', box('trak'))]))).toBeNull();
  });
});
