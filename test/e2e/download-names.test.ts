/**
 * Names that lie (issue 9 item 6): a client's file name is sanitised where it enters, and every
 * download (`/content`, `/media?path=`, the temporary URL) answers 200 with a Content-Disposition
 * free of bidi controls whose extension is the stored type's, whatever name a row holds.
 * Real: the service in this process, Redis, PostgreSQL, the fs store, sharp.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { minimalPdf, smallJpeg, smallPng } from '../helpers/media.js';
import { multipart, startService, waitSettled, type TestService } from '../helpers/service.js';

const SMILE = '\u{1F600}';
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
/** 300 characters whose emoji straddles UTF-16 unit 200, where the old code cut. */
const LONG_NAME = `${'x'.repeat(199)}${SMILE}${'y'.repeat(95)}.jpg`;

let svc: TestService;
let key: string;

beforeAll(async () => {
  svc = await startService();
  key = (await svc.newApp()).apiKey;
});

afterAll(async () => {
  await svc?.stop();
});

/** The name a browser would save under: RFC 5987 `filename*` decoded, and the ASCII fallback. */
function savedName(res: Response): { name: string; ascii: string } {
  const cd = res.headers.get('content-disposition') ?? '';
  const ext = /filename\*=UTF-8''([^;]+)/.exec(cd);
  const ascii = /filename="([^"]*)"/.exec(cd);
  expect(ext, cd).not.toBeNull();
  expect(ascii, cd).not.toBeNull();
  return { name: decodeURIComponent(ext![1]!), ascii: ascii![1]! };
}

/** Every way out of one ready media: each answers 200 with the same safe name ending in `ext`. */
async function expectDownloads(m: Record<string, any>, ext: string, bytes?: Buffer): Promise<string> {
  const ways = [
    await svc.call(`/v1/media/${m.id}/content`, { key }),
    await svc.call(`/media?path=${encodeURIComponent(m.mediaPath)}`, { key }),
    await fetch(m.url),
  ];
  const names = new Set<string>();
  for (const res of ways) {
    expect(res.status, res.url).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    if (bytes) expect(body.equals(bytes)).toBe(true);
    const { name, ascii } = savedName(res);
    expect(name).not.toMatch(BIDI);
    expect(name.endsWith(`.${ext}`), name).toBe(true);
    expect(ascii.endsWith(`.${ext}`), ascii).toBe(true);
    names.add(name);
  }
  expect(names.size).toBe(1);
  return [...names][0]!;
}

async function upload(bytes: Buffer, name: string, type: string): Promise<Record<string, any>> {
  const res = await svc.call('/v1/media', { method: 'POST', key, body: multipart({}, { bytes, name, type }) });
  expect(res.status, await res.clone().text()).toBe(202);
  const m = await waitSettled(svc, key, ((await res.json()) as any).data.id);
  expect(m.status).toBe('ready');
  return m;
}

describe('file names from clients', () => {
  it('strips a right-to-left override and downloads an .exe that is a PDF as .pdf', async () => {
    const pdf = minimalPdf('invoice');
    const m = await upload(pdf, 'invoice\u202Egpj.exe', 'application/pdf');
    expect(m.originalName).toBe('invoicegpj.exe');
    expect(await expectDownloads(m, 'pdf', pdf)).toBe('invoicegpj.pdf');
  });

  it('cuts a 300-character name on a character boundary, and every download answers 200', async () => {
    const m = await upload(await smallJpeg(64, 48, 11), LONG_NAME, 'image/jpeg');
    expect([...m.originalName].length).toBeLessThanOrEqual(200);
    expect(m.originalName.endsWith('.jpg')).toBe(true);
    const name = await expectDownloads(m, 'jpg');
    expect(name.startsWith('x'.repeat(190))).toBe(true);
  });

  it('cleans a base64 filename (controls, path) and an upload slot name alike', async () => {
    const png = await smallPng(20, 20, 5);
    const res = await svc.call('/v1/media', {
      method: 'POST', key, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ base64: png.toString('base64'), filename: 'dir/\u2067sc\u0000an\u202E.exe', mimeType: 'image/png' }),
    });
    expect(res.status).toBe(202);
    const b64 = await waitSettled(svc, key, ((await res.json()) as any).data.id);
    expect(b64.originalName).toBe('scan.exe');
    // The stored type decides (a small opaque PNG may be stored as JPEG), never the name's .exe.
    const ext = ({ 'image/png': 'png', 'image/jpeg': 'jpg' } as Record<string, string>)[b64.mimeType]!;
    expect(await expectDownloads(b64, ext)).toBe(`scan.${ext}`);

    const slot = await svc.call('/v1/media/uploads', {
      method: 'POST', key, headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ mimeType: 'image/png', byteSize: png.length, name: '\u202Ereport\u0007.png' }),
    });
    expect(slot.status).toBe(201);
    const { uploadUrl, mediaId } = ((await slot.json()) as any).data;
    expect((await fetch(uploadUrl, { method: 'PUT', headers: { 'content-type': 'image/png' }, body: png })).status).toBe(202);
    const viaSlot = await waitSettled(svc, key, mediaId);
    expect(viaSlot.originalName).toBe('report.png');
  });

  it('serves rows stored before names were cleaned (bidi, a name past every bound) with a safe name', async () => {
    const m = await upload(await smallJpeg(32, 32, 12), 'plain.jpg', 'image/jpeg');
    const stored = `\u202E${'x'.repeat(198)}${SMILE}${'y'.repeat(95)}gpj.exe`; // the emoji again across unit 200
    await svc.running.rt.pool.query('UPDATE media SET original_name = $2 WHERE id = $1', [m.id, stored]);
    const name = await expectDownloads(m, 'jpg');
    expect([...name].length).toBeLessThanOrEqual(200);
  });
});
