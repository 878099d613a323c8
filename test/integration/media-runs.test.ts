/**
 * Two runs of one media job (a stalled job handed to a second worker while its first run still
 * works), against real PostgreSQL, Redis, the fs store and ffmpeg. The API-only service accepts the
 * upload; the two runs are `processMedia` called twice, with the store wrapped so the test decides
 * when each run's writes return. Nothing else is mocked.
 */
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as mediaRepo from '../../src/db/repos/media.js';
import { newRunId, runStorageKey, stagingKey } from '../../src/domain/ids.js';
import { processMedia } from '../../src/jobs/process-media.js';
import type { IngestPayload } from '../../src/queue/payloads.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { fixture } from '../fixtures/generate.js';
import { sha256 } from '../helpers/media.js';
import { multipart, startService, type TestService } from '../helpers/service.js';

let svc: TestService;
let app: { appId: string; apiKey: string };
let clip: Buffer;

beforeAll(async () => {
  svc = await startService({ role: 'api' });
  // A webhook URL, so every media.ready / media.failed is recorded in the outbox and can be counted.
  app = await svc.newApp({ webhookUrl: 'https://hooks.example.com/mediaflow' });
  clip = await readFile(await fixture('mp4Compliant'));
}, 60_000);
afterAll(async () => {
  await svc?.stop();
});

const pool = () => svc.running.rt.pool;

async function acceptVideo(): Promise<{ id: string; payload: IngestPayload }> {
  const res = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({ kind: 'video' }, { bytes: clip, name: 'clip.mp4', type: 'video/mp4' }) });
  expect(res.status).toBe(202);
  const id = ((await res.json()) as any).data.id as string;
  const job = await svc.running.rt.queues.get('ingest').getJob(id);
  return { id, payload: job!.data as IngestPayload };
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** The store, with `afterPut` awaited once each put has stored its object and before the put returns. */
function gatedStore(inner: BlobStore, afterPut: (key: string) => Promise<void>): BlobStore {
  const put: BlobStore['put'] = async (key, body, opts) => {
    const out = await inner.put(key, body, opts);
    await afterPut(key);
    return out;
  };
  return new Proxy(inner, {
    get(target, prop) {
      if (prop === 'put') return put;
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

const runOf = (key: string) => /^objects\/[^/]+\/[^/.]+\.([a-z0-9]+)\./.exec(key)?.[1];

async function objectsOf(id: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of svc.running.rt.store.list(`objects/${app.appId}/`)) if (o.key.startsWith(`objects/${app.appId}/${id}.`)) keys.push(o.key);
  return keys.sort();
}

async function outbox(id: string): Promise<string[]> {
  const { rows } = await pool().query<{ event: string }>('SELECT event FROM webhook_deliveries WHERE media_id = $1 ORDER BY event', [id]);
  return rows.map((r) => r.event);
}

describe('claim tokens in the media repository', () => {
  it('a run that was taken over changes nothing: ready, failed, requeue and kind all match nothing', async () => {
    const { id } = await acceptVideo();
    const runA = newRunId();
    const runB = newRunId();
    expect((await mediaRepo.claimForProcessing(pool(), id, runA))?.claim_token).toBe(runA);
    expect((await mediaRepo.claimForProcessing(pool(), id, runB))?.attempts).toBe(2);

    const fields = (run: string): mediaRepo.ReadyFields => ({
      storageKey: runStorageKey(app.appId, id, run),
      mimeType: 'video/mp4', detectedMime: 'video/mp4', sizeBytes: 10, storedBytes: 50, checksum: `sum-${run}`, keyId: 'k',
      width: 1, height: 1, durationMs: 1, pages: null, waveform: null, transform: 'remuxed', variants: [], inputBytes: 10,
    });
    expect(await mediaRepo.markReady(pool(), id, runA, fields(runA))).toBeNull();
    expect(await mediaRepo.markFailed(pool(), id, 'INTERNAL', 'x', { claimToken: runA })).toBeNull();
    expect(await mediaRepo.requeueForRun(pool(), id, runA)).toBe(false);
    expect(await mediaRepo.setKindForRun(pool(), id, runA, 'image')).toBe(false);
    expect((await mediaRepo.getMediaById(pool(), id))).toMatchObject({ status: 'processing', kind: 'video', claim_token: runB });

    const ready = await mediaRepo.markReady(pool(), id, runB, fields(runB));
    expect(ready).toMatchObject({ status: 'ready', checksum: `sum-${runB}`, storage_key: runStorageKey(app.appId, id, runB), staging_key: null });
    // Settled: not even its owner moves it again.
    expect(await mediaRepo.markFailed(pool(), id, 'INTERNAL', 'x', { claimToken: runB })).toBeNull();
  });
});

describe('two runs of one job', () => {
  it('the run that took over commits; the first run cannot, and deletes only its own objects', async () => {
    const { id, payload } = await acceptVideo();
    let runA: string | undefined;
    const aStored = deferred();
    const releaseA = deferred();
    const store = gatedStore(svc.running.rt.store, async (key) => {
      runA ??= runOf(key);
      if (runOf(key) === runA && !key.endsWith('.poster.bin')) {
        aStored.resolve();
        await releaseA.promise;
      }
    });
    const deps = { ...svc.running.rt, store };

    // Run A has stored its object and stalls before committing; the job goes to a second worker.
    const a = processMedia(deps, payload, { attempt: 1, finalAttempt: false });
    await aStored.promise;
    expect(await processMedia(deps, payload, { attempt: 1, finalAttempt: false })).toBe('ready');
    releaseA.resolve();
    expect(await a).toBe('skipped');

    const row = (await mediaRepo.getMediaById(pool(), id))!;
    expect(row.status).toBe('ready');
    const runB = runOf(row.storage_key)!;
    expect(runB).not.toBe(runA);
    // What the row says is what is served: the checksum is the SHA-256 of the bytes downloaded.
    const content = await svc.call(`/v1/media/${id}/content`, { key: app.apiKey });
    expect(content.status).toBe(200);
    expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(row.checksum);
    // Only the winner's object and poster remain; the staging object went with the commit.
    expect(await objectsOf(id)).toEqual([row.storage_key, row.variants[0]!.key].sort());
    expect(row.variants.map((v) => runOf(v.key))).toEqual([runB]);
    expect(await svc.running.rt.store.exists(stagingKey(app.appId, id))).toBe(false);
    expect(await outbox(id)).toEqual(['media.ready']);
  }, 60_000);

  it('a taken-over run that would have committed first cannot; the owner\'s failure leaves no object and no ready row', async () => {
    const { id, payload } = await acceptVideo();
    let runA: string | undefined;
    const aStored = deferred();
    const releaseA = deferred();
    const bPoster = deferred();
    const failB = deferred<Error>();
    const store = gatedStore(svc.running.rt.store, async (key) => {
      runA ??= runOf(key);
      if (runOf(key) === runA) {
        if (!key.endsWith('.poster.bin')) {
          aStored.resolve();
          await releaseA.promise;
        }
      } else if (key.endsWith('.poster.bin')) {
        // The second run's last write reaches the store, but its call fails (the job's deadline).
        bPoster.resolve();
        throw await failB.promise;
      }
    });
    const deps = { ...svc.running.rt, store };

    const a = processMedia(deps, payload, { attempt: 5, finalAttempt: true });
    await aStored.promise;
    const b = processMedia(deps, payload, { attempt: 5, finalAttempt: true });
    await bPoster.promise;
    // A resumes while B still works: B owns the row, so A's commit matches nothing.
    releaseA.resolve();
    expect(await a).toBe('skipped');
    failB.resolve(new Error('the job deadline passed while storing the poster'));
    expect(await b).toBe('failed');

    const row = (await mediaRepo.getMediaById(pool(), id))!;
    expect(row).toMatchObject({ status: 'failed', error_code: 'INTERNAL' });
    expect(await objectsOf(id)).toEqual([]);
    expect(await svc.running.rt.store.exists(stagingKey(app.appId, id))).toBe(false);
    expect(await outbox(id)).toEqual(['media.failed']);
  }, 60_000);

  it('the failure of a run that no longer owns the row keeps the owner\'s staging object', async () => {
    const { id, payload } = await acceptVideo();
    let runA: string | undefined;
    const aStored = deferred();
    const releaseA = deferred<Error>();
    const store = gatedStore(svc.running.rt.store, async (key) => {
      runA ??= runOf(key);
      if (runOf(key) === runA) {
        aStored.resolve();
        throw await releaseA.promise;
      }
    });
    const deps = { ...svc.running.rt, store };

    const a = processMedia(deps, payload, { attempt: 5, finalAttempt: true });
    await aStored.promise;
    // Another run claims the row (it will read the staging object next), then A fails for good.
    expect(await mediaRepo.claimForProcessing(pool(), id, newRunId())).not.toBeNull();
    releaseA.resolve(new Error('the job deadline passed while storing'));
    expect(await a).toBe('skipped');

    expect((await mediaRepo.getMediaById(pool(), id))?.status).toBe('processing');
    expect(await svc.running.rt.store.exists(stagingKey(app.appId, id))).toBe(true);
    expect(await objectsOf(id)).toEqual([]);
    expect(await outbox(id)).toEqual([]);
  }, 60_000);
});
