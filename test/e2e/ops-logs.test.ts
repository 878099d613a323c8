/**
 * What the service logs during a full flow at LOG_LEVEL=debug, read from its own stdout: no API
 * key, webhook secret, admin token, upload-slot or file-URL token, and no run of any upload's or
 * stored file's bytes in any encoding a logger could produce; every request line carries the
 * request id and every media job line the media id.
 * Real: the `mediaflow` processes, Redis, PostgreSQL, the fs store, sharp, a local webhook receiver.
 */
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { REDIS_URL } from '../helpers/env.js';
import { isolatedEnv } from '../helpers/env.js';
import { noiseJpeg, smallPng } from '../helpers/media.js';
import { multipart, waitFor } from '../helpers/service.js';
import { runCli, startServiceProcess } from '../helpers/service-process.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

interface Hook {
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

async function webhookReceiver(): Promise<{ url: string; hooks: Hook[]; close(): Promise<void> }> {
  const hooks: Hook[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      hooks.push({ headers: req.headers, body });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    hooks,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Windows of `bytes` in the forms a logger could write them: raw, hex, base64, a JSON Buffer. */
function fingerprints(bytes: Buffer, label: string): Array<{ label: string; needle: string }> {
  const out: Array<{ label: string; needle: string }> = [];
  const b64 = bytes.toString('base64');
  const hex = bytes.toString('hex');
  for (let i = 0; i + 64 <= bytes.length; i += Math.max(4095, Math.floor(bytes.length / 40))) {
    const run = bytes.subarray(i, i + 64);
    out.push({ label: `${label} hex@${i}`, needle: hex.slice(i * 2, i * 2 + 128) });
    out.push({ label: `${label} latin1@${i}`, needle: run.toString('latin1') });
    out.push({ label: `${label} json-buffer@${i}`, needle: [...run.subarray(0, 24)].join(',') });
    const j = Math.floor(i / 3) * 4; // a base64 window starting on a 3-byte boundary of the file
    out.push({ label: `${label} base64@${i}`, needle: b64.slice(j, j + 88) });
  }
  return out;
}

describe('logs of a full flow at debug level', () => {
  it('carry request ids and media ids, and never a secret, a token or media bytes', async () => {
    const ADMIN_TOKEN = 'admin-token-for-the-logs-test-42';
    const iso = await isolatedEnv({ LOG_LEVEL: 'debug', ALLOW_PRIVATE_URLS: 'true', ADMIN_TOKEN });
    cleanups.push(() => iso.cleanup());
    const receiver = await webhookReceiver();
    cleanups.push(() => receiver.close());

    const created = await runCli(['apps', 'create', '--name', 'logs', '--webhook-url', receiver.url, '--json'], iso.env);
    expect(created.code, created.stderr).toBe(0);
    const resultLine = created.stdout.trim().split('\n').find((l) => l.includes('"apiKey"'))!;
    const { apiKey, webhookSecret } = JSON.parse(resultLine) as { apiKey: string; webhookSecret: string };
    const cliLogs = created.stdout.replace(resultLine, '') + created.stderr;

    const svc = await startServiceProcess(iso.env);
    cleanups.push(async () => svc.proc.kill('SIGKILL'));
    const call = (p: string, init: RequestInit = {}) =>
      fetch(p.startsWith('http') ? p : `${svc.url}${p}`, { ...init, headers: { authorization: `Bearer ${apiKey}`, ...(init.headers as Record<string, string>) } });
    const requestIds: string[] = [];
    const track = async (r: Promise<Response>) => {
      const res = await r;
      requestIds.push(res.headers.get('x-request-id') ?? '');
      return res;
    };
    const settle = (id: string) =>
      waitFor(async () => {
        const m = ((await (await track(call(`/v1/media/${id}`))).json()) as any).data;
        return m.status === 'ready' || m.status === 'failed' ? m : null;
      }, 30_000, 250);

    // 1. multipart upload → ready → downloads three ways
    const photo = await noiseJpeg(400_000, 4242);
    const up = await track(call('/v1/media', { method: 'POST', body: multipart({ name: 'holiday' }, { bytes: photo, name: 'holiday.jpg', type: 'image/jpeg' }) }));
    expect(up.status).toBe(202);
    const m1 = await settle(((await up.json()) as any).data.id);
    expect(m1.status).toBe('ready');
    const stored = Buffer.from(await (await track(call(`/v1/media/${m1.id}/content`))).arrayBuffer());
    expect((await track(call(`/media?path=${encodeURIComponent(m1.mediaPath)}`))).status).toBe(200);
    const fileToken = new URL(m1.url).pathname.split('/').pop()!;
    expect((await track(fetch(m1.url))).status).toBe(200);

    // 2. base64 JSON upload
    const png = await smallPng(96, 96, 77);
    const b64 = await track(call('/v1/media', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ base64: png.toString('base64'), filename: 'p.png', mimeType: 'image/png' }) }));
    expect(b64.status).toBe(202);
    const m2 = await settle(((await b64.json()) as any).data.id);

    // 3. upload slot: create, then PUT the bytes to its single-use URL
    const slotBytes = await noiseJpeg(120_000, 4343);
    const slot = await track(call('/v1/media/uploads', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mimeType: 'image/jpeg', byteSize: slotBytes.length }) }));
    expect(slot.status).toBe(201);
    const { uploadUrl, mediaId: m3id } = ((await slot.json()) as any).data;
    const slotToken = new URL(uploadUrl).pathname.split('/').pop()!;
    const put = await track(fetch(uploadUrl, { method: 'PUT', headers: { 'content-type': 'image/jpeg' }, body: slotBytes }));
    expect(put.status).toBe(202);
    await settle(m3id);

    // 4. refusals, devices, delete, the admin surfaces
    expect((await track(call('/v1/media/med_nope'))).status).toBe(404);
    expect((await track(fetch(`${svc.url}/v1/media`, { headers: { authorization: 'Bearer mf_notakey_atall' } }))).status).toBe(401);
    expect((await track(call('/v1/devices', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'phone-1' }) }))).status).toBe(201);
    expect((await track(call('/v1/devices/phone-1', { method: 'DELETE' }))).status).toBe(204);
    expect((await track(call(`/v1/media/${m2.id}`, { method: 'DELETE' }))).status).toBe(204);
    expect((await track(fetch(`${svc.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }))).status).toBe(200);
    expect((await track(fetch(`${svc.url}/admin/queues/api/queues`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }))).status).toBe(200);

    // Webhooks arrive signed with the secret (so the secret was in use while logging ran).
    const hooks = await waitFor(async () => (receiver.hooks.filter((h) => JSON.parse(h.body).event === 'media.ready').length >= 3 && receiver.hooks.some((h) => JSON.parse(h.body).event === 'media.deleted') ? receiver.hooks : null), 30_000, 200);
    for (const h of hooks) {
      const [t, v1] = String(h.headers['x-mediaflow-signature']).split(',').map((p) => p.split('=')[1]);
      expect(createHmac('sha256', webhookSecret).update(`${t}.${h.body}`).digest('hex')).toBe(v1);
    }

    const stop = await svc.stop('SIGTERM');
    expect(stop.code).toBe(0);

    const serviceLog = svc.output();
    const lines = svc.logLines();
    expect(lines.length).toBeGreaterThan(50);
    expect(lines.some((l) => l.level === 20)).toBe(true); // debug lines were on

    // --- nothing secret, nothing of the media --------------------------------------------------
    const everything = serviceLog + cliLogs;
    const secrets: Array<[string, string]> = [
      ['API key', apiKey],
      ['API key secret part', apiKey.split('_').slice(2).join('_')],
      ['webhook secret', webhookSecret],
      ['webhook secret body', webhookSecret.replace(/^whsec_/, '')],
      ['admin token', ADMIN_TOKEN],
      ['file URL token', fileToken],
      ['upload slot token', slotToken],
    ];
    for (const [label, s] of secrets) {
      expect(s.length, label).toBeGreaterThanOrEqual(16);
      expect(everything.includes(s), `${label} appears in the logs`).toBe(false);
    }
    for (const { label, needle } of [
      ...fingerprints(photo, 'upload'),
      ...fingerprints(stored, 'stored'),
      ...fingerprints(png, 'base64 upload'),
      ...fingerprints(slotBytes, 'slot upload'),
    ]) {
      expect(everything.includes(needle), `${label} appears in the logs`).toBe(false);
    }

    // --- request ids on every request line, media ids on every job line --------------------------
    const requestLines = lines.filter((l) => l.req || l.res || l.reqId || /^request (completed|refused|failed)|^incoming request/.test(l.msg ?? ''));
    expect(requestLines.length).toBeGreaterThan(requestIds.length);
    for (const l of requestLines) expect(l.reqId, JSON.stringify(l)).toBeTruthy();
    const loggedIds = new Set(requestLines.map((l) => l.reqId));
    for (const id of requestIds) expect(loggedIds.has(id), `request ${id} has log lines`).toBe(true);
    // The API's own lines (role api) outside a request are only start-up and shutdown.
    const apiOutside = lines.filter((l) => l.role === 'api' && !l.reqId).map((l) => l.msg);
    for (const msg of apiOutside) expect(msg).toMatch(/listening|closing|close|shut|stopp/i);

    const jobLines = lines.filter((l) => l.queue === 'media-ingest');
    expect(jobLines.length).toBeGreaterThanOrEqual(3);
    for (const l of jobLines) expect(l.mediaId, JSON.stringify(l)).toMatch(/^med_/);
    for (const msg of ['normalized', 'media ready']) {
      const withMsg = lines.filter((l) => l.msg === msg);
      expect(withMsg.length, msg).toBeGreaterThanOrEqual(3);
      for (const l of withMsg) expect(l.mediaId).toMatch(/^med_/);
    }
  });

  it('warns at start, loudly, when Redis could lose or evict queued jobs', async () => {
    const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    const [policy, aof, save] = await Promise.all([r.config('GET', 'maxmemory-policy'), r.config('GET', 'appendonly'), r.config('GET', 'save')]).finally(() => r.disconnect());
    const persistenceOff = (aof as string[])[1] !== 'yes' && !(save as string[])[1];
    const evicts = (policy as string[])[1] !== 'noeviction';
    const iso = await isolatedEnv({ LOG_LEVEL: 'warn' });
    cleanups.push(() => iso.cleanup());
    const svc = await startServiceProcess(iso.env, { role: 'api' });
    await svc.stop('SIGTERM');
    const warnings = svc.logLines().filter((l) => l.level === 40).map((l) => String(l.msg));
    expect(warnings.some((m) => /persistence is off/.test(m))).toBe(persistenceOff);
    expect(warnings.some((m) => /maxmemory-policy is not noeviction/.test(m))).toBe(evicts);
  });
});
