/**
 * Every way in and out (issue 4) against the running service: URL ingest (local servers stand in
 * for the internet, which this machine cannot reach), base64, upload slots, temporary URLs, the
 * producer module from another process, webhooks and devices. Real Redis, PostgreSQL and fs store.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signFileToken } from '../../src/domain/file-token.js';
import { verifyWebhook } from '../../src/webhooks/sign.js';
import { ROOT } from '../helpers/child.js';
import { minimalPdf, sha256, smallJpeg, smallPng } from '../helpers/media.js';
import { startFileServer, startReceiver } from '../helpers/receiver.js';
import { walk } from '../helpers/files.js';
import { multipart, startService, waitFor, waitSettled, type TestService } from '../helpers/service.js';

let svc: TestService;
let strict: TestService;
let hook: Awaited<ReturnType<typeof startReceiver>>;
let app: { appId: string; apiKey: string; webhookSecret: string };
let png: Buffer;
let files: Awaited<ReturnType<typeof startFileServer>>;

let producerRoot = '';

const postJson = (s: TestService, key: string, url: string, body: unknown) =>
  s.call(url, { method: 'POST', key, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

beforeAll(async () => {
  png = await smallPng(40, 30, 9);
  files = await startFileServer({ '/pic.png': { type: 'image/png', bytes: png } });
  hook = await startReceiver([200]);
  producerRoot = await mkdtemp(path.join(os.tmpdir(), 'mf-producer-'));
  svc = await startService({ env: { ALLOW_PRIVATE_URLS: 'true', WEBHOOK_BACKOFF_MS: '300', FILE_SOURCE_ROOT: producerRoot } });
  strict = await startService();
  app = await svc.newApp({ webhookUrl: hook.url });
});

afterAll(async () => {
  await svc?.stop();
  await strict?.stop();
  await hook?.close();
  await files?.close();
  if (producerRoot) await rm(producerRoot, { recursive: true, force: true });
});

describe('URL ingest', () => {
  it('fetches a URL when private networks are allowed (test setting) and is ready', async () => {
    const res = await postJson(svc, app.apiKey, '/v1/media', { url: `${files.url}/pic.png` });
    expect(res.status).toBe(202);
    const body = (await res.json()) as any;
    expect(body.data.source).toBe('url');
    const m = await waitSettled(svc, app.apiKey, body.data.id);
    expect(m.status).toBe('ready');
    expect(m.kind).toBe('image');
  });

  it('refuses the same URL by default, and the local server sees no connection', async () => {
    const other = await strict.newApp();
    const before = files.connections();
    const targets = [
      `${files.url}/pic.png`,
      'http://127.0.0.1/x',
      'http://2130706433/x',
      'http://0x7f.1/x',
      'http://0177.0.0.1/x',
      'http://[::1]/x',
      'http://[::ffff:127.0.0.1]/x',
      'http://169.254.169.254/latest/meta-data/',
      'http://0.0.0.0/x',
      'http://localhost/x',
    ];
    for (const url of targets) {
      const res = await postJson(strict, other.apiKey, '/v1/media', { url });
      expect(res.status, url).toBe(202);
      const m = await waitSettled(strict, other.apiKey, ((await res.json()) as any).data.id);
      expect(m.status, url).toBe('failed');
      expect(m.error.code, url).toBe('VALIDATION_FAILED');
      expect(m.error.message, url).toMatch(/URL|port/);
    }
    for (const url of ['file:///etc/passwd', 'gopher://127.0.0.1:70/_x', 'ftp://example.com/a', 'http://user:pw@example.com/a', 'not a url']) {
      const res = await postJson(strict, other.apiKey, '/v1/media', { url });
      expect(res.status, url).toBe(400);
      expect(((await res.json()) as any).error.code).toBe('VALIDATION_FAILED');
    }
    expect(files.connections()).toBe(before);
  });
});

describe('base64', () => {
  it('takes base64 of a PNG and refuses a stray *', async () => {
    const res = await postJson(svc, app.apiKey, '/v1/media', { base64: png.toString('base64'), filename: 'p.png', mimeType: 'image/png' });
    expect(res.status).toBe(202);
    const m = await waitSettled(svc, app.apiKey, ((await res.json()) as any).data.id);
    expect(m.status).toBe('ready');
    expect(m.source).toBe('base64');
    const b64 = png.toString('base64');
    const bad = await postJson(svc, app.apiKey, '/v1/media', { base64: `${b64.slice(0, 10)}*${b64.slice(11)}` });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).error.code).toBe('VALIDATION_FAILED');
    const both = await postJson(svc, app.apiKey, '/v1/media', { base64: b64, url: 'https://example.com/a.png' });
    expect(both.status).toBe(400);
  });
});

describe('upload slots', () => {
  async function slot(mimeType: string, byteSize: number) {
    const res = await postJson(svc, app.apiKey, '/v1/media/uploads', { mimeType, byteSize });
    expect(res.status).toBe(201);
    return ((await res.json()) as any).data as { mediaId: string; uploadUrl: string; expiresAt: string; maxByteSize: number };
  }

  it('takes the right bytes once: 202, then 409', async () => {
    const s = await slot('image/png', png.length);
    expect(s.maxByteSize).toBe(png.length);
    expect(new Date(s.expiresAt).getTime() - Date.now()).toBeGreaterThan(29 * 60 * 1000);
    const put = await fetch(s.uploadUrl, { method: 'PUT', body: png, headers: { 'content-type': 'image/png' } });
    expect(put.status).toBe(202);
    expect(((await put.json()) as any).data.id).toBe(s.mediaId);
    const again = await fetch(s.uploadUrl, { method: 'PUT', body: png });
    expect(again.status).toBe(409);
    const m = await waitSettled(svc, app.apiKey, s.mediaId);
    expect(m.status).toBe('ready');
    expect(m.source).toBe('slot');
  });

  it('lets exactly one of two concurrent PUTs win', async () => {
    const s = await slot('image/png', png.length);
    const [a, b] = await Promise.all([fetch(s.uploadUrl, { method: 'PUT', body: png }), fetch(s.uploadUrl, { method: 'PUT', body: png })]);
    expect([a.status, b.status].sort()).toEqual([202, 409]);
  });

  it('answers 410 after expiry, 400/413 for another size, 415 for a PNG into a PDF slot', async () => {
    const s = await slot('image/png', png.length);
    await svc.running.rt.pool.query(`UPDATE upload_slots SET expires_at = now() - interval '1 second' WHERE media_id = $1`, [s.mediaId]);
    expect((await fetch(s.uploadUrl, { method: 'PUT', body: png })).status).toBe(410);

    const s2 = await slot('image/png', png.length);
    const shorter = await fetch(s2.uploadUrl, { method: 'PUT', body: png.subarray(0, png.length - 10) });
    expect(shorter.status).toBe(400);
    const longer = await fetch(s2.uploadUrl, { method: 'PUT', body: Buffer.concat([png, Buffer.alloc(100)]) });
    expect(longer.status).toBe(413);
    // A refused PUT does not burn the slot.
    const retry = await fetch(s2.uploadUrl, { method: 'PUT', body: png });
    expect(retry.status, await retry.clone().text()).toBe(202);

    const pdfSlot = await slot('application/pdf', png.length);
    const wrong = await fetch(pdfSlot.uploadUrl, { method: 'PUT', body: png });
    expect(wrong.status).toBe(415);
    expect(((await wrong.json()) as any).error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    const pdf = minimalPdf();
    const right = await slot('application/pdf', pdf.length);
    expect((await fetch(right.uploadUrl, { method: 'PUT', body: pdf })).status).toBe(202);
    expect((await fetch(`${svc.url}/v1/uploads/${'A'.repeat(43)}`, { method: 'PUT', body: pdf })).status).toBe(404);
    // Images are made to fit 5 MB, so up to 50 MB comes in; past that the slot is refused at once.
    const tooBig = await postJson(svc, app.apiKey, '/v1/media/uploads', { mimeType: 'image/png', byteSize: 50_000_001 });
    expect(tooBig.status).toBe(413);
    const badType = await postJson(svc, app.apiKey, '/v1/media/uploads', { mimeType: 'application/x-msdownload', byteSize: 100 });
    expect(badType.status).toBe(415);
  });
});

describe('temporary URLs', () => {
  it('download without auth, answer 410 after expiry and 404 after deletion', async () => {
    const res = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({}, { bytes: await smallJpeg(), name: 'a.jpg', type: 'image/jpeg' }) });
    const m = await waitSettled(svc, app.apiKey, ((await res.json()) as any).data.id);
    expect(new Date(m.urlExpiresAt).getTime()).toBeGreaterThan(Date.now());
    const ok = await fetch(m.url);
    expect(ok.status).toBe(200);
    expect(sha256(Buffer.from(await ok.arrayBuffer()))).toBe(m.checksum.value);
    const expired = `${svc.url}/v1/files/${signFileToken(svc.running.rt.fileUrlSecret, m.id, new Date(Date.now() - 1000))}`;
    expect((await fetch(expired)).status).toBe(410);
    const forged = m.url.slice(0, -3) + (m.url.endsWith('AAA') ? 'BBB' : 'AAA');
    expect((await fetch(forged)).status).toBe(404);
    expect((await svc.call(`/v1/media/${m.id}`, { method: 'DELETE', key: app.apiKey })).status).toBe(204);
    expect((await fetch(m.url)).status).toBe(404);
  });

  it('warns when media expires before a scheduled send, and extends the expiry', async () => {
    const res = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({ ttlSeconds: '3600' }, { bytes: await smallJpeg(), name: 'a.jpg', type: 'image/jpeg' }) });
    const m = await waitSettled(svc, app.apiKey, ((await res.json()) as any).data.id);
    const later = new Date(Date.now() + 2 * 3600 * 1000).toISOString();
    const warn = (await (await svc.call(`/v1/media/${m.id}?scheduledAt=${encodeURIComponent(later)}`, { key: app.apiKey })).json()) as any;
    expect(warn.data.warnings).toEqual(['EXPIRES_BEFORE_SCHEDULE']);
    const ext = await postJson(svc, app.apiKey, `/v1/media/${m.id}/extend`, { ttlSeconds: 3 * 3600 });
    expect(ext.status).toBe(200);
    const after = (await (await svc.call(`/v1/media/${m.id}?scheduledAt=${encodeURIComponent(later)}`, { key: app.apiKey })).json()) as any;
    expect(after.data.warnings).toEqual([]);
    expect(new Date(after.data.expiresAt).getTime()).toBeGreaterThan(Date.now() + 2.9 * 3600 * 1000);
  });
});

describe('producer module and webhooks', () => {
  it('enqueueMedia() from a separate process → ready, signed webhook whose media_path downloads', async () => {
    const file = path.join(producerRoot, 'photo.jpg');
    await writeFile(file, await smallJpeg(120, 90, 5));
    const script = `
      import { enqueueMedia } from ${JSON.stringify(path.join(ROOT, 'src/queue/producer.ts'))};
      const r = await enqueueMedia({ appId: process.env.APP_ID, kind: 'image', source: { type: 'file', path: process.env.FILE }, correlationId: 'msg-42' });
      process.stdout.write(JSON.stringify(r));`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', REDIS_URL: svc.config.REDIS_URL, QUEUE_PREFIX: svc.config.QUEUE_PREFIX, APP_ID: app.appId, FILE: file },
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const code = await new Promise((r) => child.on('exit', r));
    expect(code, out).toBe(0);
    const { mediaId } = JSON.parse(out) as { mediaId: string };
    const m = await waitSettled(svc, app.apiKey, mediaId);
    expect(m.status).toBe('ready');
    expect(m.correlationId).toBe('msg-42');
    const delivery = await waitFor(async () => hook.received.find((r) => JSON.parse(r.body).payload.media_id === mediaId));
    const sig = delivery.headers['x-mediaflow-signature'] as string;
    expect(verifyWebhook(app.webhookSecret, delivery.body, sig)).toBe(true);
    expect(verifyWebhook('wrong-secret', delivery.body, sig)).toBe(false);
    const event = JSON.parse(delivery.body);
    expect(event.event).toBe('media.ready');
    expect(event.payload.media_path).toBe(m.mediaPath);
    expect(event.payload.checksum).toBe(m.checksum.value);
    const dl = await svc.call(`/media?path=${encodeURIComponent(event.payload.media_path)}`, { key: app.apiKey });
    expect(dl.status).toBe(200);
    expect(sha256(Buffer.from(await dl.arrayBuffer()))).toBe(m.checksum.value);
  });

  it('retries a receiver answering 500 twice, with growing delays, and stops after the 200', async () => {
    const flaky = await startReceiver([500, 500, 200]);
    try {
      const a = await svc.newApp({ webhookUrl: flaky.url });
      const res = await svc.call('/v1/media', { method: 'POST', key: a.apiKey, body: multipart({}, { bytes: await smallJpeg(), name: 'a.jpg', type: 'image/jpeg' }) });
      const id = ((await res.json()) as any).data.id;
      await waitSettled(svc, a.apiKey, id);
      await waitFor(async () => flaky.received.length >= 3, 20_000);
      await new Promise((r) => setTimeout(r, 2000));
      expect(flaky.received).toHaveLength(3);
      const gaps = [flaky.received[1]!.at - flaky.received[0]!.at, flaky.received[2]!.at - flaky.received[1]!.at];
      expect(gaps[1]).toBeGreaterThan(gaps[0]!);
      const { rows } = await svc.running.rt.pool.query(`SELECT status, attempts, last_status_code FROM webhook_deliveries WHERE app_id = $1`, [a.appId]);
      expect(rows).toEqual([{ status: 'delivered', attempts: 3, last_status_code: 200 }]);
    } finally {
      await flaky.close();
    }
  });
});

describe('devices', () => {
  it('owns media paths, and destroying it purges all its media (audited) and leaves other devices alone', async () => {
    const d1 = await postJson(svc, app.apiKey, '/v1/devices', { id: 'phone-1', name: 'Phone 1' });
    expect(d1.status).toBe(201);
    expect((await postJson(svc, app.apiKey, '/v1/devices', { id: 'phone-1' })).status).toBe(409);
    expect((await postJson(svc, app.apiKey, '/v1/devices', { id: 'phone-2' })).status).toBe(201);
    const ids: string[] = [];
    const jpeg = await smallJpeg(16, 16, 3);
    for (let i = 0; i < 50; i++) {
      const res = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({ deviceId: 'phone-1' }, { bytes: jpeg, name: `a${i}.jpg`, type: 'image/jpeg' }) });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as any).data.id);
    }
    const keepRes = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({ deviceId: 'phone-2' }, { bytes: jpeg, name: 'k.jpg', type: 'image/jpeg' }) });
    const keep = ((await keepRes.json()) as any).data.id;
    const settled = [];
    for (const id of ids) settled.push(await waitSettled(svc, app.apiKey, id, 60_000));
    expect(settled.every((m) => m.status === 'ready' && m.mediaPath.startsWith('media/phone-1/'))).toBe(true);
    await waitSettled(svc, app.apiKey, keep);
    expect((await svc.call('/v1/devices/phone-1', { key: app.apiKey })).status).toBe(200);
    const other = await svc.newApp();
    expect((await svc.call('/v1/devices/phone-1', { key: other.apiKey })).status).toBe(404);

    const del = await svc.call('/v1/devices/phone-1', { method: 'DELETE', key: app.apiKey });
    expect(del.status).toBe(204);
    expect((await svc.call(`/v1/media/${ids[0]}`, { key: app.apiKey })).status).toBe(404);
    expect((await svc.call('/v1/devices/phone-1', { key: app.apiKey })).status).toBe(404);
    await waitFor(async () => {
      const { rows } = await svc.running.rt.pool.query(`SELECT count(*)::int AS n FROM media WHERE device_id = 'phone-1' AND status = 'deleted'`);
      return rows[0].n === 50;
    }, 60_000, 250);
    const objects = (await walk(svc.config.DATA_DIR)).filter((f) => ids.some((id) => f.includes(id)));
    expect(objects).toEqual([]);
    const { rows: audit } = await svc.running.rt.pool.query(`SELECT media_id, reason FROM audit_events WHERE media_id = ANY($1)`, [ids]);
    expect(audit).toHaveLength(50);
    expect(new Set(audit.map((a: any) => a.reason))).toEqual(new Set(['device_destroyed']));
    const kept = await svc.call(`/v1/media/${keep}/content`, { key: app.apiKey });
    expect(kept.status).toBe(200);
    expect((await postJson(svc, app.apiKey, '/v1/media', { base64: jpeg.toString('base64'), deviceId: 'phone-1' })).status).toBe(404);
  });
});
