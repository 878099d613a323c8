import { createHash } from 'node:crypto';
import sharp from 'sharp';

/** Deterministic pseudo-random bytes (xorshift), so generated media is the same every run. */
export function prng(seed: number, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** A JPEG of noise, about `approxBytes` large (noise does not compress, so size tracks pixels). */
export async function noiseJpeg(approxBytes: number, seed = 1): Promise<Buffer> {
  // At q90 noise costs ~2.6 bytes per pixel; search the side that lands near the target.
  let side = Math.max(16, Math.round(Math.sqrt(approxBytes / 2.6)));
  for (let i = 0; i < 4; i++) {
    const raw = prng(seed, side * side * 3);
    const jpg = await sharp(raw, { raw: { width: side, height: side, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
    const ratio = approxBytes / jpg.length;
    if (Math.abs(1 - ratio) < 0.08) return jpg;
    side = Math.max(16, Math.round(side * Math.sqrt(ratio)));
  }
  const raw = prng(seed, side * side * 3);
  return sharp(raw, { raw: { width: side, height: side, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

export async function smallJpeg(width = 64, height = 48, seed = 7): Promise<Buffer> {
  return sharp(prng(seed, width * height * 3), { raw: { width, height, channels: 3 } }).jpeg({ quality: 80 }).toBuffer();
}

export async function smallPng(width = 32, height = 32, seed = 3): Promise<Buffer> {
  return sharp(prng(seed, width * height * 3), { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** A minimal valid one-page PDF with a correct xref table. */
export function minimalPdf(text = 'hello'): Buffer {
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] /Contents 4 0 R >>',
  ];
  const stream = `BT /F1 12 Tf 20 100 Td (${text}) Tj ET`;
  objs.push(`<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`);
  let body = '%PDF-1.4\n';
  const offsets: number[] = [];
  objs.forEach((o, i) => {
    offsets.push(body.length);
    body += `${i + 1} 0 obj\n${o}\nendobj\n`;
  });
  const xref = body.length;
  body += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n${offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('')}`;
  body += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(body, 'latin1');
}

/** Valid JPEG magic and header, garbage body: sniffs as JPEG, cannot decode. */
export function brokenJpeg(): Buffer {
  const head = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00]);
  return Buffer.concat([head, prng(99, 20_000)]);
}

export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Whether `haystack` contains any 64-byte run of `needle` (sampled every 4 KiB). */
export function containsRunOf(haystack: Buffer, needle: Buffer, run = 64, step = 4096): boolean {
  for (let i = 0; i + run <= needle.length; i += step) {
    if (haystack.indexOf(needle.subarray(i, i + run)) !== -1) return true;
  }
  return false;
}
