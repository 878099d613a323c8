/**
 * Scheduled sends (issue 15) on the running service: references that warn when a media would be
 * gone before its send, `extend` up to the retention cap, a delete refused while a send needs the
 * media (and forced, with the refs on `media.deleted`), `media.expiring` sent exactly once with two
 * sweeper processes running every second, a destroyed device's purge listing refs, the list
 * filters, the CLI, a producer's job carrying references, and the bad inputs of the issue.
 * Real: the service in this process (API, worker, sweeper), a second `mediaflow start --role
 * sweeper` process, Redis, PostgreSQL, the fs store, sharp, a webhook receiver on 127.0.0.1.
 * Seeded through SQL: 999 references for the over-1,000 check (the 1,000th and 1,001st go through HTTP).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueMedia } from '../../src/queue/producer.js';
import { verifyWebhook } from '../../src/webhooks/sign.js';
import { brokenJpeg, smallJpeg } from '../helpers/media.js';
import { startReceiver } from '../helpers/receiver.js';
import { freePort, runCli, startServiceProcess, type ServiceProcess } from '../helpers/service-process.js';
import { multipart, startService, waitFor, waitSettled, type TestService } from '../helpers/service.js';

const CAP = 3600;
const GRACE = 300;
const NOTICE = 8;

let svc: TestService;
let sweeper2: ServiceProcess | undefined;
let hooks: Awaited<ReturnType<typeof startReceiver>>;
let app: { appId: string; apiKey: string; webhookSecret: string };
let other: { appId: string; apiKey: string };
let tmp: string;

beforeAll(async () => {
  hooks = await startReceiver();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'mf-refs-'));
  svc = await startService({
    env: {
      SWEEP_CRON: '* * * * * *',
      MAX_RETENTION_SECONDS: String(CAP),
      DEFAULT_TTL_SECONDS: '600',
      REFERENCE_GRACE_SECONDS: String(GRACE),
      EXPIRY_NOTICE_SECONDS: String(NOTICE),
      ALLOW_PRIVATE_URLS: 'true',
      WEBHOOK_BACKOFF_MS: '200',
      FILE_SOURCE_ROOT: tmp,
    },
  });
  app = await svc.newApp({ webhookUrl: hooks.url });
  other = await svc.newApp();
});

afterAll(async () => {
  await sweeper2?.stop('SIGTERM').catch(() => sweeper2?.proc.kill('SIGKILL'));
  await svc?.stop();
  await hooks?.close();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

const iso = (ms: number) => new Date(ms).toISOString();

async function json(res: Response): Promise<any> {
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

async function upload(opts: { ttlSeconds?: number; deviceId?: string; bytes?: Buffer } = {}, key = app.apiKey): Promise<Record<string, any>> {
  const fields: Record<string, string> = {};
  if (opts.ttlSeconds) fields.ttlSeconds = String(opts.ttlSeconds);
  if (opts.deviceId) fields.deviceId = opts.deviceId;
  const res = await svc.call('/v1/media', { method: 'POST', key, body: multipart(fields, { name: 'visuel.jpg', type: 'image/jpeg', bytes: opts.bytes ?? (await smallJpeg()) }) });
  expect(res.status, await res.clone().text()).toBe(202);
  const body = await json(res);
  return waitSettled(svc, key, body.data.id);
}

function addRef(id: string, body: Record<string, unknown>, key = app.apiKey): Promise<Response> {
  return svc.call(`/v1/media/${id}/references`, { method: 'POST', key, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

/** Webhook events received so far for one media, signature checked. */
function events(mediaId: string, type?: string): Array<Record<string, any>> {
  return hooks.received.flatMap((r) => {
    const body = JSON.parse(r.body) as Record<string, any>;
    if (body.payload?.media_id !== mediaId || (type && body.event !== type)) return [];
    expect(verifyWebhook(app.webhookSecret, r.body, String(r.headers['x-mediaflow-signature']))).toBe(true);
    return [body];
  });
}

describe('references on a media', () => {
  it('warn when the send is at or after expiry; extend moves expiresAt, never past the cap', async () => {
    const m = await upload();
    const expiresAt = Date.parse(m.expiresAt);
    expect(m.references).toEqual({ count: 0, nextSendAt: null });

    // The send is after the media's expiry: warned, nothing moved.
    const sendAt = iso(expiresAt + 300_000);
    let res = await addRef(m.id, { ref: 'campaign-42', sendAt });
    expect(res.status).toBe(201);
    let body = (await json(res)).data;
    expect(body.reference).toMatchObject({ ref: 'campaign-42', sendAt });
    const firstCreatedAt = body.reference.createdAt;
    expect(body.warnings).toEqual(['EXPIRES_BEFORE_SCHEDULE']);
    expect(body.media.expiresAt).toBe(m.expiresAt);
    expect(body.media.references).toEqual({ count: 1, nextSendAt: sendAt });

    const scheduled = await json(await svc.call(`/v1/media/${m.id}?scheduledAt=${encodeURIComponent(sendAt)}`, { key: app.apiKey }));
    expect(scheduled.data.warnings).toEqual(['EXPIRES_BEFORE_SCHEDULE']);
    const inTime = await json(await svc.call(`/v1/media/${m.id}?scheduledAt=${encodeURIComponent(iso(expiresAt - 1000))}`, { key: app.apiKey }));
    expect(inTime.data.warnings).toEqual([]);

    // The same ref again with extend: sendAt + grace, the warning gone, still one reference.
    res = await addRef(m.id, { ref: 'campaign-42', sendAt, extend: true });
    expect(res.status).toBe(201);
    body = (await json(res)).data;
    expect(body.warnings).toEqual([]);
    expect(body.media.expiresAt).toBe(iso(Date.parse(sendAt) + GRACE * 1000));
    expect(body.media.references.count).toBe(1);
    expect(body.reference.createdAt).toBe(firstCreatedAt);
    expect(body.keptUntil).toBeUndefined();

    // A send whose grace would run past the retention cap: kept until the cap, and told so.
    const cap = Date.parse(m.createdAt) + CAP * 1000;
    const late = iso(Date.now() + (CAP - 120) * 1000);
    res = await addRef(m.id, { ref: 'campaign-43', sendAt: late, extend: true });
    expect(res.status).toBe(201);
    body = (await json(res)).data;
    expect(body.warnings).toEqual(['RETENTION_CAP_REACHED']);
    expect(body.media.expiresAt).toBe(iso(cap));
    expect(body.keptUntil).toBe(iso(cap));
    expect(body.media.references).toEqual({ count: 2, nextSendAt: sendAt });

    // Extending never shortens: an earlier send with extend leaves the cap-held expiry alone.
    res = await addRef(m.id, { ref: 'campaign-44', sendAt: iso(Date.now() + 60_000), extend: true });
    body = (await json(res)).data;
    expect(body.media.expiresAt).toBe(iso(cap));
    expect(body.warnings).toEqual([]);
    expect((await svc.call(`/v1/media/${m.id}/references/campaign-44`, { method: 'DELETE', key: app.apiKey })).status).toBe(204);

    const list = await json(await svc.call(`/v1/media/${m.id}/references`, { key: app.apiKey }));
    expect(list.data.map((r: any) => [r.ref, r.sendAt])).toEqual([['campaign-42', sendAt], ['campaign-43', late]]);
    expect(list.data[0].createdAt).toBe(firstCreatedAt);
  });

  it('filters the list by referenced and expiresBefore, with the references figures on each item', async () => {
    const referenced = await upload({ ttlSeconds: 500 });
    const plain = await upload({ ttlSeconds: 500 });
    const sendAt = iso(Date.now() + 200_000);
    expect((await addRef(referenced.id, { ref: 'list-1', sendAt })).status).toBe(201);

    const page = async (q: string) => (await json(await svc.call(`/v1/media?limit=1000&${q}`, { key: app.apiKey }))).data as Array<Record<string, any>>;
    const yes = await page('referenced=true');
    expect(yes.map((x) => x.id)).toContain(referenced.id);
    expect(yes.map((x) => x.id)).not.toContain(plain.id);
    expect(yes.find((x) => x.id === referenced.id)!.references).toEqual({ count: 1, nextSendAt: sendAt });
    const no = await page('referenced=false');
    expect(no.map((x) => x.id)).toContain(plain.id);
    expect(no.map((x) => x.id)).not.toContain(referenced.id);

    const before = encodeURIComponent(iso(Date.parse(referenced.expiresAt) + 1000));
    const soon = await page(`referenced=true&expiresBefore=${before}`);
    expect(soon.map((x) => x.id)).toContain(referenced.id);
    const earlier = await page(`expiresBefore=${encodeURIComponent(iso(Date.now() + 100_000))}`);
    expect(earlier.map((x) => x.id)).not.toContain(referenced.id);

    const bad = await json(await svc.call('/v1/media?referenced=maybe&expiresBefore=soon', { key: app.apiKey }));
    expect(bad.error.code).toBe('VALIDATION_FAILED');
    expect(Object.keys(bad.error.details.fields).sort()).toEqual(['expiresBefore', 'referenced']);

    // The CLI: referenced media gone before a time, the unreferenced one left out.
    const cli = await runCli(['media', 'expiring', '--before', iso(Date.parse(referenced.expiresAt) + 1000), '--app', app.appId, '--json'], svc.env);
    expect(cli.code, cli.stderr).toBe(0);
    const out = JSON.parse(cli.stdout);
    const ids = out.items.map((x: any) => x.id);
    expect(ids).toContain(referenced.id);
    expect(ids).not.toContain(plain.id);
    expect(out.items.find((x: any) => x.id === referenced.id)).toMatchObject({ expiresAt: referenced.expiresAt, refs: [{ ref: 'list-1', sendAt }] });
    const bogus = await runCli(['media', 'expiring', '--before', 'tomorrow', '--json'], svc.env);
    expect(bogus.code).not.toBe(0);
  });
});

describe('deleting a media a send needs', () => {
  it('is refused with 409 MEDIA_IN_USE and the refs; ?force=true deletes and media.deleted lists them', async () => {
    const m = await upload();
    const a = iso(Date.now() + 120_000);
    const b = iso(Date.now() + 240_000);
    expect((await addRef(m.id, { ref: 'order:7.a', sendAt: b })).status).toBe(201);
    expect((await addRef(m.id, { ref: 'campaign-1', sendAt: a })).status).toBe(201);

    const refused = await svc.call(`/v1/media/${m.id}`, { method: 'DELETE', key: app.apiKey });
    expect(refused.status).toBe(409);
    const err = (await json(refused)).error;
    expect(err.code).toBe('MEDIA_IN_USE');
    expect(err.details.refs).toEqual(['campaign-1', 'order:7.a']);
    expect(err.details.references).toEqual([{ ref: 'campaign-1', sendAt: a }, { ref: 'order:7.a', sendAt: b }]);
    expect((await svc.call(`/v1/media/${m.id}`, { key: app.apiKey })).status).toBe(200);

    // A send that happened goes; its ref is no longer in the way or in the event.
    expect((await svc.call(`/v1/media/${m.id}/references/order:7.a`, { method: 'DELETE', key: app.apiKey })).status).toBe(204);
    expect((await svc.call(`/v1/media/${m.id}/references/order:7.a`, { method: 'DELETE', key: app.apiKey })).status).toBe(404);

    expect((await svc.call(`/v1/media/${m.id}?force=false`, { method: 'DELETE', key: app.apiKey })).status).toBe(409);
    expect((await svc.call(`/v1/media/${m.id}?force=true`, { method: 'DELETE', key: app.apiKey })).status).toBe(204);
    expect((await svc.call(`/v1/media/${m.id}`, { key: app.apiKey })).status).toBe(404);
    const deleted = await waitFor(async () => events(m.id, 'media.deleted')[0]);
    expect(deleted.payload.reason).toBe('deleted');
    expect(deleted.payload.refs).toEqual(['campaign-1']);
    expect(deleted.payload.references).toEqual([{ ref: 'campaign-1', send_at: a }]);
  });

  it('goes without force once no live reference is left, and its media.deleted has no refs', async () => {
    const m = await upload();
    expect((await addRef(m.id, { ref: 'gone-soon', sendAt: iso(Date.now() + 60_000) })).status).toBe(201);
    expect((await svc.call(`/v1/media/${m.id}/references/gone-soon`, { method: 'DELETE', key: app.apiKey })).status).toBe(204);
    expect((await svc.call(`/v1/media/${m.id}`, { method: 'DELETE', key: app.apiKey })).status).toBe(204);
    const deleted = await waitFor(async () => events(m.id, 'media.deleted')[0]);
    expect(deleted.payload).not.toHaveProperty('refs');
    expect(deleted.payload).not.toHaveProperty('references');
  });

  it('a destroyed device still purges its media at once, and media.deleted lists the refs', async () => {
    const dev = await svc.call('/v1/devices', { method: 'POST', key: app.apiKey, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 'phone-refs' }) });
    expect(dev.status).toBe(201);
    const m = await upload({ deviceId: 'phone-refs' });
    const sendAt = iso(Date.now() + 90_000);
    expect((await addRef(m.id, { ref: 'campaign-device', sendAt })).status).toBe(201);
    expect((await svc.call('/v1/devices/phone-refs', { method: 'DELETE', key: app.apiKey })).status).toBe(204);
    expect((await svc.call(`/v1/media/${m.id}`, { key: app.apiKey })).status).toBe(404);
    const deleted = await waitFor(async () => events(m.id, 'media.deleted')[0]);
    expect(deleted.payload.reason).toBe('device_destroyed');
    expect(deleted.payload.refs).toEqual(['campaign-device']);
    expect(deleted.payload.references).toEqual([{ ref: 'campaign-device', send_at: sendAt }]);
  });
});

describe('media.expiring', () => {
  it('is sent exactly once by two sweeper processes, before expiry, and expiry still deletes the media', async () => {
    sweeper2 = await startServiceProcess({ ...svc.env, LOG_LEVEL: 'warn', METRICS_PORT: String(await freePort()) }, { role: 'sweeper' });
    const ttl = NOTICE + 8;
    const needed = await upload({ ttlSeconds: ttl });
    const early = await upload({ ttlSeconds: ttl });
    const expiresAt = Date.parse(needed.expiresAt);
    const late = iso(expiresAt + 60_000);
    expect((await addRef(needed.id, { ref: 'campaign-late', sendAt: late })).status).toBe(201);
    // A send before the expiry is served: no notice for it.
    const fine = iso(Date.parse(early.expiresAt) - 2000);
    expect((await addRef(early.id, { ref: 'campaign-early', sendAt: fine })).status).toBe(201);

    const notice = await waitFor(async () => events(needed.id, 'media.expiring')[0], 60_000, 200);
    expect(notice.payload).toMatchObject({ media_id: needed.id, media_path: needed.mediaPath, kind: 'image', refs: ['campaign-late'], references: [{ ref: 'campaign-late', send_at: late }] });
    expect(Date.parse(notice.createdAt)).toBeLessThan(expiresAt);

    // The reference keeps nothing: at expiry the sweep deletes the media and says which sends it breaks.
    const deleted = await waitFor(async () => events(needed.id, 'media.deleted')[0], 60_000, 200);
    expect(deleted.payload.reason).toBe('expired');
    expect(deleted.payload.refs).toEqual(['campaign-late']);
    const earlyDeleted = await waitFor(async () => events(early.id, 'media.deleted')[0], 60_000, 200);
    expect(earlyDeleted.payload.refs).toEqual(['campaign-early']);

    // Several more sweeps of both processes: still one notice, and none for the served send.
    const t0 = Date.now();
    await waitFor(async () => (await lastSweepFinishedAt()) > t0 + 3000, 30_000, 250);
    expect(events(needed.id, 'media.expiring')).toHaveLength(1);
    expect(events(early.id, 'media.expiring')).toHaveLength(0);
    const rows = await svc.running.rt.pool.query(`SELECT count(*)::int AS n FROM webhook_deliveries WHERE media_id = $1 AND event = 'media.expiring'`, [needed.id]);
    expect(rows.rows[0].n).toBe(1);
  });
});

/** When the latest scheduled sweep finished, in either process (they share the queue). */
async function lastSweepFinishedAt(): Promise<number> {
  const jobs = await svc.running.rt.queues.get('retention-sweep').getJobs(['completed'], 0, 20);
  return Math.max(0, ...jobs.map((j) => j.finishedOn ?? 0));
}

describe('a producer job carrying references', () => {
  it('creates the media with its references; v1 jobs without them stay valid', async () => {
    const file = path.join(tmp, 'campaign.jpg');
    await writeFile(file, await smallJpeg());
    const sendAt = iso(Date.now() + 100_000);
    const { mediaId } = await enqueueMedia(
      { appId: app.appId, kind: 'image', source: { type: 'file', path: file }, references: [{ ref: 'queued-campaign', sendAt }] },
      { redisUrl: svc.config.REDIS_URL, prefix: svc.config.QUEUE_PREFIX },
    );
    const m = await waitSettled(svc, app.apiKey, mediaId);
    expect(m.status).toBe('ready');
    expect(m.references).toEqual({ count: 1, nextSendAt: sendAt });
    const plain = await enqueueMedia({ appId: app.appId, kind: 'image', source: { type: 'file', path: file } }, { redisUrl: svc.config.REDIS_URL, prefix: svc.config.QUEUE_PREFIX });
    expect((await waitSettled(svc, app.apiKey, plain.mediaId)).references).toEqual({ count: 0, nextSendAt: null });
    await expect(
      enqueueMedia({ appId: app.appId, source: { type: 'file', path: file }, references: [{ ref: 'bad ref', sendAt }] }, { redisUrl: svc.config.REDIS_URL, prefix: svc.config.QUEUE_PREFIX }),
    ).rejects.toThrow();
  });
});

describe('the OpenAPI document', () => {
  it('documents the reference routes, the delete guard and the media object field', async () => {
    const doc = await json(await svc.call('/docs/json'));
    const refs = doc.paths['/v1/media/{id}/references'];
    expect(refs.post.responses['201']).toBeDefined();
    expect(Object.keys(refs.post.responses)).toEqual(expect.arrayContaining(['400', '404', '409', '410']));
    expect(refs.get.responses['200']).toBeDefined();
    expect(doc.paths['/v1/media/{id}/references/{ref}'].delete.responses['204']).toBeDefined();
    const del = doc.paths['/v1/media/{id}'].delete;
    expect(del.responses['409'].description).toMatch(/MEDIA_IN_USE/);
    expect(del.parameters.map((p: any) => p.name)).toContain('force');
    expect(doc.paths['/v1/media'].get.parameters.map((p: any) => p.name)).toEqual(expect.arrayContaining(['referenced', 'expiresBefore']));
    expect(JSON.stringify(doc.paths['/v1/media/{id}'].get.responses['200'])).toContain('nextSendAt');
  });
});

describe('bad input', () => {
  it('answers 404 for unknown media and another app’s, 403 without media:write', async () => {
    const m = await upload();
    const sendAt = iso(Date.now() + 60_000);
    for (const [id, key] of [['med_doesnotexist', app.apiKey], [m.id, other.apiKey]] as const) {
      const res = await addRef(id, { ref: 'x', sendAt }, key);
      expect(res.status).toBe(404);
      expect((await json(res)).error.code).toBe('NOT_FOUND');
      expect((await svc.call(`/v1/media/${id}/references`, { key })).status).toBe(404);
    }
    expect((await svc.call(`/v1/media/${m.id}/references/x`, { method: 'DELETE', key: other.apiKey })).status).toBe(404);
    const reader = await svc.newKey(app.appId, 'media:read');
    expect((await addRef(m.id, { ref: 'x', sendAt }, reader)).status).toBe(403);
    expect((await json(await svc.call(`/v1/media/${m.id}/references`, { key: app.apiKey }))).data).toEqual([]);
  });

  it('answers 400 VALIDATION_FAILED naming the field, and keeps nothing', async () => {
    const m = await upload();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ ref: 'past', sendAt: iso(Date.now() - 60_000) }, 'sendAt'],
      [{ ref: 'malformed', sendAt: 'next tuesday' }, 'sendAt'],
      [{ ref: 'no-offset', sendAt: '2026-12-24T09:00:00' }, 'sendAt'],
      [{ ref: 'too-far', sendAt: iso(Date.now() + (CAP + 60) * 1000) }, 'sendAt'],
      [{ sendAt: iso(Date.now() + 60_000) }, 'ref'],
      [{ ref: 'has space', sendAt: iso(Date.now() + 60_000) }, 'ref'],
      [{ ref: 'x'.repeat(129), sendAt: iso(Date.now() + 60_000) }, 'ref'],
      [{ ref: '', sendAt: iso(Date.now() + 60_000) }, 'ref'],
      [{ ref: 'ok', sendAt: iso(Date.now() + 60_000), extend: 'yes' }, 'extend'],
    ];
    for (const [body, field] of cases) {
      const res = await addRef(m.id, body);
      const err = (await json(res)).error;
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(err.code).toBe('VALIDATION_FAILED');
      expect(Object.keys(err.details.fields), JSON.stringify(body)).toContain(field);
    }
    expect((await svc.call(`/v1/media/${m.id}/references/has%20space`, { method: 'DELETE', key: app.apiKey })).status).toBe(400);
    const after = await json(await svc.call(`/v1/media/${m.id}`, { key: app.apiKey }));
    expect(after.data.references).toEqual({ count: 0, nextSendAt: null });
    expect(after.data.expiresAt).toBe(m.expiresAt);
  });

  it('answers 409 on a failed or deleted media', async () => {
    const failed = await upload({ bytes: brokenJpeg() });
    expect(failed.status).toBe('failed');
    const sendAt = iso(Date.now() + 60_000);
    let res = await addRef(failed.id, { ref: 'x', sendAt });
    expect(res.status).toBe(409);
    expect((await json(res)).error.code).toBe('CONFLICT');

    const gone = await upload();
    expect((await svc.call(`/v1/media/${gone.id}`, { method: 'DELETE', key: app.apiKey })).status).toBe(204);
    res = await addRef(gone.id, { ref: 'x', sendAt });
    expect(res.status).toBe(409);
    expect((await json(res)).error.code).toBe('CONFLICT');
  });

  it('answers 409 past 1,000 live references on one media; a repeat still updates', async () => {
    const m = await upload();
    const base = Date.now() + 600_000;
    await svc.running.rt.pool.query(
      `INSERT INTO media_references (media_id, ref, send_at, live_until)
       SELECT $1, 'seed-' || g, to_timestamp($2 / 1000.0), to_timestamp($2 / 1000.0) + make_interval(secs => $3) FROM generate_series(1, 999) g`,
      [m.id, base, GRACE],
    );
    expect((await addRef(m.id, { ref: 'the-1000th', sendAt: iso(base) })).status).toBe(201);
    const over = await addRef(m.id, { ref: 'the-1001st', sendAt: iso(base) });
    expect(over.status).toBe(409);
    expect((await json(over)).error.code).toBe('CONFLICT');
    const repeat = await addRef(m.id, { ref: 'seed-5', sendAt: iso(base + 1000) });
    expect(repeat.status).toBe(201);
    expect((await json(repeat)).data.media.references.count).toBe(1000);
    const refused = await json(await svc.call(`/v1/media/${m.id}`, { method: 'DELETE', key: app.apiKey }));
    expect(refused.error.code).toBe('MEDIA_IN_USE');
    expect(refused.error.details.refs).toHaveLength(1000);
  });
});
