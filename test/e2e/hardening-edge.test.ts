/**
 * Issue 9, the API edge: routes private unless marked public, decided on the matched route and
 * before any body is read; the queue dashboard read-only unless ADMIN_WRITE_TOKEN; METRICS_TOKEN;
 * wrong operator tokens rate-limited per address; deadlines on headers and bodies and a bound on
 * sockets per address; X-Forwarded-* believed only from TRUST_PROXY.
 *
 * Real: Redis, PostgreSQL, the fs store, raw TCP sockets against real listening ports. Extra API
 * instances are built over the service's runtime with settings changed, the way a second API
 * process would share Redis and PostgreSQL.
 */
import net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/api/app.js';
import { registeredRoutes } from '../../src/api/plugins/auth.js';
import { startMetricsServer, type MetricsServer } from '../../src/api/plugins/metrics.js';
import { stagingKey } from '../../src/domain/ids.js';
import type { Runtime } from '../../src/runtime.js';
import { REDIS_URL } from '../helpers/env.js';
import { noiseJpeg } from '../helpers/media.js';
import { startService, waitFor, type TestService } from '../helpers/service.js';

const ADMIN_TOKEN = 'read-token-for-the-edge-tests-0123456789';
const ADMIN_WRITE_TOKEN = 'write-token-for-the-edge-tests-0123456789';
const METRICS_TOKEN = 'metrics-token-for-the-edge-tests-0123456789';

let svc: TestService;
let app: { appId: string; apiKey: string };
let redis: Redis;
const extra: FastifyInstance[] = [];

beforeAll(async () => {
  svc = await startService({ env: { ADMIN_TOKEN } });
  app = await svc.newApp();
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  for (const a of extra) await a.close().catch(() => undefined);
  redis?.disconnect();
  await svc?.stop();
});

/** Each test starts with no wrong-token failures counted for 127.0.0.1. */
beforeEach(async () => {
  await forgetAuthFailures();
});

async function forgetAuthFailures(): Promise<void> {
  const keys = await redis.keys(`${svc.config.QUEUE_PREFIX}:ratelimit:auth-failures:*`);
  if (keys.length) await redis.del(...keys);
}

async function anotherInstance(config: Partial<Runtime['config']>): Promise<{ url: string; port: number }> {
  const rt = svc.running.rt;
  const a = await buildApp({ ...rt, config: { ...rt.config, ...config } });
  extra.push(a);
  const url = await a.listen({ port: 0, host: '127.0.0.1' });
  return { url, port: Number(new URL(url).port) };
}

const portOf = (url: string) => Number(new URL(url).port);
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

interface RawOutcome {
  /** Everything the server sent before it closed (or before the response was complete). */
  text: string;
  status: number | null;
  closed: boolean;
}

/**
 * Opens a raw socket, writes `head` (and `body`), and settles once a whole response has arrived
 * (unless `untilClose`) or the server closed the socket; rejects when neither happens within `timeoutMs`.
 */
function rawExchange(port: number, head: string, opts: { body?: Buffer | string; timeoutMs?: number; socket?: net.Socket; untilClose?: boolean } = {}): Promise<RawOutcome> {
  return new Promise((resolve, reject) => {
    const socket = opts.socket ?? net.connect(port, '127.0.0.1');
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no response and no close within ${opts.timeoutMs ?? 5000} ms; got ${JSON.stringify(data.toString('latin1').slice(0, 200))}`));
    }, opts.timeoutMs ?? 5000);
    const done = (closed: boolean) => {
      clearTimeout(timer);
      socket.off('data', onData);
      const text = data.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : null, closed });
    };
    const onData = (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0 || opts.untilClose) return;
      const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
      if (len && data.length >= end + 4 + Number(len[1])) {
        // A complete response; wait a moment for a close that follows it.
        if (/\r\nconnection: *close/i.test(text.slice(0, end))) socket.once('close', () => done(true));
        else done(false);
      }
    };
    socket.on('data', onData);
    socket.once('close', () => done(true));
    socket.on('error', () => undefined);
    const send = () => {
      socket.write(head);
      if (opts.body !== undefined) socket.write(opts.body);
    };
    if (opts.socket) send();
    else socket.once('connect', send);
  });
}

const bodyOf = (raw: RawOutcome): any => JSON.parse(raw.text.slice(raw.text.indexOf('\r\n\r\n') + 4));

describe('routes are private unless marked public, decided on the matched route before the body', () => {
  it('refuses POST /%761/media and the absolute form with 401 before reading a 20 MB JSON body', async () => {
    const port = portOf(svc.url);
    for (const target of ['/%761/media', `http://127.0.0.1:${port}/v1/media`, '/v1/%6Dedia']) {
      // Headers only: the 20 MB body is never sent, so an answer proves nobody waited for it.
      const res = await rawExchange(port, `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 20000000\r\n\r\n`);
      expect(res.status, target).toBe(401);
      const body = bodyOf(res);
      expect(body.error.code).toBe('UNAUTHORIZED');
      // The auth hook's answer, not the handler's own fallback ("authentication required").
      expect(body.error.message).toMatch(/Authorization: Bearer/);
      expect(res.closed, `${target}: the unread body is not drained`).toBe(true);
    }
  });

  it('answers 401 or 404 to other spellings of a private route, never the handler', async () => {
    const port = portOf(svc.url);
    const json = '{"url":"https://example.com/a.png"}';
    for (const target of ['/V1/media', '//v1/media', '/v1%2Fmedia', '/v1/media/', '/%2Fv1/media', '/v1/./media', `http://evil.example/v1/media`]) {
      const res = await rawExchange(port, `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\nConnection: close\r\n\r\n`, { body: json });
      expect([401, 404], `${target} → ${res.status}`).toContain(res.status);
      if (res.status === 401) expect(bodyOf(res).error.message).toMatch(/Authorization: Bearer/);
    }
    // With a key the decoded spelling works like the plain one: same route, same rules.
    const ok = await rawExchange(port, `GET /%761/media?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${app.apiKey}\r\nConnection: close\r\n\r\n`);
    expect(ok.status).toBe(200);
  });

  it('every registered route that is not marked public answers 401 without a credential', async () => {
    const routes = registeredRoutes(svc.running.app!);
    expect(routes.length).toBeGreaterThan(20);
    const publicRoutes = routes.filter((r) => r.access === 'public').map((r) => `${r.method} ${r.url}`);
    // Adding a public route is a decision: it must be made here too.
    expect(publicRoutes.filter((r) => !/ \/docs(\/|$)/.test(r)).sort()).toEqual(
      [
        'GET /healthz', 'HEAD /healthz', 'GET /readyz', 'HEAD /readyz', 'GET /metrics', 'HEAD /metrics', 'GET /v1/files/:token', 'HEAD /v1/files/:token', 'PUT /v1/uploads/:token',
        // The web console: its sign-in, and its static files (no data in them; every call they make is authenticated).
        'POST /api/session', 'GET /console', 'HEAD /console', 'GET /console/*', 'HEAD /console/*',
      ].sort(),
    );
    const privateRoutes = routes.filter((r) => r.access !== 'public');
    expect(privateRoutes.some((r) => r.url === '/v1/media' && r.method === 'POST')).toBe(true);
    expect(privateRoutes.some((r) => r.url.startsWith('/admin/queues'))).toBe(true);
    for (const r of privateRoutes) {
      const path = r.url.replace(/:[A-Za-z]+/g, 'x').replace(/\*/g, 'x');
      const withBody = !['GET', 'HEAD', 'DELETE'].includes(r.method);
      const res = await fetch(`${svc.url}${path}`, { method: r.method, ...(withBody ? { body: '{}', headers: { 'content-type': 'application/json' } } : {}) });
      await res.arrayBuffer();
      if (r.access === 'admin' && res.status === 429) {
        // Wrong operator tokens are counted per address: after ten, the dashboard answers 429.
        await forgetAuthFailures();
        continue;
      }
      expect(res.status, `${r.method} ${r.url} (${r.access})`).toBe(401);
    }
  });
});

describe('queue dashboard: read-only unless ADMIN_WRITE_TOKEN; tokens guessed at are rate-limited', () => {
  const addJob = (url: string, headers: Record<string, string>) =>
    fetch(`${url}/admin/queues/api/queues/media-ingest/add`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'ingest', data: { v: 1, appId: 'app_x', source: { type: 'file', path: '/etc/passwd' } }, options: { delay: 3_600_000 } }),
    });
  const delayedIngest = () => svc.running.rt.queues.get('ingest').getDelayedCount();

  it('refuses to add a job with ADMIN_TOKEN alone (403), and the queue is unchanged', async () => {
    const before = await delayedIngest();
    const res = await addJob(svc.url, bearer(ADMIN_TOKEN));
    expect(res.status).toBe(403);
    expect(((await res.json()) as any).error.code).toBe('FORBIDDEN');
    expect(await delayedIngest()).toBe(before);
    // Reading still works with the read token.
    const list = await fetch(`${svc.url}/admin/queues/api/queues`, { headers: bearer(ADMIN_TOKEN) });
    expect(list.status).toBe(200);
    expect(((await list.json()) as any).queues.map((q: any) => q.readOnlyMode)).not.toContain(false);
  });

  it('with ADMIN_WRITE_TOKEN set, only that token changes queues; either token reads', async () => {
    const { url } = await anotherInstance({ ADMIN_WRITE_TOKEN });
    const refused = await addJob(url, bearer(ADMIN_TOKEN));
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as any).error.message).toMatch(/ADMIN_WRITE_TOKEN/);
    const added = await addJob(url, { authorization: `Basic ${Buffer.from(`ops:${ADMIN_WRITE_TOKEN}`).toString('base64')}` });
    expect(added.status).toBe(200);
    const jobId = ((await added.json()) as any).job.id as string;
    try {
      expect(await svc.running.rt.queues.get('ingest').getJob(jobId)).toBeDefined();
    } finally {
      await (await svc.running.rt.queues.get('ingest').getJob(jobId))?.remove();
    }
    for (const t of [ADMIN_TOKEN, ADMIN_WRITE_TOKEN]) expect((await fetch(`${url}/admin/queues/api/queues`, { headers: bearer(t) })).status).toBe(200);
  });

  it('after 10 wrong tokens from one address, answers 429 with retry-after on every instance, even to the right token', async () => {
    const other = await anotherInstance({});
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${i % 2 ? other.url : svc.url}/admin/queues/api/queues`, { headers: bearer(`wrong-${i}-`.padEnd(40, 'x')) });
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    expect(statuses).toEqual(Array(10).fill(401));
    for (const [url, token] of [[svc.url, 'still-wrong'.padEnd(40, 'y')], [other.url, ADMIN_TOKEN]] as const) {
      const res = await fetch(`${url}/admin/queues/api/queues`, { headers: bearer(token) });
      expect(res.status).toBe(429);
      expect(((await res.json()) as any).error.code).toBe('RATE_LIMITED');
      const retryAfter = Number(res.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(60);
    }
    // Once the window is over the right token works again.
    await forgetAuthFailures();
    expect((await fetch(`${svc.url}/admin/queues/api/queues`, { headers: bearer(ADMIN_TOKEN) })).status).toBe(200);
  });
});

describe('/metrics has its own token', () => {
  it('is open without METRICS_TOKEN even when ADMIN_TOKEN is set', async () => {
    const res = await svc.call('/metrics');
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('mediaflow_');
  });

  it('with METRICS_TOKEN, needs it (ADMIN_TOKEN is not enough), and wrong guesses count toward 429', async () => {
    const { url } = await anotherInstance({ METRICS_TOKEN });
    for (const headers of [{}, bearer(ADMIN_TOKEN)]) {
      const res = await fetch(`${url}/metrics`, { headers });
      expect(res.status).toBe(401);
      expect(((await res.json()) as any).error.code).toBe('UNAUTHORIZED');
    }
    expect((await fetch(`${url}/metrics`, { headers: bearer(METRICS_TOKEN) })).status).toBe(200);
    for (let i = 0; i < 8; i++) await (await fetch(`${url}/metrics`)).arrayBuffer();
    const blocked = await fetch(`${url}/metrics`, { headers: bearer(METRICS_TOKEN) });
    expect(blocked.status).toBe(429);
    expect(((await blocked.json()) as any).error.code).toBe('RATE_LIMITED');
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });

  it('guards the METRICS_PORT server of roles without the API the same way', async () => {
    const rt = svc.running.rt;
    let server: MetricsServer | undefined;
    try {
      server = await startMetricsServer({ ...rt, config: { ...rt.config, METRICS_TOKEN } }, 0, '127.0.0.1');
      expect((await fetch(`${server.url}/metrics`, { headers: bearer(ADMIN_TOKEN) })).status).toBe(401);
      const ok = await fetch(`${server.url}/metrics`, { headers: bearer(METRICS_TOKEN) });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('mediaflow_');
    } finally {
      await server?.close();
    }
  });
});

describe('requests without end', () => {
  let guarded: { url: string; port: number };

  beforeAll(async () => {
    // Short windows so the test is quick; the defaults are 15 s, 1024 B/s over 30 s, 64.
    guarded = await anotherInstance({ HEADERS_TIMEOUT_SECONDS: 1, BODY_MIN_BYTES_PER_SECOND: 1024, BODY_RATE_WINDOW_SECONDS: 1 });
  });

  /** Writes `first`, then `chunk` every `everyMs` until the server closes the socket; rejects after `timeoutMs`. */
  function trickle(port: number, first: string | Buffer, chunk: () => string | Buffer | null, everyMs: number, timeoutMs = 10_000): Promise<RawOutcome> {
    const socket = net.connect(port, '127.0.0.1');
    const timer = setInterval(() => {
      const c = chunk();
      if (c !== null && !socket.destroyed) socket.write(c);
    }, everyMs);
    socket.once('close', () => clearInterval(timer));
    return rawExchange(port, typeof first === 'string' ? first : first.toString('latin1'), { socket, timeoutMs, untilClose: true }).finally(() => clearInterval(timer));
  }

  async function newSlot(url: string, bytes: Buffer): Promise<{ mediaId: string; path: string }> {
    const res = await fetch(`${url}/v1/media/uploads`, {
      method: 'POST',
      headers: { ...bearer(app.apiKey), 'content-type': 'application/json' },
      body: JSON.stringify({ mimeType: 'image/jpeg', byteSize: bytes.length }),
    });
    expect(res.status).toBe(201);
    const data = ((await res.json()) as any).data;
    return { mediaId: data.mediaId, path: new URL(data.uploadUrl).pathname };
  }

  it('closes a connection whose headers trickle in past HEADERS_TIMEOUT_SECONDS', async () => {
    let n = 0;
    const res = await trickle(guarded.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n', () => `X-Slow-${n++}: 1\r\n`, 200);
    expect(res.closed).toBe(true);
    expect(res.status).toBe(408);
  });

  it('cuts a slot PUT whose body trickles below the floor, and keeps nothing: no row, no staging object, slot reusable', async () => {
    const bytes = await noiseJpeg(60_000, 41);
    const slot = await newSlot(guarded.url, bytes);
    let sent = 8192;
    const head = Buffer.concat([
      Buffer.from(`PUT ${slot.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nContent-Length: ${bytes.length}\r\n\r\n`),
      bytes.subarray(0, sent),
    ]);
    // 16 bytes every 250 ms: 64 B/s, far below a floor of 1024 B/s.
    const res = await trickle(guarded.port, head, () => (sent < bytes.length ? bytes.subarray(sent, (sent += 16)) : null), 250);
    expect(res.closed).toBe(true);
    expect(res.status).toBeNull();
    const rt = svc.running.rt;
    await waitFor(async () => !(await rt.store.exists(stagingKey(app.appId, slot.mediaId))), 5_000);
    const row = await rt.pool.query('SELECT 1 FROM media WHERE id = $1', [slot.mediaId]);
    expect(row.rowCount).toBe(0);
    // The cut did not burn the slot: once its clean-up released it, a proper PUT succeeds.
    await waitFor(async () => (await rt.pool.query('SELECT 1 FROM upload_slots WHERE media_id = $1 AND used_at IS NULL', [slot.mediaId])).rowCount === 1, 5_000);
    const retry = await fetch(`${guarded.url}${slot.path}`, { method: 'PUT', headers: { 'content-type': 'image/jpeg' }, body: bytes });
    expect(retry.status).toBe(202);
  });

  it('cuts a multipart POST /v1/media that trickles, keeping no row, no staging object and no upload lease', async () => {
    const owner = await svc.newApp();
    const bytes = await noiseJpeg(60_000, 43);
    const boundary = 'edge-test-boundary-7f3a';
    const partHead = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`;
    const body = Buffer.concat([Buffer.from(partHead), bytes, Buffer.from(`\r\n--${boundary}--\r\n`)]);
    let sent = 8192;
    const head = Buffer.concat([
      Buffer.from(`POST /v1/media HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${owner.apiKey}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${body.length}\r\n\r\n`),
      body.subarray(0, sent),
    ]);
    const res = await trickle(guarded.port, head, () => (sent < body.length ? body.subarray(sent, (sent += 16)) : null), 250);
    expect(res.closed).toBe(true);
    expect(res.status).toBeNull();
    const rt = svc.running.rt;
    const leaseKey = `${svc.config.QUEUE_PREFIX}:ratelimit:uploads:${owner.apiKey.split('_').slice(0, 2).join('_')}`;
    await waitFor(async () => {
      for await (const _ of rt.store.list(`staging/${owner.appId}/`)) return false;
      return (await redis.zcard(leaseKey)) === 0;
    }, 5_000);
    expect((await rt.pool.query('SELECT 1 FROM media WHERE app_id = $1', [owner.appId])).rowCount).toBe(0);
  });

  it('lets a slow but steady upload (about 20 KiB/s, over several windows) complete', async () => {
    const bytes = await noiseJpeg(60_000, 42);
    const slot = await newSlot(guarded.url, bytes);
    let sent = 0;
    const head = `PUT ${slot.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`;
    const res = await trickle(guarded.port, head, () => (sent < bytes.length ? bytes.subarray(sent, (sent += 4096)) : null), 200, 20_000);
    expect(res.status).toBe(202);
    expect(bodyOf(res).data.id).toBe(slot.mediaId);
  });

  it('refuses more than MAX_CONNECTIONS_PER_IP sockets from one address; the others are served', async () => {
    const limited = await anotherInstance({ MAX_CONNECTIONS_PER_IP: 3 });
    const open = await Promise.all(
      Array.from({ length: 3 }, () => new Promise<net.Socket>((resolve) => {
        const s = net.connect(limited.port, '127.0.0.1', () => resolve(s));
        s.on('error', () => undefined);
      })),
    );
    try {
      const fourth = await rawExchange(limited.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      expect(fourth.closed).toBe(true);
      expect(fourth.status).toBeNull();
      const served = await rawExchange(limited.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { socket: open[0] });
      expect(served.status).toBe(200);
      // A socket that closes gives its place back.
      open[1]!.destroy();
      const later = await waitFor(async () => {
        const r = await rawExchange(limited.port, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
        return r.status === 200 ? r : null;
      }, 5_000, 50);
      expect(later.status).toBe(200);
    } finally {
      for (const s of open) s.destroy();
    }
  });
});

describe('X-Forwarded-* is believed only from TRUST_PROXY', () => {
  const slotUrl = async (url: string) => {
    const res = await fetch(`${url}/v1/media/uploads`, {
      method: 'POST',
      headers: { ...bearer(app.apiKey), 'content-type': 'application/json', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' },
      body: JSON.stringify({ mimeType: 'image/jpeg', byteSize: 1000 }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as any).data.uploadUrl as string;
  };

  it('ignores X-Forwarded-Host/-Proto by default: upload URLs stay on the real host', async () => {
    expect(svc.config.TRUST_PROXY).toEqual([]);
    const u = new URL(await slotUrl(svc.url));
    expect(u.origin).toBe(svc.url);
  });

  it('honours them from a listed proxy (TRUST_PROXY=127.0.0.1)', async () => {
    const { url } = await anotherInstance({ TRUST_PROXY: ['127.0.0.1'] });
    expect(new URL(await slotUrl(url)).origin).toBe('https://evil.example');
  });
});
