/**
 * mediaflow on a Redis Cluster (issue 13). Real: a 3-master/3-replica Redis Cluster from Debian's
 * redis-server on free local ports (test/helpers/redis-cluster.ts, started and torn down here),
 * PostgreSQL (this file's own database), the fs store, sharp. The whole service (API, workers,
 * sweeper) runs in this process against `REDIS_URL=redis+cluster://…` with a hash-tagged prefix.
 * Nothing is mocked.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseClusterUrl } from '../../src/queue/connection.js';
import { createProducer, enqueueMedia } from '../../src/queue/producer.js';
import { JOBS, SWEEP_SCHEDULER_ID } from '../../src/queue/registry.js';
import { sha256, smallJpeg } from '../helpers/media.js';
import { startRedisCluster, type RedisCluster } from '../helpers/redis-cluster.js';
import { streamingUpload } from '../helpers/service-process.js';
import { multipart, startService, waitFor, waitSettled, type TestService } from '../helpers/service.js';
import { uniqueName } from '../helpers/env.js';

const ADMIN_TOKEN = 'cluster-admin-token-'.padEnd(40, 'x');
const RATE_LIMIT = 20;

let cluster: RedisCluster;
let svc: TestService;
let prefix: string;
let fileRoot: string;
/** A connection of the test's own, to look at the keys. */
let redis: Cluster;

const keyPrefixOf = (apiKey: string) => apiKey.split('_').slice(0, 2).join('_');

beforeAll(async () => {
  cluster = await startRedisCluster();
  prefix = `{${uniqueName('mfc')}}`;
  fileRoot = await mkdtemp(path.join(os.tmpdir(), 'mf-cluster-files-'));
  svc = await startService({
    env: {
      REDIS_URL: cluster.url,
      QUEUE_PREFIX: prefix,
      SWEEP_CRON: '* * * * * *',
      RATE_LIMIT_PER_MINUTE: String(RATE_LIMIT),
      UPLOAD_CONCURRENCY_PER_KEY: '1',
      FILE_SOURCE_ROOT: fileRoot,
      ADMIN_TOKEN,
      // Bounds the stop after the failover test (see the shutdown budget in src/roles.ts).
      SHUTDOWN_TIMEOUT_SECONDS: '10',
    },
  });
  redis = new Cluster(parseClusterUrl(cluster.url).nodes, { redisOptions: { maxRetriesPerRequest: 1 } });
  redis.on('error', () => undefined);
}, 120_000);

afterAll(async () => {
  redis?.disconnect();
  await svc?.stop();
  await cluster?.stop();
  if (fileRoot) await rm(fileRoot, { recursive: true, force: true });
}, 120_000);

/** Every key on every master of the cluster. */
async function allKeys(): Promise<string[]> {
  const keys: string[] = [];
  for (const node of redis.nodes('master')) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
  }
  return keys;
}

async function upload(key: string, bytes: Buffer, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${svc.url}/v1/media`, { method: 'POST', headers: { authorization: `Bearer ${key}`, ...headers }, body: multipart({ kind: 'image' }, { bytes, name: 'photo.jpg', type: 'image/jpeg' }) });
}

describe('the core path on a Redis Cluster', () => {
  it('takes an upload to ready, answers a repeated Idempotency-Key with the first media, and shows it in the dashboard', async () => {
    const { apiKey } = await svc.newApp();
    const jpeg = await smallJpeg(96, 64, 21);
    const first = await upload(apiKey, jpeg, { 'idempotency-key': 'cluster-once' });
    expect(first.status).toBe(202);
    const media = ((await first.json()) as { data: { id: string } }).data;
    const again = await upload(apiKey, jpeg, { 'idempotency-key': 'cluster-once' });
    expect(again.status).toBe(202);
    expect(((await again.json()) as { data: { id: string } }).data.id).toBe(media.id);

    const settled = await waitSettled(svc, apiKey, media.id, 60_000);
    expect(settled.status).toBe('ready');
    const content = await svc.call(`/v1/media/${media.id}/content`, { key: apiKey });
    expect(content.status).toBe(200);
    expect(content.headers.get('etag')).toContain(sha256(Buffer.from(await content.arrayBuffer())));

    const dash = await fetch(`${svc.url}/admin/queues/api/queues`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(dash.status).toBe(200);
    const queues = ((await dash.json()) as { queues: Array<{ name: string; counts: Record<string, number> }> }).queues;
    expect(queues.find((q) => q.name === JOBS.ingest.queue)?.counts.completed).toBeGreaterThanOrEqual(1);
  });

  it('limits requests per key through the cluster: over the limit is 429 RATE_LIMITED with retry-after, another key is unaffected', async () => {
    const a = await svc.newApp();
    const b = await svc.newApp();
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < RATE_LIMIT + 5; i++) {
      const r = await svc.call('/v1/media?limit=1', { key: a.apiKey });
      statuses.push(r.status);
      if (r.status === 429) limited ??= r;
      else await r.arrayBuffer();
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(RATE_LIMIT);
    expect(statuses.filter((s) => s === 429)).toHaveLength(5);
    expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(((await limited!.json()) as { error: { code: string } }).error.code).toBe('RATE_LIMITED');
    expect((await svc.call('/v1/media?limit=1', { key: b.apiKey })).status).toBe(200);
  });

  it('holds one upload lease per key across the cluster (UPLOAD_CONCURRENCY_PER_KEY=1) and gives it back when the upload ends', async () => {
    const { apiKey } = await svc.newApp();
    const leaseKey = `${prefix}:ratelimit:uploads:${keyPrefixOf(apiKey)}`;
    const jpeg = await smallJpeg(120, 80, 22);
    const slow = streamingUpload(`${svc.url}/v1/media`, { key: apiKey, filename: 'slow.jpg', type: 'image/jpeg', fields: { kind: 'image' } });
    slow.send(jpeg.subarray(0, 200));
    await waitFor(async () => (await redis.zcard(leaseKey)) === 1, 20_000, 50);

    const second = await upload(apiKey, await smallJpeg(40, 40, 23));
    expect(second.status).toBe(429);
    expect(((await second.json()) as { error: { code: string } }).error.code).toBe('RATE_LIMITED');

    slow.send(jpeg.subarray(200));
    slow.end();
    expect((await slow.response).status).toBe(202);
    await waitFor(async () => (await redis.zcard(leaseKey)) === 0, 20_000, 50);
    expect((await upload(apiKey, await smallJpeg(40, 40, 24))).status).toBe(202);
  });

  it('takes jobs from mediaflow/producer (one-off and reusable) to ready, and the producer refuses a prefix without a hash tag', async () => {
    const { appId, apiKey } = await svc.newApp();
    const file = path.join(fileRoot, 'from-producer.jpg');
    await writeFile(file, await smallJpeg(64, 64, 25));
    const one = await enqueueMedia({ appId, kind: 'image', source: { type: 'file', path: file } }, { redisUrl: cluster.url, prefix });
    const producer = createProducer({ redisUrl: cluster.url, prefix });
    let two: { mediaId: string };
    try {
      two = await producer.enqueueMedia({ appId, kind: 'image', source: { type: 'file', path: file } });
      // The job id is the media id: the same media enqueued again is a no-op, on a cluster too.
      await producer.enqueueMedia({ appId, kind: 'image', mediaId: two.mediaId, source: { type: 'file', path: file } });
    } finally {
      await producer.close();
    }
    for (const id of [one.mediaId, two.mediaId]) expect((await waitSettled(svc, apiKey, id, 60_000)).status).toBe('ready');
    expect(await svc.running.rt.queues.get('ingest').getJobCountByTypes('waiting', 'delayed')).toBe(0);

    await expect(enqueueMedia({ appId, kind: 'image', source: { type: 'file', path: file } }, { redisUrl: cluster.url, prefix: 'no-tag' })).rejects.toThrow(
      /QUEUE_PREFIX "no-tag" has no hash tag/,
    );
  });

  it('schedules the retention sweep on the cluster, and the sweep deletes media when they expire', async () => {
    const scheduler = await svc.running.rt.queues.get('retention-sweep').getJobScheduler(SWEEP_SCHEDULER_ID);
    expect(scheduler?.pattern).toBe('* * * * * *');
    const { apiKey } = await svc.newApp();
    const res = await fetch(`${svc.url}/v1/media`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}` },
      body: multipart({ kind: 'image', ttlSeconds: '2' }, { bytes: await smallJpeg(50, 50, 26), name: 'brief.jpg', type: 'image/jpeg' }),
    });
    expect(res.status).toBe(202);
    const id = ((await res.json()) as { data: { id: string } }).data.id;
    expect((await waitSettled(svc, apiKey, id, 60_000)).status).toBe('ready');
    await waitFor(async () => (await svc.call(`/v1/media/${id}`, { key: apiKey })).status === 404, 30_000, 200);
    const { rows } = await svc.running.rt.pool.query<{ status: string }>('SELECT status FROM media WHERE id = $1', [id]);
    expect(rows[0]?.status).toBe('deleted');
  });

  it('writes every Redis key under the one hash-tagged prefix, all in one slot', async () => {
    const keys = await allKeys();
    expect(keys.length).toBeGreaterThan(10);
    const outside = keys.filter((k) => !k.startsWith(`${prefix}:`));
    expect(outside).toEqual([]);
    const slots = new Set(await Promise.all(keys.slice(0, 50).map((k) => redis.cluster('KEYSLOT', k))));
    expect(slots.size).toBe(1);
  });
});

describe('a master fails over', () => {
  it('after the master holding our slot is killed and its replica promoted, uploads are accepted again and reach ready', async () => {
    const { apiKey } = await svc.newApp();
    const slot = (await redis.cluster('KEYSLOT', `${prefix}:x`)) as number;
    const owner = redis.slots[slot]?.[0];
    const port = Number(owner?.split(':')[1]);
    expect(cluster.nodes.map((n) => n.port)).toContain(port);
    await cluster.killNode(port);
    await cluster.waitHealthy(60_000);
    expect(await cluster.masters()).not.toContain(port);

    // During the switch a producer may answer 503 QUEUE_UNAVAILABLE; it never loses an accepted media.
    const accepted = await waitFor(async () => {
      const r = await upload(apiKey, await smallJpeg(48, 48, 27));
      if (r.status === 503) {
        expect(((await r.json()) as { error: { code: string } }).error.code).toBe('QUEUE_UNAVAILABLE');
        return null;
      }
      expect(r.status).toBe(202);
      return ((await r.json()) as { data: { id: string } }).data.id;
    }, 60_000, 500);
    expect((await waitSettled(svc, apiKey, accepted, 90_000)).status).toBe('ready');
    // The old master comes back as a replica of the promoted one.
    await cluster.restartNode(port);
    await cluster.waitHealthy(60_000);
  }, 240_000);
});
