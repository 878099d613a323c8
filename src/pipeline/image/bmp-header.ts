/**
 * The size a BMP declares, read from its headers (pure), so the pixel limit applies before ffmpeg
 * decodes it: libvips here has no BMP loader, and ffmpeg has no pixel limit of its own.
 */
export interface BmpHeader {
  width: number;
  height: number;
  bitsPerPixel: number;
}

export function readBmpHeader(head: Buffer): BmpHeader | null {
  if (head.length < 26 || head[0] !== 0x42 || head[1] !== 0x4d) return null;
  const dibSize = head.readUInt32LE(14);
  if (dibSize === 12) {
    // OS/2 BITMAPCOREHEADER: 16-bit sizes.
    return { width: head.readUInt16LE(18), height: head.readUInt16LE(20), bitsPerPixel: head.readUInt16LE(24) };
  }
  if (dibSize < 40 || head.length < 30) return null;
  // Height is negative for top-down bitmaps.
  return { width: head.readInt32LE(18), height: Math.abs(head.readInt32LE(22)), bitsPerPixel: head.readUInt16LE(28) };
}
