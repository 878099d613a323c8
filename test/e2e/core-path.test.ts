/**
 * The core path against the running service over HTTP: real Redis, real PostgreSQL, the fs store,
 * real sharp. Nothing is mocked.
 */
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { walk } from '../helpers/files.js';
import { startService, waitSettled, multipart, type TestService } from '../helpers/service.js';
import { brokenJpeg, containsRunOf, minimalPdf, noiseJpeg, sha256, smallJpeg, smallPng } from '../helpers/media.js';

let svc: TestService;
let app: { appId: string; apiKey: string };


async function upload(bytes: Uint8Array, fields: Record<string, string> = {}, opts: { name?: string; type?: string; key?: string; query?: string; headers?: Record<string, string> } = {}) {
  const res = await svc.call(`/v1/media${opts.query ?? ''}`, {
    method: 'POST',
    key: opts.key ?? app.apiKey,
    body: multipart(fields, { bytes, name: opts.name ?? 'photo.jpg', type: opts.type ?? 'image/jpeg' }),
    headers: opts.headers,
  });
  return { res, body: (await res.json()) as any };
}

beforeAll(async () => {
  svc = await startService();
  app = await svc.newApp();
});

afterAll(async () => {
  await svc?.stop();
});

describe('health', () => {
  it('answers /healthz and /readyz 200 when Postgres, Redis and storage answer', async () => {
    expect((await svc.call('/healthz')).status).toBe(200);
    const ready = await svc.call('/readyz');
    expect(ready.status).toBe(200);
    expect(((await ready.json()) as any).data.checks).toEqual({ postgres: 'ok', redis: 'ok', storage: 'ok' });
  });
});

describe('upload → ready → download', () => {
  let jpeg: Buffer;
  let media: any;

  beforeAll(async () => {
    jpeg = await noiseJpeg(3_000_000);
  });

  it('takes a 3 MB JPEG: 202 queued, then ready with a checksum of the stored bytes', async () => {
    const { res, body } = await upload(jpeg, { name: 'Visuel été.jpg' });
    expect(res.status).toBe(202);
    expect(res.headers.get('x-request-id')).toBeTruthy();
    expect(body.success).toBe(true);
    expect(body.data.status).toBe('queued');
    expect(body.data.id).toMatch(/^med_/);
    expect(body.data.mediaPath).toMatch(new RegExp(`^media/${app.appId}/[0-9a-f-]{36}-[0-9A-F]{16}\\.bin$`));
    media = await waitSettled(svc, app.apiKey, body.data.id);
    expect(media.status).toBe('ready');
    expect(media.kind).toBe('image');
    expect(media.mimeType).toBe('image/jpeg');
    expect(media.checksum.algorithm).toBe('sha256');
    expect(media.url).toContain('/v1/files/');
  });

  it('serves content whose SHA-256 is the checksum, with ETag and a safe Content-Disposition', async () => {
    const res = await svc.call(`/v1/media/${media.id}/content`, { key: app.apiKey });
    expect(res.status).toBe(200);
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(sha256(bytes)).toBe(media.checksum.value);
    expect(bytes.length).toBe(media.sizeBytes);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(res.headers.get('content-length')).toBe(String(bytes.length));
    expect(res.headers.get('etag')).toBe(`"${media.checksum.value}"`);
    const cd = res.headers.get('content-disposition')!;
    expect(cd).toMatch(/^attachment; filename="[A-Za-z0-9._ ()-]+"; filename\*=UTF-8''/);
    expect(cd).not.toMatch(/[\r\n]/);
    const again = await svc.call(`/v1/media/${media.id}/content`, { key: app.apiKey, headers: { 'if-none-match': `"${media.checksum.value}"` } });
    expect(again.status).toBe(304);
  });

  it('keeps no plaintext under DATA_DIR: neither the upload nor the stored bytes', async () => {
    const stored = Buffer.from(await (await svc.call(`/v1/media/${media.id}/content`, { key: app.apiKey })).arrayBuffer());
    const files = await walk(svc.config.DATA_DIR);
    const objects = files.filter((f) => f.endsWith('.bin'));
    expect(objects.length).toBeGreaterThan(0);
    for (const f of objects) {
      const data = await readFile(f);
      expect(containsRunOf(data, jpeg)).toBe(false);
      expect(containsRunOf(data, stored)).toBe(false);
    }
  });

  it('answers a Range with 206 and exactly those bytes', async () => {
    const full = Buffer.from(await (await svc.call(`/v1/media/${media.id}/content`, { key: app.apiKey })).arrayBuffer());
    expect(full.length).toBeGreaterThan(1_065_536);
    const res = await svc.call(`/v1/media/${media.id}/content`, { key: app.apiKey, headers: { range: 'bytes=1000000-1065535' } });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe(`bytes 1000000-1065535/${full.length}`);
    const part = Buffer.from(await res.arrayBuffer());
    expect(part.equals(full.subarray(1_000_000, 1_065_536))).toBe(true);
    const suffix = await svc.call(`/v1/media/${media.id}/content`, { key: app.apiKey, headers: { range: 'bytes=-10' } });
    expect(Buffer.from(await suffix.arrayBuffer()).equals(full.subarray(full.length - 10))).toBe(true);
    const bad = await svc.call(`/v1/media/${media.id}/content`, { key: app.apiKey, headers: { range: `bytes=${full.length + 5}-` } });
    expect(bad.status).toBe(416);
    expect(bad.headers.get('content-range')).toBe(`bytes */${full.length}`);
  });

  it('downloads by media path, and the temporary URL works without auth', async () => {
    const byPath = await svc.call(`/media?path=${encodeURIComponent(media.mediaPath)}`, { key: app.apiKey });
    expect(byPath.status).toBe(200);
    expect(sha256(Buffer.from(await byPath.arrayBuffer()))).toBe(media.checksum.value);
    const pub = await fetch(media.url);
    expect(pub.status).toBe(200);
    expect(sha256(Buffer.from(await pub.arrayBuffer()))).toBe(media.checksum.value);
  });
});

describe('integrity', () => {
  it('never serves a byte of a damaged segment', async () => {
    const jpeg = await noiseJpeg(1_500_000, 5);
    const { body } = await upload(jpeg);
    const m = await waitSettled(svc, app.apiKey, body.data.id);
    expect(m.status).toBe('ready');
    const good = Buffer.from(await (await svc.call(`/v1/media/${m.id}/content`, { key: app.apiKey })).arrayBuffer());
    const file = (await walk(svc.config.DATA_DIR)).find((f) => f.endsWith(`${m.id}.bin`))!;
    const sealed = await readFile(file);
    // Flip one byte in the 6th segment (segments are 64 KiB + 16-byte tag after a small header).
    const headerLen = sealed.length - (good.length + Math.ceil(good.length / 65536) * 16);
    const pos = headerLen + 5 * (65536 + 16) + 1234;
    sealed[pos] = sealed[pos]! ^ 0x01;
    await writeFile(file, sealed);

    const res = await svc.call(`/v1/media/${m.id}/content`, { key: app.apiKey });
    let received = Buffer.alloc(0);
    let aborted = false;
    if (res.status === 200) {
      const reader = res.body!.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          received = Buffer.concat([received, value]);
        }
      } catch {
        aborted = true;
      }
      expect(aborted).toBe(true);
    } else {
      expect(res.status).toBeGreaterThanOrEqual(500);
    }
    expect(received.length).toBeLessThanOrEqual(5 * 65536);
    expect(received.equals(good.subarray(0, received.length))).toBe(true);
    // A range inside the damaged segment fails before any header.
    const ranged = await svc.call(`/v1/media/${m.id}/content`, { key: app.apiKey, headers: { range: `bytes=${5 * 65536 + 10}-${5 * 65536 + 20}` } });
    expect(ranged.status).toBe(502);
    expect(((await ranged.json()) as any).error.code).toBe('STORAGE_UNAVAILABLE');
  });
});

describe('rejections leave nothing behind', () => {
  async function rowCount(): Promise<number> {
    const { rows } = await svc.running.rt.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM media');
    return rows[0]!.n;
  }
  async function stagingFiles(): Promise<string[]> {
    return (await walk(svc.config.DATA_DIR)).filter((f) => f.includes(`${path.sep}staging${path.sep}`) || f.endsWith('.tmp'));
  }

  it('refuses a PDF sent as kind=image with 415 at upload', async () => {
    const before = await rowCount();
    const { res, body } = await upload(minimalPdf(), { kind: 'image' }, { name: 'doc.pdf', type: 'application/pdf' });
    expect(res.status).toBe(415);
    expect(body.success).toBe(false);
    expect(body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(body.error.request_id).toBe(res.headers.get('x-request-id'));
    expect(await rowCount()).toBe(before);
    expect(await stagingFiles()).toEqual([]);
  });

  it('refuses a JPEG declared as PNG with 415', async () => {
    const { res, body } = await upload(await smallJpeg(), {}, { type: 'image/png', name: 'x.png' });
    expect(res.status).toBe(415);
    expect(body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('refuses a 5 MB + 1 byte image with 413 and keeps no row and no staging object', async () => {
    const before = await rowCount();
    const jpeg = await smallJpeg();
    // A valid JPEG head padded past the limit: the cap is enforced while streaming.
    const big = Buffer.concat([jpeg, Buffer.alloc(5_000_001 - jpeg.length, 0x20)]);
    const { res, body } = await upload(big, { kind: 'image' });
    expect(res.status).toBe(413);
    expect(body.error.code).toBe('FILE_TOO_LARGE');
    expect(await rowCount()).toBe(before);
    expect(await stagingFiles()).toEqual([]);
  });

  it('marks an undecodable JPEG failed with MEDIA_REJECTED', async () => {
    const { res, body } = await upload(brokenJpeg());
    expect(res.status).toBe(202);
    const m = await waitSettled(svc, app.apiKey, body.data.id);
    expect(m.status).toBe('failed');
    expect(m.error.code).toBe('MEDIA_REJECTED');
    expect(await stagingFiles()).toEqual([]);
    const content = await svc.call(`/v1/media/${m.id}/content`, { key: app.apiKey });
    expect(content.status).toBe(404);
  });

  it('answers 400 VALIDATION_FAILED naming the field when the file part is missing or a field is bad', async () => {
    const res = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({ kind: 'image' }) });
    expect(res.status).toBe(400);
    const body = (await res.json()) as any;
    expect(body.error.code).toBe('VALIDATION_FAILED');
    expect(body.error.details.fields.file).toBeDefined();
    const bad = await upload(await smallJpeg(), { kind: 'painting' });
    expect(bad.res.status).toBe(400);
    expect(bad.body.error.details.fields.kind).toBeDefined();
  });
});

describe('tenancy and scopes', () => {
  it('answers another app 404 by id and by path, 403 without the scope, 401 when revoked', async () => {
    const { body } = await upload(await smallJpeg());
    const m = await waitSettled(svc, app.apiKey, body.data.id);
    const other = await svc.newApp();
    expect((await svc.call(`/v1/media/${m.id}`, { key: other.apiKey })).status).toBe(404);
    expect((await svc.call(`/v1/media/${m.id}/content`, { key: other.apiKey })).status).toBe(404);
    expect((await svc.call(`/media?path=${encodeURIComponent(m.mediaPath)}`, { key: other.apiKey })).status).toBe(404);

    const readOnly = await svc.newKey(app.appId, 'media:read');
    const del = await svc.call(`/v1/media/${m.id}`, { method: 'DELETE', key: readOnly });
    expect(del.status).toBe(403);
    expect(((await del.json()) as any).error.code).toBe('FORBIDDEN');
    expect((await svc.call(`/v1/media/${m.id}`, { key: readOnly })).status).toBe(200);

    const { revokeKey } = await import('../../src/cli/admin.js');
    await revokeKey(svc.running.rt, readOnly.split('_').slice(0, 2).join('_'));
    const revoked = await svc.call(`/v1/media/${m.id}`, { key: readOnly });
    expect(revoked.status).toBe(401);
    expect(((await revoked.json()) as any).error.code).toBe('UNAUTHORIZED');
    expect((await svc.call('/v1/media')).status).toBe(401);
    expect((await svc.call('/v1/media', { key: 'mf_nope_nope' })).status).toBe(401);
  });
});

describe('GET /media?path= refuses anything but an exact path', () => {
  it('answers 404 to traversal, encodings, absolute paths and NUL, and reads no file outside the store', async () => {
    const { body } = await upload(await smallJpeg());
    const m = await waitSettled(svc, app.apiKey, body.data.id);
    const attempts = [
      '../../../etc/passwd',
      `${m.mediaPath}/../../../../etc/passwd`,
      '%2e%2e%2f%2e%2e%2fetc%2fpasswd',
      '..%5c..%5cwindows',
      '/etc/passwd',
      `/${m.mediaPath}`,
      `${m.mediaPath}%00`,
      `${m.mediaPath}\u0000.jpg`,
      m.mediaPath.toUpperCase(),
      `./${m.mediaPath}`,
      'media/../objects',
    ];
    for (const p of attempts) {
      const res = await svc.call(`/media?path=${encodeURIComponent(p)}`, { key: app.apiKey });
      expect(res.status, p).toBe(404);
      const b = (await res.json()) as any;
      expect(b.error.code).toBe('NOT_FOUND');
    }
    // Raw (not re-encoded) traversal in the query string.
    const raw = await svc.call('/media?path=../../etc/passwd', { key: app.apiKey });
    expect(raw.status).toBe(404);
    const ok = await svc.call(`/media?path=${encodeURIComponent(m.mediaPath)}`, { key: app.apiKey });
    expect(ok.status).toBe(200);
  });
});

describe('listing', () => {
  it('pages 25 media with limit=10&page=2&sortBy=sizeBytes&sortOrder=asc: the right 5 in order, total 25', async () => {
    const other = await svc.newApp();
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) {
      const png = await smallPng(8 + i, 8 + i, i + 1);
      const res = await svc.call('/v1/media', { method: 'POST', key: other.apiKey, body: multipart({}, { bytes: png, name: `p${i}.png`, type: 'image/png' }) });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as any).data.id);
    }
    for (const id of ids) await waitSettled(svc, other.apiKey, id);
    const all = (await (await svc.call('/v1/media?limit=1000', { key: other.apiKey })).json()) as any;
    expect(all.page.total).toBe(25);
    const sizes = all.data.map((d: any) => ({ id: d.id, size: d.sizeBytes }));
    sizes.sort((a: any, b: any) => a.size - b.size || (a.id < b.id ? -1 : 1));
    const res = await svc.call('/v1/media?limit=10&page=2&sortBy=sizeBytes&sortOrder=asc', { key: other.apiKey });
    expect(res.status).toBe(200);
    const page = (await res.json()) as any;
    expect(page.page).toEqual({ page: 2, limit: 10, total: 25 });
    expect(page.data).toHaveLength(5);
    const got = page.data.map((d: any) => d.sizeBytes);
    expect(got).toEqual([...got].sort((a: number, b: number) => a - b));
    expect(got).toEqual(sizes.slice(20).map((s: any) => s.size));
    const bad = await svc.call('/v1/media?limit=1001', { key: other.apiKey });
    expect(bad.status).toBe(400);
  });
});

describe('deletion', () => {
  it('deletes: 204, then content and path 404 and the stored object is gone from disk', async () => {
    const { body } = await upload(await smallJpeg());
    const m = await waitSettled(svc, app.apiKey, body.data.id);
    const file = (await walk(svc.config.DATA_DIR)).find((f) => f.endsWith(`${m.id}.bin`))!;
    expect((await stat(file)).size).toBeGreaterThan(0);
    const del = await svc.call(`/v1/media/${m.id}`, { method: 'DELETE', key: app.apiKey });
    expect(del.status).toBe(204);
    expect((await svc.call(`/v1/media/${m.id}`, { key: app.apiKey })).status).toBe(404);
    expect((await svc.call(`/v1/media/${m.id}/content`, { key: app.apiKey })).status).toBe(404);
    expect((await svc.call(`/media?path=${encodeURIComponent(m.mediaPath)}`, { key: app.apiKey })).status).toBe(404);
    expect((await fetch(m.url)).status).toBe(404);
    await expect(stat(file)).rejects.toThrow();
    expect((await svc.call(`/v1/media/${m.id}`, { method: 'DELETE', key: app.apiKey })).status).toBe(404);
    const { rows } = await svc.running.rt.pool.query('SELECT reason FROM audit_events WHERE media_id = $1', [m.id]);
    expect(rows).toEqual([{ reason: 'deleted' }]);
  });
});

describe('idempotency and waiting', () => {
  it('returns the first answer for a retried Idempotency-Key and 409 for another body', async () => {
    const jpeg = await smallJpeg(80, 60, 11);
    const first = await upload(jpeg, {}, { headers: { 'idempotency-key': 'abc-1' } });
    expect(first.res.status).toBe(202);
    const second = await upload(jpeg, {}, { headers: { 'idempotency-key': 'abc-1' } });
    expect(second.res.status).toBe(202);
    expect(second.body.data.id).toBe(first.body.data.id);
    const other = await upload(await smallJpeg(80, 60, 12), {}, { headers: { 'idempotency-key': 'abc-1' } });
    expect(other.res.status).toBe(409);
    expect(other.body.error.code).toBe('CONFLICT');
  });

  it('answers ?wait=N when the media is ready', async () => {
    const { res, body } = await upload(await smallJpeg(), {}, { query: '?wait=20' });
    expect(res.status).toBe(200);
    expect(body.data.status).toBe('ready');
  });
});
