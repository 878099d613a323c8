/**
 * The core-path flows (test/e2e/core-path.test.ts) written once against a `StoreInspector`, so the
 * same assertions run on every storage driver: upload → ready → checksum, range, path download,
 * integrity, rejections that leave nothing behind, tenancy, traversal, listing, deletion,
 * idempotency. The inspector looks at the backend directly (the data dir, or the bucket), never
 * through the service.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { brokenJpeg, containsRunOf, minimalPdf, noiseJpeg, sha256, smallJpeg, smallPng } from './media.js';
import { multipart, waitSettled, type TestService } from './service.js';
import type { S3TestServer } from './s3-server.js';
import { walk } from './files.js';

/** A view of the backend under the service. Keys are store keys (`objects/…`, `staging/…`). */
export interface StoreInspector {
  /** Every key, including artefacts of writes in flight (fs temp files; S3 multipart uploads as `upload:<key>`). */
  allKeys(): Promise<string[]>;
  read(key: string): Promise<Buffer>;
  write(key: string, bytes: Buffer): Promise<void>;
}


/** The fs backend: files under DATA_DIR (temp files of puts included). */
export function fsInspector(dataDir: string): StoreInspector {
  return {
    async allKeys() {
      return (await walk(dataDir)).map((f) => path.relative(dataDir, f).split(path.sep).join('/')).filter((k) => k.startsWith('objects/') || k.startsWith('staging/'));
    },
    read: (key) => readFile(path.join(dataDir, ...key.split('/'))),
    write: (key, bytes) => writeFile(path.join(dataDir, ...key.split('/')), bytes),
  };
}

/** The S3 backend, through its own client (a second store on the bucket) and ListMultipartUploads. */
export function s3Inspector(server: S3TestServer, store: BlobStore): StoreInspector & { close(): void } {
  const client = new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return {
    async allKeys() {
      const keys: string[] = [];
      for await (const o of store.list('')) keys.push(o.key);
      const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: server.bucket }));
      for (const u of uploads.Uploads ?? []) keys.push(`upload:${u.Key ?? ''}`);
      return keys;
    },
    async read(key) {
      const chunks: Buffer[] = [];
      for await (const c of await store.get(key)) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    },
    async write(key, bytes) {
      await store.put(key, Readable.from([bytes]));
    },
    close: () => client.destroy(),
  };
}

/** The service's environment for `STORAGE_DRIVER=s3` against `s3`. */
export function s3Env(s3: S3TestServer): Record<string, string> {
  return {
    STORAGE_DRIVER: 's3',
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: s3.bucket,
    S3_REGION: s3.region,
    S3_ACCESS_KEY_ID: s3.accessKeyId,
    S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
    S3_FORCE_PATH_STYLE: 'true',
  };
}

export interface CoreFlowsTarget {
  svc: TestService;
  inspector: StoreInspector;
}

/**
 * Registers the core-path suite. The caller starts the service (and its backend) in its own
 * top-level beforeAll, which runs before these, and stops it in afterAll; `target` is read once
 * they have run.
 */
export function defineCoreFlows(label: string, target: () => CoreFlowsTarget): void {
  let svc: TestService;
  let inspector: StoreInspector;
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
  // The stored object: `objects/<app>/<media>.<run>.bin`, the run that made the media ready.
  const objectKeyOf = async (mediaId: string) => (await inspector.allKeys()).find((k) => new RegExp(`^objects/[^/]+/${mediaId}\\.[a-z0-9]+\\.bin$`).test(k));

  describe(`core path (${label})`, () => {
    beforeAll(async () => {
      ({ svc, inspector } = target());
      app = await svc.newApp();
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
        const { rows } = await svc.running.rt.pool.query<{ storage_key: string }>('SELECT storage_key FROM media WHERE id = $1', [media.id]);
        expect(rows[0]!.storage_key).toMatch(new RegExp(`^objects/${app.appId}/${media.id}\\.[a-z0-9]{16}\\.bin$`));
        expect(await objectKeyOf(media.id)).toBe(rows[0]!.storage_key);
      });

      it('serves content whose SHA-256 is the checksum, with ETag, and 304 on If-None-Match', async () => {
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

      it('keeps no plaintext in the store: neither the upload nor the stored bytes', async () => {
        const stored = Buffer.from(await (await svc.call(`/v1/media/${media.id}/content`, { key: app.apiKey })).arrayBuffer());
        const keys = (await inspector.allKeys()).filter((k) => k.endsWith('.bin'));
        expect(keys.length).toBeGreaterThan(0);
        for (const k of keys) {
          const data = await inspector.read(k);
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
        expect(Buffer.from(await res.arrayBuffer()).equals(full.subarray(1_000_000, 1_065_536))).toBe(true);
        const suffix = await svc.call(`/v1/media/${media.id}/content`, { key: app.apiKey, headers: { range: 'bytes=-10' } });
        expect(Buffer.from(await suffix.arrayBuffer()).equals(full.subarray(full.length - 10))).toBe(true);
        const first = await svc.call(`/v1/media/${media.id}/content`, { key: app.apiKey, headers: { range: 'bytes=0-0' } });
        expect(first.status).toBe(206);
        expect(Buffer.from(await first.arrayBuffer()).equals(full.subarray(0, 1))).toBe(true);
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
        const { body } = await upload(await noiseJpeg(1_500_000, 5));
        const m = await waitSettled(svc, app.apiKey, body.data.id);
        expect(m.status).toBe('ready');
        const good = Buffer.from(await (await svc.call(`/v1/media/${m.id}/content`, { key: app.apiKey })).arrayBuffer());
        const key = (await objectKeyOf(m.id))!;
        const sealed = await inspector.read(key);
        // One byte flipped in the 6th segment (64 KiB + 16-byte tag each, after a small header).
        const headerLen = sealed.length - (good.length + Math.ceil(good.length / 65536) * 16);
        const pos = headerLen + 5 * (65536 + 16) + 1234;
        sealed[pos] = sealed[pos]! ^ 0x01;
        await inspector.write(key, sealed);

        const res = await svc.call(`/v1/media/${m.id}/content`, { key: app.apiKey });
        let received = Buffer.alloc(0);
        if (res.status === 200) {
          let aborted = false;
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
      const leftoverKeys = async () => (await inspector.allKeys()).filter((k) => k.startsWith('staging/') || k.startsWith('upload:') || k.endsWith('.tmp'));
      /**
       * Staging objects and pending writes, once those of earlier media have had a moment to go: a
       * worker removes a staging object just after marking its media ready. A leftover of the
       * request under test does not go away, and is what this returns.
       */
      const leftovers = async () => {
        const deadline = Date.now() + 3000;
        for (;;) {
          const keys = await leftoverKeys();
          if (keys.length === 0 || Date.now() > deadline) return keys;
          await new Promise((r) => setTimeout(r, 50));
        }
      };

      it('refuses a PDF sent as kind=image with 415 at upload: no row, no staging object', async () => {
        const before = await rowCount();
        const { res, body } = await upload(minimalPdf(), { kind: 'image' }, { name: 'doc.pdf', type: 'application/pdf' });
        expect(res.status).toBe(415);
        expect(body.success).toBe(false);
        expect(body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
        expect(body.error.request_id).toBe(res.headers.get('x-request-id'));
        expect(await rowCount()).toBe(before);
        expect(await leftovers()).toEqual([]);
      });

      it('refuses a JPEG declared as PNG with 415', async () => {
        const { res, body } = await upload(await smallJpeg(), {}, { type: 'image/png', name: 'x.png' });
        expect(res.status).toBe(415);
        expect(body.error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
        expect(await leftovers()).toEqual([]);
      });

      // A sticker is not shrunk on the way in, so its input limit (500 KB, the animated one) is small and cheap to pass.
      it('refuses a 500 KB + 1 byte sticker with 413: no row, no staging object, no pending upload', async () => {
        const before = await rowCount();
        const png = await smallPng();
        const big = Buffer.concat([png, Buffer.alloc(500_001 - png.length, 0x20)]);
        const { res, body } = await upload(big, { kind: 'sticker' }, { type: 'image/png', name: 's.png' });
        expect(res.status).toBe(413);
        expect(body.error.code).toBe('FILE_TOO_LARGE');
        expect(await rowCount()).toBe(before);
        expect(await leftovers()).toEqual([]);
      });

      it('marks an undecodable JPEG failed with MEDIA_REJECTED and removes its staging object', async () => {
        const { res, body } = await upload(brokenJpeg());
        expect(res.status).toBe(202);
        const m = await waitSettled(svc, app.apiKey, body.data.id);
        expect(m.status).toBe('failed');
        expect(m.error.code).toBe('MEDIA_REJECTED');
        expect(await leftovers()).toEqual([]);
        expect((await svc.call(`/v1/media/${m.id}/content`, { key: app.apiKey })).status).toBe(404);
      });

      it('answers 400 VALIDATION_FAILED naming the field', async () => {
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
        expect((await svc.call(`/v1/media/${m.id}/content`, { key: readOnly })).status).toBe(200);
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
      it('answers 404 to traversal, encodings, absolute paths and NUL', async () => {
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
          // The storage key is not a media path: objects are never reachable by their key.
          `objects/${app.appId}/${m.id}.bin`,
        ];
        for (const p of attempts) {
          const res = await svc.call(`/media?path=${encodeURIComponent(p)}`, { key: app.apiKey });
          expect(res.status, p).toBe(404);
          expect(((await res.json()) as any).error.code).toBe('NOT_FOUND');
        }
        expect((await svc.call('/media?path=../../etc/passwd', { key: app.apiKey })).status).toBe(404);
        expect((await svc.call(`/media?path=${encodeURIComponent(m.mediaPath)}`, { key: app.apiKey })).status).toBe(200);
      });
    });

    describe('listing', () => {
      it('pages 25 media with limit=10&page=2&sortBy=sizeBytes&sortOrder=asc', async () => {
        const other = await svc.newApp();
        const ids: string[] = [];
        for (let i = 0; i < 25; i++) {
          const res = await svc.call('/v1/media', { method: 'POST', key: other.apiKey, body: multipart({}, { bytes: await smallPng(8 + i, 8 + i, i + 1), name: `p${i}.png`, type: 'image/png' }) });
          expect(res.status).toBe(202);
          ids.push(((await res.json()) as any).data.id);
        }
        for (const id of ids) await waitSettled(svc, other.apiKey, id);
        const all = (await (await svc.call('/v1/media?limit=1000', { key: other.apiKey })).json()) as any;
        expect(all.page.total).toBe(25);
        const sizes = all.data.map((d: any) => d.sizeBytes as number).sort((a: number, b: number) => a - b);
        const res = await svc.call('/v1/media?limit=10&page=2&sortBy=sizeBytes&sortOrder=asc', { key: other.apiKey });
        expect(res.status).toBe(200);
        const page = (await res.json()) as any;
        expect(page.page).toEqual({ page: 2, limit: 10, total: 25 });
        expect(page.data).toHaveLength(5);
        expect(page.data.map((d: any) => d.sizeBytes)).toEqual(sizes.slice(20));
        expect((await svc.call('/v1/media?limit=1001', { key: other.apiKey })).status).toBe(400);
      });
    });

    describe('deletion', () => {
      it('deletes: 204, then content and path 404 and the stored object is gone from the store', async () => {
        const { body } = await upload(await smallJpeg());
        const m = await waitSettled(svc, app.apiKey, body.data.id);
        const key = await objectKeyOf(m.id);
        expect(key).toBeDefined();
        const del = await svc.call(`/v1/media/${m.id}`, { method: 'DELETE', key: app.apiKey });
        expect(del.status).toBe(204);
        expect((await svc.call(`/v1/media/${m.id}`, { key: app.apiKey })).status).toBe(404);
        expect((await svc.call(`/v1/media/${m.id}/content`, { key: app.apiKey })).status).toBe(404);
        expect((await svc.call(`/media?path=${encodeURIComponent(m.mediaPath)}`, { key: app.apiKey })).status).toBe(404);
        expect((await fetch(m.url)).status).toBe(404);
        expect(await objectKeyOf(m.id)).toBeUndefined();
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
  });
}
