/**
 * Resumable uploads (tus 1.0, issue 16) with tus-js-client against the running service, on the fs
 * store and on S3 (s3rver in this process). Real Redis, PostgreSQL, s3rver and worker; a TCP proxy
 * (test/helpers/cut-proxy.ts) stands in for a phone losing its network in the middle of an upload.
 *
 * TMPDIR points at a directory of this file's own while it runs, so the services' data dirs, the
 * s3rver directory and every temporary file land under it, and the plaintext scan can read them all.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Upload, type HttpRequest, type HttpResponse } from 'tus-js-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/cli/admin.js';
import { sweepJob } from '../../src/jobs/sweep.js';
import { silentLogger } from '../../src/log.js';
import { startRoles } from '../../src/roles.js';
import type { JobContext } from '../../src/jobs/job-context.js';
import { s3Env } from '../helpers/core-flows.js';
import { startCutProxy, type CutProxy } from '../helpers/cut-proxy.js';
import { walk } from '../helpers/files.js';
import { minimalPdf, sha256, smallJpeg } from '../helpers/media.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { startService, waitFor, waitSettled, type TestService } from '../helpers/service.js';

const SEGMENT = 64 * 1024;
const MB = 1_000_000;
const BIG = 100 * MB;

let tmpRoot = '';
let savedTmp: string | undefined;
let s3: S3TestServer;
const services: Record<'fs' | 's3', TestService> = {} as never;

beforeAll(async () => {
  savedTmp = process.env.TMPDIR;
  tmpRoot = await mkdtemp(path.join(os.tmpdir(), 'mf-tus-'));
  process.env.TMPDIR = tmpRoot;
  s3 = await startS3Server();
  // The scheduled sweep never runs by itself here: the expiry test runs it when it wants.
  services.fs = await startService({ env: { SWEEP_CRON: '0 0 1 1 *' } });
  services.s3 = await startService({ env: { ...s3Env(s3), SWEEP_CRON: '0 0 1 1 *' } });
}, 120_000);

afterAll(async () => {
  await services.fs?.stop();
  await services.s3?.stop();
  await s3?.dispose();
  if (savedTmp === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = savedTmp;
  if (tmpRoot) await rm(tmpRoot, { recursive: true, force: true });
}, 120_000);

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const metadataHeader = (m: Record<string, string>): string => Object.entries(m).map(([k, v]) => `${k} ${b64(v)}`).join(',');

function tusFetch(base: string, key: string | null, pathOrUrl: string, init: { method: string; headers?: Record<string, string>; body?: Buffer }) {
  const headers: Record<string, string> = { 'tus-resumable': '1.0.0', ...init.headers };
  if (key) headers.authorization = `Bearer ${key}`;
  return fetch(pathOrUrl.startsWith('http') ? pathOrUrl : `${base}${pathOrUrl}`, { method: init.method, headers, body: init.body });
}

async function create(svc: TestService, key: string, length: number, meta: Record<string, string>, extra: Record<string, string> = {}): Promise<Response> {
  return tusFetch(svc.url, key, '/v1/uploads/tus', { method: 'POST', headers: { 'upload-length': String(length), 'upload-metadata': metadataHeader(meta), ...extra } });
}

async function createOk(svc: TestService, key: string, length: number, meta: Record<string, string>): Promise<string> {
  const res = await create(svc, key, length, meta);
  expect(res.status, await res.clone().text()).toBe(201);
  return res.headers.get('location')!;
}

const patch = (svc: TestService, key: string, url: string, offset: number, body: Buffer) =>
  tusFetch(svc.url, key, url, { method: 'PATCH', headers: { 'upload-offset': String(offset), 'content-type': 'application/offset+octet-stream' }, body });

const head = (svc: TestService, key: string, url: string) => tusFetch(svc.url, key, url, { method: 'HEAD' });

async function expectEnvelope(res: Response, status: number, code: string): Promise<void> {
  const text = await res.text();
  expect(res.status, text).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/application\/json/);
  const body = JSON.parse(text) as { success: boolean; error: { code: string; request_id: string } };
  expect(body.success).toBe(false);
  expect(body.error.code).toBe(code);
  expect(body.error.request_id).toBe(res.headers.get('x-request-id'));
}

/** Text the document rules accept (UTF-8, no NULs), `marker` on every line, `bytes` long. */
function textDocument(bytes: number, marker: string): Buffer {
  const out = Buffer.alloc(bytes);
  let off = 0;
  for (let line = 0; off < bytes; line++) off += out.write(`${marker} line ${String(line).padStart(9, '0')} the quick brown fox jumps over the lazy dog\n`, off, 'utf8');
  return out;
}

async function storeKeys(svc: TestService, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of svc.running.rt.store.list(prefix)) keys.push(o.key);
  return keys;
}

async function tusRows(svc: TestService, appId: string): Promise<number> {
  const { rows } = await svc.running.rt.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM tus_uploads WHERE app_id = $1', [appId]);
  return rows[0]!.n;
}

/** Every file under `dir` whose bytes contain `marker` (read in 1 MiB windows that overlap by the marker's length). */
async function filesContaining(dir: string, marker: Buffer, skip: (file: string) => boolean): Promise<{ hits: string[]; files: number }> {
  const hits: string[] = [];
  let files = 0;
  for (const file of await walk(dir)) {
    if (skip(file)) continue;
    const fh = await open(file, 'r').catch(() => null);
    if (!fh) continue;
    files++;
    try {
      const buf = Buffer.alloc(1024 * 1024 + marker.length);
      let pos = 0;
      let carry = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, carry, buf.length - carry, pos);
        if (bytesRead === 0) break;
        const view = buf.subarray(0, carry + bytesRead);
        if (view.includes(marker)) {
          hits.push(file);
          break;
        }
        pos += bytesRead;
        carry = Math.min(marker.length - 1, view.length);
        view.copy(buf, 0, view.length - carry);
      }
    } finally {
      await fh.close();
    }
  }
  return { hits, files };
}

function runUpload(input: Buffer, opts: ConstructorParameters<typeof Upload>[1]): { upload: Upload; done: Promise<void> } {
  let upload!: Upload;
  const done = new Promise<void>((resolve, reject) => {
    upload = new Upload(input, { ...opts, onSuccess: () => resolve(), onError: (err) => reject(err) });
  });
  upload.start();
  return { upload, done };
}

const sweepCtx = (svc: TestService): JobContext => ({
  id: 'sweep-test',
  log: svc.running.rt.log,
  attempt: 1,
  finalAttempt: true,
  signal: new AbortController().signal,
  progress: () => undefined,
});

describe.each(['fs', 's3'] as const)('tus uploads on %s', (driver) => {
  let svc: TestService;
  let app: { appId: string; apiKey: string };

  beforeAll(async () => {
    svc = services[driver];
    expect(svc.running.rt.store.driver).toBe(driver);
    app = await svc.newApp();
  });

  it('takes a small file in the creation request (creation-with-upload) and it becomes a media like a slot PUT', async () => {
    const pdf = minimalPdf('tus small');
    let mediaId: string | null = null;
    const { done } = runUpload(pdf, {
      endpoint: `${svc.url}/v1/uploads/tus`,
      headers: { authorization: `Bearer ${app.apiKey}` },
      metadata: { filename: '../../etc/évil\u0000name.pdf', filetype: 'application/pdf', correlationId: 'corr-1', ttlSeconds: '999999999' },
      uploadDataDuringCreation: true,
      onAfterResponse: (_req: HttpRequest, res: HttpResponse) => {
        mediaId = res.getHeader('Media-Id') ?? mediaId;
      },
    });
    await done;
    expect(mediaId).toMatch(/^med_/);
    const m = await waitSettled(svc, app.apiKey, mediaId!);
    expect(m.status).toBe('ready');
    expect(m.source).toBe('tus');
    expect(m.kind).toBe('document');
    expect(m.originalName).toBe('évilname.pdf');
    expect(m.correlationId).toBe('corr-1');
    expect(m.checksum.value).toBe(sha256(pdf));
    // The TTL was clamped to the retention cap, as for every way in.
    expect(new Date(m.expiresAt).getTime() - Date.now()).toBeLessThanOrEqual(svc.config.MAX_RETENTION_SECONDS * 1000);
    expect(await storeKeys(svc, 'tus/')).toEqual([]);
  });

  it('refuses before any byte: Upload-Length over the kind limit or the hard cap (413), deferred length and empty files (400); nothing is kept', async () => {
    const before = await tusRows(svc, app.appId);
    await expectEnvelope(await create(svc, app.apiKey, 10 * MB + 1, { filename: 'a.pdf', kind: 'document' }), 413, 'FILE_TOO_LARGE');
    await expectEnvelope(await create(svc, app.apiKey, 10 * MB + 1, { filename: 'a.pdf', filetype: 'application/pdf' }), 413, 'FILE_TOO_LARGE');
    await expectEnvelope(await create(svc, app.apiKey, BIG + 1, { filename: 'a.bin' }), 413, 'FILE_TOO_LARGE');
    const deferred = await tusFetch(svc.url, app.apiKey, '/v1/uploads/tus', { method: 'POST', headers: { 'upload-defer-length': '1' } });
    await expectEnvelope(deferred, 400, 'VALIDATION_FAILED');
    await expectEnvelope(await create(svc, app.apiKey, 0, { filename: 'empty.txt' }), 400, 'VALIDATION_FAILED');
    await expectEnvelope(await create(svc, app.apiKey, 100, { kind: 'banana' }), 400, 'VALIDATION_FAILED');
    await expectEnvelope(await create(svc, app.apiKey, 100, { kind: 'image', filetype: 'application/pdf' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    await expectEnvelope(await create(svc, app.apiKey, 100, { deviceId: 'nobody-has-this' }), 404, 'NOT_FOUND');
    await expectEnvelope(await create(svc, app.apiKey, 100, { folderId: 'fld_none' }), 404, 'NOT_FOUND');
    expect(await tusRows(svc, app.appId)).toBe(before);
  });

  it('sniffs the first bytes on the first PATCH: a disallowed type ends the upload with 415 and removes its bytes', async () => {
    const url = await createOk(svc, app.apiKey, 3 * SEGMENT + 10, { filename: 'photo.jpg', kind: 'image' });
    const res = await patch(svc, app.apiKey, url, 0, textDocument(3 * SEGMENT + 10, 'not-an-image'));
    await expectEnvelope(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
    // The upload is over: HEAD (which carries no body) finds nothing.
    expect((await head(svc, app.apiKey, url)).status).toBe(404);
    expect(await storeKeys(svc, `tus/${app.appId}/`)).toEqual([]);

    // Without a kind or a type the hard cap applies at creation; the first bytes then say image (50 MB input limit): 413.
    const jpeg = Buffer.concat([await smallJpeg(), Buffer.alloc(SEGMENT)]);
    const unknown = await createOk(svc, app.apiKey, 50 * MB + 1, { filename: 'mystery' });
    await expectEnvelope(await patch(svc, app.apiKey, unknown, 0, jpeg), 413, 'FILE_TOO_LARGE');
    expect((await head(svc, app.apiKey, unknown)).status).toBe(404);
    expect(await storeKeys(svc, `tus/${app.appId}/`)).toEqual([]);
  });

  it('answers a wrong offset with 409, another app’s upload with 404, and keeps the upload intact', async () => {
    const other = await svc.newApp();
    const doc = textDocument(5 * SEGMENT + 123, 'offsets');
    const url = await createOk(svc, app.apiKey, doc.length, { filename: 'o.txt', filetype: 'text/plain' });
    const first = await patch(svc, app.apiKey, url, 0, doc.subarray(0, 2 * SEGMENT + 500));
    expect(first.status).toBe(204);
    // Only whole sealed segments count: the 500 bytes after them are not kept.
    expect(first.headers.get('upload-offset')).toBe(String(2 * SEGMENT));
    await expectEnvelope(await patch(svc, app.apiKey, url, 2 * SEGMENT + 500, doc.subarray(2 * SEGMENT + 500)), 409, 'CONFLICT');
    // Fewer bytes than a segment (and not the end) could never be sealed: refused, not silently dropped forever.
    await expectEnvelope(await patch(svc, app.apiKey, url, 2 * SEGMENT, doc.subarray(2 * SEGMENT, 2 * SEGMENT + 1000)), 400, 'VALIDATION_FAILED');
    await expectEnvelope(await patch(svc, other.apiKey, url, 2 * SEGMENT, doc.subarray(2 * SEGMENT)), 404, 'NOT_FOUND');
    expect((await head(svc, other.apiKey, url)).status).toBe(404);
    await expectEnvelope(await tusFetch(svc.url, other.apiKey, url, { method: 'DELETE' }), 404, 'NOT_FOUND');
    const h = await head(svc, app.apiKey, url);
    expect(h.status).toBe(200);
    expect(h.headers.get('upload-offset')).toBe(String(2 * SEGMENT));
    expect(h.headers.get('upload-length')).toBe(String(doc.length));
    const last = await patch(svc, app.apiKey, url, 2 * SEGMENT, doc.subarray(2 * SEGMENT));
    expect(last.status).toBe(204);
    expect(last.headers.get('upload-offset')).toBe(String(doc.length));
    const mediaId = last.headers.get('media-id')!;
    const m = await waitSettled(svc, app.apiKey, mediaId);
    expect(m.status).toBe('ready');
    expect(m.checksum.value).toBe(sha256(doc));
    // Nobody else's key finds the media either.
    expect((await svc.call(`/v1/media/${mediaId}`, { key: other.apiKey })).status).toBe(404);
  });

  it('lets one of two concurrent PATCHes write; the other gets 423', async () => {
    const doc = textDocument(4 * SEGMENT, 'concurrent');
    const url = await createOk(svc, app.apiKey, doc.length, { filename: 'c.txt' });
    // The first PATCH sends one segment and then holds its body open, so it keeps the upload's lease.
    const target = new URL(url);
    const slow = http.request({
      host: target.hostname,
      port: target.port,
      path: target.pathname,
      method: 'PATCH',
      headers: { authorization: `Bearer ${app.apiKey}`, 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream', 'content-length': String(doc.length) },
    });
    const slowAnswer = new Promise<http.IncomingMessage>((resolve, reject) => slow.on('response', resolve).on('error', reject));
    slow.write(doc.subarray(0, SEGMENT + 1));
    // Wait until the first PATCH holds the lease (a row the database shows), then race it.
    await waitFor(async () => {
      const { rows } = await svc.running.rt.pool.query<{ t: string | null }>('SELECT lock_token AS t FROM tus_uploads WHERE id = $1', [url.split('/').pop()]);
      return rows[0]?.t ?? null;
    });
    const second = await patch(svc, app.apiKey, url, 0, doc);
    expect([409, 423]).toContain(second.status);
    await expectEnvelope(second, second.status, 'CONFLICT');
    slow.end(doc.subarray(SEGMENT + 1));
    const res = await slowAnswer;
    res.resume();
    expect(res.statusCode).toBe(204);
    expect(res.headers['upload-offset']).toBe(String(doc.length));
    expect(res.headers['media-id']).toMatch(/^med_/);
  });

  it('holds across API processes: a second process refuses a concurrent PATCH (423), then finishes the upload the first began', async () => {
    // A second API on the same database and store, with its own runtime (pool, store client, Fastify
    // app): it shares nothing in memory with the first, only what any other API process would.
    const other = await startRoles(svc.config, silentLogger, 'api');
    try {
      const doc = textDocument(5 * SEGMENT + 777, 'two-processes');
      const url = await createOk(svc, app.apiKey, doc.length, { filename: 'two.txt', filetype: 'text/plain' });
      const onOther = url.replace(svc.url, other.url!);
      const target = new URL(url);
      const slow = http.request({
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'PATCH',
        headers: { authorization: `Bearer ${app.apiKey}`, 'tus-resumable': '1.0.0', 'upload-offset': '0', 'content-type': 'application/offset+octet-stream', 'content-length': String(doc.length) },
      });
      slow.on('error', () => undefined);
      slow.write(doc.subarray(0, 2 * SEGMENT + 5));
      await waitFor(async () => {
        const { rows } = await svc.running.rt.pool.query<{ t: string | null }>('SELECT lock_token AS t FROM tus_uploads WHERE id = $1', [url.split('/').pop()]);
        return rows[0]?.t ?? null;
      });
      await expectEnvelope(await tusFetch(other.url!, app.apiKey, onOther, { method: 'PATCH', headers: { 'upload-offset': '0', 'content-type': 'application/offset+octet-stream' }, body: doc }), 423, 'CONFLICT');
      // The first process's client goes away: what it sealed stays, and the other process takes over.
      slow.destroy();
      await waitFor(async () => (await head(svc, app.apiKey, onOther)).headers.get('upload-offset') === String(2 * SEGMENT));
      const rest = await waitFor(async () => {
        const r = await tusFetch(other.url!, app.apiKey, onOther, { method: 'PATCH', headers: { 'upload-offset': String(2 * SEGMENT), 'content-type': 'application/offset+octet-stream' }, body: doc.subarray(2 * SEGMENT) });
        return r.status === 423 ? null : r;
      });
      expect(rest.status).toBe(204);
      const m = await waitSettled(svc, app.apiKey, rest.headers.get('media-id')!);
      expect(m.status).toBe('ready');
      expect(m.checksum.value).toBe(sha256(doc));
    } finally {
      await other.stop();
    }
  });

  it('terminates an upload on DELETE: its sealed bytes go', async () => {
    const doc = textDocument(3 * SEGMENT, 'terminate');
    const url = await createOk(svc, app.apiKey, doc.length + 1, { filename: 't.txt' });
    expect((await patch(svc, app.apiKey, url, 0, doc)).headers.get('upload-offset')).toBe(String(3 * SEGMENT));
    const id = url.split('/').pop()!;
    expect((await storeKeys(svc, `tus/${app.appId}/${id}/`)).length).toBeGreaterThan(0);
    expect((await tusFetch(svc.url, app.apiKey, url, { method: 'DELETE' })).status).toBe(204);
    expect((await head(svc, app.apiKey, url)).status).toBe(404);
    expect(await storeKeys(svc, `tus/${app.appId}/${id}/`)).toEqual([]);
  });

  it('expires a partial upload after UPLOAD_SLOT_TTL_SECONDS and the sweep removes its bytes', async () => {
    const doc = textDocument(2 * SEGMENT, 'expire');
    const url = await createOk(svc, app.apiKey, doc.length + 100, { filename: 'e.txt' });
    expect((await patch(svc, app.apiKey, url, 0, doc)).headers.get('upload-offset')).toBe(String(2 * SEGMENT));
    const id = url.split('/').pop()!;
    expect((await storeKeys(svc, `tus/${app.appId}/${id}/`)).length).toBe(1);
    // Time passes: the upload was created a TTL and a minute ago.
    const ttl = svc.config.UPLOAD_SLOT_TTL_SECONDS;
    await svc.running.rt.pool.query(
      `UPDATE tus_uploads SET created_at = created_at - make_interval(secs => $2), expires_at = expires_at - make_interval(secs => $2) WHERE id = $1`,
      [id, ttl + 60],
    );
    expect((await head(svc, app.apiKey, url)).status).toBe(410);
    await sweepJob(svc.running.rt, { v: 1 }, sweepCtx(svc));
    expect(await storeKeys(svc, `tus/${app.appId}/${id}/`)).toEqual([]);
    expect((await head(svc, app.apiKey, url)).status).toBe(404);
  });

  it('needs an API key with media:write', async () => {
    expect((await create(svc, '', 10, {})).status).toBe(401);
    const readOnly = await svc.newKey(app.appId, 'media:read');
    await expectEnvelope(await create(svc, readOnly, 10, {}), 403, 'FORBIDDEN');
    // tus's own refusals come in the envelope too.
    const noVersion = await fetch(`${svc.url}/v1/uploads/tus`, { method: 'POST', headers: { authorization: `Bearer ${app.apiKey}`, 'upload-length': '10' } });
    await expectEnvelope(noVersion, 412, 'VALIDATION_FAILED');
    expect((await fetch(`${svc.url}/v1/uploads/tus`, { method: 'OPTIONS' })).status).toBe(401);
    const options = await fetch(`${svc.url}/v1/uploads/tus`, { method: 'OPTIONS', headers: { authorization: `Bearer ${readOnly}` } });
    expect(options.status).toBe(204);
    expect(options.headers.get('tus-extension')).toBe('creation,creation-with-upload,termination,expiration');
    // The OpenAPI document describes the tus routes as well as it can (their bodies are not JSON).
    const doc = (await (await fetch(`${svc.url}/docs/json`)).json()) as { paths: Record<string, Record<string, { summary?: string; security?: unknown[] }>> };
    expect(Object.keys(doc.paths['/v1/uploads/tus'] ?? {})).toEqual(expect.arrayContaining(['post', 'options']));
    expect(Object.keys(doc.paths['/v1/uploads/tus/{id}'] ?? {})).toEqual(expect.arrayContaining(['patch', 'head', 'delete', 'options']));
    expect(doc.paths['/v1/uploads/tus']!.post!.security).toEqual(expect.arrayContaining([{ bearerAuth: [] }]));
  });

  it(
    'resumes a 100 MB document cut off at 40 %: re-sends at most one segment, stores the same sha256, and no plaintext is ever on disk',
    async () => {
      const big = await createApp(svc.running.rt, { name: 'big documents', maxBytes: `document=${BIG}` });
      const key = big.apiKey;
      const marker = `MFTUS-PLAINTEXT-${randomBytes(8).toString('hex')}`;
      const doc = textDocument(BIG, marker);
      const digest = createHash('sha256').update(doc).digest('hex');
      const proxy: CutProxy = await startCutProxy(svc.url);

      // The scan: every file under TMPDIR (data dirs, s3rver, temp files), over and over while bytes move.
      // A media job's scratch directory (mediaflow-med_…) exists only once the upload has become a media.
      const hits = new Set<string>();
      let passes = 0;
      let filesSeen = 0;
      let scanning = true;
      const markerBytes = Buffer.from(marker);
      // The scan finds plaintext where there is some: a canary file, then gone.
      const canary = path.join(tmpRoot, 'canary', 'plain.txt');
      await mkdir(path.dirname(canary), { recursive: true });
      await writeFile(canary, doc.subarray(5 * MB, 7 * MB));
      expect((await filesContaining(tmpRoot, markerBytes, () => false)).hits).toEqual([canary]);
      await rm(path.dirname(canary), { recursive: true });
      const scanner = (async () => {
        while (scanning) {
          const r = await filesContaining(tmpRoot, markerBytes, (f) => /[/\\]mediaflow-med_/.test(f));
          r.hits.forEach((h) => hits.add(h));
          filesSeen = Math.max(filesSeen, r.files);
          passes++;
        }
      })();

      try {
        let uploadUrl: string | null = null;
        proxy.cutNextPatchAfter(Math.round(BIG * 0.4));
        const first = runUpload(doc, {
          endpoint: `${proxy.url}/v1/uploads/tus`,
          headers: { authorization: `Bearer ${key}` },
          metadata: { filename: 'big.txt', filetype: 'text/plain', kind: 'document' },
          retryDelays: [],
          onUploadUrlAvailable: () => undefined,
          onAfterResponse: (req: HttpRequest) => {
            uploadUrl ??= req.getURL().includes('/v1/uploads/tus/') ? req.getURL() : null;
          },
        });
        uploadUrl = await first.done.then(
          () => null,
          () => first.upload.url,
        );
        expect(uploadUrl, 'the first attempt must fail at the cut').toBeTruthy();
        const cut = proxy.patches.find((p) => p.cut)!;
        expect(cut.bodyBytes).toBe(Math.round(BIG * 0.4));

        // The server keeps every whole segment it received: the cut request's part is closed and recorded.
        const sealed = Math.floor(cut.bodyBytes / SEGMENT) * SEGMENT;
        await waitFor(async () => {
          const h = await tusFetch(svc.url, key, uploadUrl!.replace(proxy.url, svc.url), { method: 'HEAD' });
          return Number(h.headers.get('upload-offset')) === sealed;
        }, 60_000);

        let mediaId: string | null = null;
        const resumed = runUpload(doc, {
          endpoint: `${proxy.url}/v1/uploads/tus`,
          uploadUrl,
          headers: { authorization: `Bearer ${key}` },
          // 423 while the cut request still holds the lease: tus clients retry it.
          retryDelays: [200, 1000, 2000, 4000, 8000],
          onAfterResponse: (_req: HttpRequest, res: HttpResponse) => {
            mediaId = res.getHeader('Media-Id') ?? mediaId;
          },
        });
        await resumed.done;
        const after = proxy.patches.slice(proxy.patches.indexOf(cut) + 1);
        expect(after.length).toBeGreaterThan(0);
        expect(after[0]!.offset).toBe(sealed);
        // Bytes the server had been sent before the cut and gets again: less than one segment.
        const resent = cut.bodyBytes - after[0]!.offset;
        expect(resent).toBeGreaterThanOrEqual(0);
        expect(resent).toBeLessThan(SEGMENT);
        expect(after.reduce((n, p) => n + p.bodyBytes, 0)).toBe(BIG - sealed);
        expect(mediaId).toMatch(/^med_/);
        scanning = false;
        await scanner;

        expect([...hits], 'files holding the plaintext').toEqual([]);
        expect(passes).toBeGreaterThan(1);
        expect(filesSeen).toBeGreaterThan(0);

        const m = await waitSettled(svc, key, mediaId!, 180_000);
        expect(m.status, JSON.stringify(m.error)).toBe('ready');
        expect(m.source).toBe('tus');
        expect(m.sizeBytes).toBe(BIG);
        expect(m.checksum.value).toBe(digest);
        expect(await storeKeys(svc, `tus/${big.app.id}/`)).toEqual([]);
      } finally {
        scanning = false;
        await scanner;
        await proxy.close();
      }
    },
    600_000,
  );
});
