/**
 * The operator's HTTP surface of a running service: the OpenAPI document, /metrics, the queue
 * dashboard, and the per-key limits. Real: Redis, PostgreSQL, the fs store, sharp; each API
 * instance listens on a real port. Extra API instances are built over the same runtime, the way a
 * second API process would share Redis, to show the limits are shared.
 */
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import type { Runtime } from '../../src/runtime.js';
import { noiseJpeg, smallJpeg } from '../helpers/media.js';
import { REDIS_URL } from '../helpers/env.js';
import { multipart, startService, waitFor, waitSettled, type TestService } from '../helpers/service.js';
import { streamingUpload } from '../helpers/service-process.js';

const ADMIN_TOKEN = 'admin-token-for-tests-0123456789';
const METRICS_TOKEN = 'metrics-token-for-tests-0123456789';
let svc: TestService;
let app: { appId: string; apiKey: string };
const extra: FastifyInstance[] = [];

beforeAll(async () => {
  svc = await startService({ env: { ADMIN_TOKEN, METRICS_TOKEN } });
  app = await svc.newApp();
});

afterAll(async () => {
  for (const a of extra) await a.close().catch(() => undefined);
  await svc?.stop();
});

/** Another API instance over the same Redis and database, with some settings changed. */
async function anotherInstance(config: Partial<Runtime['config']>): Promise<string> {
  const rt = svc.running.rt;
  const a = await buildApp({ ...rt, config: { ...rt.config, ...config } });
  extra.push(a);
  return a.listen({ port: 0, host: '127.0.0.1' });
}

const keyPrefixOf = (apiKey: string) => apiKey.split('_').slice(0, 2).join('_');
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

describe('OpenAPI at /docs', () => {
  /** Every endpoint of API.md, with the 4xx it documents (its own table plus auth and rate limits). */
  const ENDPOINTS: Array<{ method: string; path: string; errors: number[]; auth: 'bearer' | 'public' | 'admin' }> = [
    { method: 'post', path: '/v1/media', errors: [400, 401, 403, 404, 409, 413, 415, 429], auth: 'bearer' },
    { method: 'post', path: '/v1/media/uploads', errors: [400, 401, 403, 413, 415, 429], auth: 'bearer' },
    { method: 'put', path: '/v1/uploads/{token}', errors: [400, 404, 409, 410, 413, 415], auth: 'public' },
    { method: 'get', path: '/v1/media', errors: [400, 401, 403, 429], auth: 'bearer' },
    { method: 'get', path: '/v1/media/{id}', errors: [401, 403, 404, 410, 429], auth: 'bearer' },
    { method: 'get', path: '/v1/media/{id}/content', errors: [401, 403, 404, 410, 416, 429], auth: 'bearer' },
    { method: 'post', path: '/v1/media/{id}/extend', errors: [400, 401, 403, 404, 410, 429], auth: 'bearer' },
    { method: 'delete', path: '/v1/media/{id}', errors: [401, 403, 404, 429], auth: 'bearer' },
    { method: 'get', path: '/media', errors: [401, 403, 404, 410, 429], auth: 'bearer' },
    { method: 'get', path: '/v1/files/{token}', errors: [404, 410], auth: 'public' },
    { method: 'post', path: '/v1/devices', errors: [400, 401, 403, 409, 429], auth: 'bearer' },
    { method: 'get', path: '/v1/devices/{id}', errors: [401, 403, 404, 429], auth: 'bearer' },
    { method: 'delete', path: '/v1/devices/{id}', errors: [401, 403, 404, 429], auth: 'bearer' },
    { method: 'post', path: '/v1/folders', errors: [400, 401, 403, 429], auth: 'bearer' },
    { method: 'get', path: '/v1/folders', errors: [400, 401, 403, 429], auth: 'bearer' },
    { method: 'get', path: '/metrics', errors: [401], auth: 'admin' },
    { method: 'get', path: '/healthz', errors: [], auth: 'public' },
    { method: 'get', path: '/readyz', errors: [], auth: 'public' },
  ];
  const CODE_OF: Record<number, string> = {
    400: 'VALIDATION_FAILED', 401: 'UNAUTHORIZED', 403: 'FORBIDDEN', 404: 'NOT_FOUND', 409: 'CONFLICT', 410: 'EXPIRED',
    413: 'FILE_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE', 416: 'VALIDATION_FAILED', 429: 'RATE_LIMITED',
  };
  let doc: any;

  beforeAll(async () => {
    const res = await svc.call('/docs/json');
    expect(res.status).toBe(200);
    doc = await res.json();
  });

  it('is OpenAPI 3 with bearer security', () => {
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({ type: 'http', scheme: 'bearer' });
  });

  it('documents every endpoint of API.md with its method, 4xx responses in the error envelope, and security', () => {
    for (const e of ENDPOINTS) {
      const op = doc.paths[e.path]?.[e.method];
      expect(op, `${e.method.toUpperCase()} ${e.path}`).toBeDefined();
      expect(op.summary, `${e.method} ${e.path}`).toBeTruthy();
      for (const status of e.errors) {
        const r = op.responses[String(status)];
        expect(r, `${e.method.toUpperCase()} ${e.path} → ${status}`).toBeDefined();
        const schema = r.content['application/json'].schema;
        expect(schema.properties.success.enum).toEqual([false]);
        expect(schema.properties.error.required).toEqual(['code', 'message', 'request_id']);
        expect(schema.properties.error.properties.code.enum, `${e.path} ${status}`).toContain(CODE_OF[status]);
      }
      const success = Object.keys(op.responses).filter((s) => s.startsWith('2'));
      expect(success.length, `${e.path} has a success response`).toBeGreaterThan(0);
      if (e.auth === 'bearer') expect(op.security).toEqual([{ bearerAuth: [] }]);
      if (e.auth === 'public') expect(op.security ?? []).toEqual([]);
      if (e.errors.includes(429)) expect(op.responses['429'].headers['retry-after']).toBeDefined();
    }
  });

  it('shows both request bodies of POST /v1/media and the query parameters the handlers parse', () => {
    const post = doc.paths['/v1/media'].post;
    expect(Object.keys(post.requestBody.content).sort()).toEqual(['application/json', 'multipart/form-data']);
    expect(post.requestBody.content['multipart/form-data'].schema.properties.file).toEqual({ type: 'string', format: 'binary' });
    expect(post.requestBody.content['application/json'].schema.properties).toHaveProperty('url');
    const list = doc.paths['/v1/media'].get.parameters.map((p: any) => `${p.in}:${p.name}`);
    for (const q of ['page', 'limit', 'sortBy', 'sortOrder', 'kind', 'status', 'folderId', 'deviceId']) expect(list).toContain(`query:${q}`);
  });

  it('keeps the dashboard out of the public document and serves the UI at /docs', async () => {
    expect(Object.keys(doc.paths).filter((p) => p.startsWith('/admin') || p.startsWith('/docs'))).toEqual([]);
    const ui = await svc.call('/docs');
    expect(ui.status).toBe(200);
    expect(ui.headers.get('content-type')).toMatch(/text\/html/);
    expect((await ui.text()).toLowerCase()).toContain('swagger');
  });

  it('documents, it does not validate: a bad query still gets the handler’s own 400 with field details', async () => {
    const res = await svc.call('/v1/media?limit=abc', { key: app.apiKey });
    expect(res.status).toBe(400);
    const body = (await res.json()) as any;
    expect(body.error.code).toBe('VALIDATION_FAILED');
    expect(body.error.details.fields).toHaveProperty('limit');
  });
});

describe('/metrics', () => {
  const counter = (text: string, series: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line ? Number(line.slice(series.length + 1)) : 0;
  };
  const scrape = async () => {
    const res = await svc.call('/metrics', { headers: bearer(METRICS_TOKEN) });
    expect(res.status).toBe(200);
    return res.text();
  };

  it('needs METRICS_TOKEN when one is set (ADMIN_TOKEN does not open it)', async () => {
    const res = await svc.call('/metrics');
    expect(res.status).toBe(401);
    expect(((await res.json()) as any).error.code).toBe('UNAUTHORIZED');
    expect((await svc.call('/metrics', { headers: bearer('wrong-token-wrong-token') })).status).toBe(401);
    expect((await svc.call('/metrics', { headers: bearer(ADMIN_TOKEN) })).status).toBe(401);
  });

  it('moves mediaflow_jobs_total{queue="media-ingest",outcome="completed"} when an upload becomes ready', async () => {
    const series = 'mediaflow_jobs_total{queue="media-ingest",outcome="completed"}';
    const before = counter(await scrape(), series);
    const up = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({}, { bytes: await smallJpeg(96, 64, 21), name: 'm.jpg', type: 'image/jpeg' }) });
    expect(up.status).toBe(202);
    const m = await waitSettled(svc, app.apiKey, ((await up.json()) as any).data.id);
    expect(m.status).toBe('ready');
    const text = await waitFor(async () => {
      const t = await scrape();
      return counter(t, series) >= before + 1 ? t : null;
    }, 10_000);
    expect(counter(text, series)).toBeGreaterThanOrEqual(before + 1);
    // The other families operators alert on, with their labels.
    expect(counter(text, 'mediaflow_http_requests_total{method="POST",route="/v1/media",status="202"}')).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^mediaflow_processing_seconds_bucket\{le="[^"]+",kind="image",transform="[^"]+"\} \d+/m);
    expect(counter(text, 'mediaflow_bytes_stored_total{kind="image"}')).toBeGreaterThan(0);
    expect(text).toMatch(/^mediaflow_queue_depth\{queue="media-ingest",state="waiting"\} \d+/m);
    expect(text).toContain('# TYPE mediaflow_sweeper_deletions_total counter');
    expect(text).toContain('# TYPE mediaflow_http_request_seconds histogram');
  });

  it('is open, and the dashboard absent (404), on an instance without METRICS_TOKEN and ADMIN_TOKEN', async () => {
    const url = await anotherInstance({ ADMIN_TOKEN: undefined, METRICS_TOKEN: undefined });
    expect((await fetch(`${url}/metrics`)).status).toBe(200);
    const dash = await fetch(`${url}/admin/queues`, { headers: bearer(ADMIN_TOKEN) });
    expect(dash.status).toBe(404);
    expect(((await dash.json()) as any).error.code).toBe('NOT_FOUND');
  });
});

describe('queue dashboard at /admin/queues', () => {
  it('answers 401 without the admin token, or with a wrong one or an API key', async () => {
    for (const headers of [{}, bearer('not-the-admin-token-at-all'), bearer(app.apiKey), { authorization: `Basic ${Buffer.from('admin:nope').toString('base64')}` }]) {
      const res = await svc.call('/admin/queues', { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic /);
      expect(((await res.json()) as any).error.code).toBe('UNAUTHORIZED');
    }
    expect((await svc.call('/admin/queues/api/queues')).status).toBe(401);
  });

  it('shows the media-ingest queue with the token (Bearer for scripts, Basic for browsers)', async () => {
    const page = await svc.call('/admin/queues', { headers: bearer(ADMIN_TOKEN) });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);
    const basic = { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}` };
    const api = await svc.call('/admin/queues/api/queues', { headers: basic });
    expect(api.status).toBe(200);
    const names = ((await api.json()) as any).queues.map((q: any) => q.name);
    expect(names).toContain('media-ingest');
  });
});

describe('per-key limits, shared by every API instance through Redis', () => {
  it('answers 50 rapid requests over a limit of 10 with 40 × 429 RATE_LIMITED and retry-after; another key is unaffected', async () => {
    const [u1, u2] = [await anotherInstance({ RATE_LIMIT_PER_MINUTE: 10 }), await anotherInstance({ RATE_LIMIT_PER_MINUTE: 10 })];
    const a = await svc.newApp();
    const b = await svc.newApp();
    // Alternate between the two instances: one counter per key, wherever the request lands.
    const res = await Promise.all(Array.from({ length: 50 }, (_, i) => fetch(`${i % 2 ? u1 : u2}/v1/media?limit=1`, { headers: bearer(a.apiKey) })));
    const statuses = res.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(40);
    for (const r of res.filter((x) => x.status === 429)) {
      const retryAfter = Number(r.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
      const body = (await r.json()) as any;
      expect(body.success).toBe(false);
      expect(body.error.code).toBe('RATE_LIMITED');
      expect(body.error.request_id).toBe(r.headers.get('x-request-id'));
    }
    for (const r of res.filter((x) => x.status === 200)) await r.arrayBuffer();
    const other = await Promise.all(Array.from({ length: 5 }, (_, i) => fetch(`${i % 2 ? u1 : u2}/v1/media?limit=1`, { headers: bearer(b.apiKey) })));
    expect(other.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    // Unauthenticated traffic is not counted against anyone: health stays up.
    expect((await fetch(`${u1}/healthz`)).status).toBe(200);
  });

  it('bounds uploads in flight per key: the third concurrent upload is 429, another key is not, and slots come back', async () => {
    const url = await anotherInstance({ UPLOAD_CONCURRENCY_PER_KEY: 2 });
    const c = await svc.newApp();
    const d = await svc.newApp();
    const leaseKey = `${svc.config.QUEUE_PREFIX}:ratelimit:uploads:${keyPrefixOf(c.apiKey)}`;
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      const big = [await noiseJpeg(400_000, 31), await noiseJpeg(400_000, 32)];
      const open = big.map((bytes, i) => {
        const u = streamingUpload(`${url}/v1/media`, { key: c.apiKey, filename: `slow${i}.jpg`, type: 'image/jpeg' });
        u.send(bytes.subarray(0, 100_000));
        return { u, bytes };
      });
      await waitFor(async () => (await redis.zcard(leaseKey)) === 2, 10_000, 50);

      const third = await fetch(`${url}/v1/media`, { method: 'POST', headers: bearer(c.apiKey), body: multipart({}, { bytes: await smallJpeg(), name: 'x.jpg', type: 'image/jpeg' }) });
      expect(third.status).toBe(429);
      expect(Number(third.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(((await third.json()) as any).error.code).toBe('RATE_LIMITED');
      const otherKey = await fetch(`${url}/v1/media`, { method: 'POST', headers: bearer(d.apiKey), body: multipart({}, { bytes: await smallJpeg(), name: 'y.jpg', type: 'image/jpeg' }) });
      expect(otherKey.status).toBe(202);

      for (const { u, bytes } of open) {
        u.send(bytes.subarray(100_000));
        u.end();
      }
      const done = await Promise.all(open.map(({ u }) => u.response));
      expect(done.map((r) => r.status)).toEqual([202, 202]);
      await waitFor(async () => (await redis.zcard(leaseKey)) === 0, 5_000, 50);

      // A process that died mid-upload cannot release its lease; an unrenewed lease expires.
      await redis.zadd(leaseKey, 0, 'lease-of-a-dead-process-1', 0, 'lease-of-a-dead-process-2');
      const after = await fetch(`${url}/v1/media`, { method: 'POST', headers: bearer(c.apiKey), body: multipart({}, { bytes: await smallJpeg(), name: 'z.jpg', type: 'image/jpeg' }) });
      expect(after.status).toBe(202);
    } finally {
      redis.disconnect();
    }
  });
});
