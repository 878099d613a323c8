/**
 * The retention sweep at scale: 100,000 expired media rows (INSERT … SELECT generate_series, spread
 * over 100 apps) with a tiny object each, swept by one `sweep()` run, on the fs driver and on the s3
 * driver (s3rver in a child process over loopback).
 *
 *   node --import tsx bench/sweep.bench.ts
 *   SWEEP_BENCH_ROWS=100000 SWEEP_BENCH_S3_ROWS=20000 SWEEP_BENCH_APPS=100 SWEEP_BENCH_DRIVERS=fs,s3
 *   SWEEP_BENCH_CONCURRENCY, SWEEP_BATCH_SIZE: the service's defaults unless set (CONCURRENCY takes a list, e.g. 1,2,4)
 *   SWEEP_BENCH_WEBHOOKS=1: half the apps have a webhook, so half the deletions write and enqueue a
 *   media.deleted event (off by default: the rows of the issue-12 table are measured without)
 *
 * Reported: sweep wall time, deletes per second, CPU per 1000 media (this process, its PostgreSQL
 * backends, the s3rver child: steadier than wall time on a shared machine), RSS of this process
 * before (after a GC) and at its peak during the sweep, the longest a batch held its lease (claim →
 * bytes deleted → rows committed:
 * the longest any row is locked by the sweep) and the longest single transaction. The baseline is
 * measured right after the sweep in the same run, with no database and no driver: the same media's
 * objects (up to SWEEP_BENCH_BASELINE_MEDIA of them, default all on fs and 10,000 on s3, where
 * seeding is slow) put back, then deleted with the backend's own call. On fs, `unlink` of each
 * object, 16 at a time (SWEEP_BENCH_RAW_FS_CONCURRENCY): the sweep's unlinks of absent staging keys
 * count against it. On s3, `DeleteObjects` of the same keys the sweep sends (each media's object and
 * its staging key, almost always absent: a crash-window backstop), 1000 per call, 4 calls at a time
 * (SWEEP_BENCH_RAW_S3_IN_FLIGHT). Both are reported as media per second. s3rver keeps every object
 * as files plus metadata and shares the two cores with the sweeper, so s3 figures are a floor, not
 * a forecast for S3 or MinIO.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DeleteObjectsCommand, S3Client } from '@aws-sdk/client-s3';
import { envSchema } from '../src/config/index.js';
import { createPool, type Pool } from '../src/db/pool.js';
import { stagingKey, storageKey } from '../src/domain/ids.js';
import { silentLogger } from '../src/log.js';
import { createRedis } from '../src/queue/connection.js';
import { Queues } from '../src/queue/queues.js';
import { DEFAULT_SWEEP_LANES, sweep } from '../src/retention/sweep.js';
import type { BlobStore } from '../src/storage/blob-store.js';
import { fsStoreRoot } from '../src/storage/create-store.js';
import { createFsStore } from '../src/storage/fs-store.js';
import { createS3Store } from '../src/storage/s3-store.js';
import { isolatedEnv } from '../test/helpers/env.js';
import { bulkInsertMedia, insertApp, seedObjects } from '../test/helpers/retention-seed.js';

interface Row {
  driver: string;
  concurrency: number;
  rows: number;
  seedSeconds: number;
  sweepSeconds: number;
  deletesPerSecond: number;
  rssBeforeMiB: number;
  peakRssMiB: number;
  longestBatchMs: number;
  longestTransactionMs: number;
  batches: number;
  baselineDeletesPerSecond: number;
  baselineMedia: number;
  /** CPU milliseconds per 1000 media. */
  sweepCpuMs: { node: number; pg: number; s3rver: number };
  rawCpuMs: { node: number; s3rver: number };
  webhooks: boolean;
}

const MiB = 1024 * 1024;

/** Samples RSS every 20 ms while `fn` runs; returns its result and the peak. */
async function withPeakRss<T>(fn: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 20);
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, peak };
  } finally {
    clearInterval(timer);
  }
}

interface S3Opts {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

async function startS3Child(): Promise<{ opts: S3Opts; pid: number; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./sweep-s3-server.ts', import.meta.url).pathname], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`s3rver child exited ${String(code)}`)));
  });
  return {
    opts: JSON.parse(line) as S3Opts,
    pid: child.pid!,
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin!.end();
      await exited;
    },
  };
}

/** Runs `work` over `items`, `inFlight` at a time. */
async function eachInFlight<T>(items: readonly T[], inFlight: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(inFlight, items.length) }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

/**
 * The baseline: the objects of `media` (their storage keys) deleted with the backend's own call, no
 * driver and no database. Returns media per second.
 */
async function rawDeletes(driver: 'fs' | 's3', media: ReadonlyArray<{ appId: string; id: string }>, o: { dataDir: string; s3?: S3Opts }): Promise<number> {
  if (driver === 'fs') {
    const files = media.map((m) => path.join(fsStoreRoot(o.dataDir), ...storageKey(m.appId, m.id).split('/')));
    const t0 = performance.now();
    await eachInFlight(files, Number(process.env.SWEEP_BENCH_RAW_FS_CONCURRENCY ?? 16), (f) => unlink(f));
    return media.length / ((performance.now() - t0) / 1000);
  }
  const s3 = o.s3!;
  // Configured as the driver's client is (no aws-chunked checksums, keep-alive), nothing more.
  const client = new S3Client({
    region: s3.region,
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    const keys = media.flatMap((m) => [storageKey(m.appId, m.id), stagingKey(m.appId, m.id)]);
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += 1000) chunks.push(keys.slice(i, i + 1000));
    const t0 = performance.now();
    await eachInFlight(chunks, Number(process.env.SWEEP_BENCH_RAW_S3_IN_FLIGHT ?? 4), async (chunk) => {
      const res = await client.send(new DeleteObjectsCommand({ Bucket: s3.bucket, Delete: { Objects: chunk.map((Key) => ({ Key })), Quiet: true } }));
      if (res.Errors?.length) throw new Error(`raw DeleteObjects: ${res.Errors.length} errors`);
    });
    return media.length / ((performance.now() - t0) / 1000);
  } finally {
    client.destroy();
  }
}

/** CPU seconds (user + system) a process has used, from /proc (Linux; 100 clock ticks per second); 0 elsewhere. */
function processCpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/**
 * CPU spent while `fn` runs: this process (its libuv threads' unlinks included), the PostgreSQL
 * backends serving this bench's database, and `extraPid` (the s3rver child). On a shared machine a
 * wall-clock ratio moves with the neighbours' load; CPU per media moves much less.
 */
async function withCpu<T>(pool: Pool, extraPid: number | undefined, fn: () => Promise<T>): Promise<{ value: T; node: number; pg: number; extra: number }> {
  const backends = async () =>
    (await pool.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()')).rows.map((r) => r.pid);
  const pgBefore = new Map((await backends()).map((pid) => [pid, processCpuSeconds(pid)]));
  const extraBefore = extraPid ? processCpuSeconds(extraPid) : 0;
  const nodeBefore = process.cpuUsage();
  const value = await fn();
  const nodeUsed = process.cpuUsage(nodeBefore);
  const extra = extraPid ? processCpuSeconds(extraPid) - extraBefore : 0;
  let pg = 0;
  for (const pid of new Set([...pgBefore.keys(), ...(await backends())])) pg += processCpuSeconds(pid) - (pgBefore.get(pid) ?? 0);
  return { value, node: (nodeUsed.user + nodeUsed.system) / 1e6, pg, extra };
}

/** Lets the RSS before a sweep reflect live memory, not the garbage of seeding. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

async function benchDriver(driver: 'fs' | 's3', rows: number, apps: number, batchSize: number, concurrency: number, webhooks: boolean): Promise<Row> {
  const iso = await isolatedEnv();
  const pool: Pool = createPool(iso.config.DATABASE_URL);
  const redis = createRedis(iso.config.REDIS_URL, 'producer');
  const queues = new Queues(redis, iso.config.QUEUE_PREFIX);
  const s3 = driver === 's3' ? await startS3Child() : undefined;
  const store: BlobStore = s3 ? createS3Store({ ...s3.opts, forcePathStyle: true }) : createFsStore({ root: fsStoreRoot(iso.config.DATA_DIR) });
  try {
    const seedStart = performance.now();
    const media: Array<{ appId: string; id: string }> = [];
    for (let a = 0; a < apps; a++) {
      const appId = await insertApp(pool, webhooks && a % 2 === 1 ? { webhookUrl: 'https://hooks.example.com/mediaflow' } : {});
      const count = Math.floor(rows / apps) + (a < rows % apps ? 1 : 0);
      const ids = await bulkInsertMedia(pool, { appId, count, expiresIn: -60, idPrefix: `med_bench${a}_` });
      for (const id of ids) media.push({ appId, id });
    }
    await seedObjects(store, media.map((m) => storageKey(m.appId, m.id)), { dataDir: iso.config.DATA_DIR, concurrency: driver === 's3' ? 16 : 32 });
    await pool.query('VACUUM ANALYZE media');
    const seedSeconds = (performance.now() - seedStart) / 1000;
    collectGarbage();
    const rssBefore = process.memoryUsage.rss();

    const { value: { value: res, peak }, ...sweepCpu } = await withCpu(pool, s3?.pid, () =>
      withPeakRss(async () => {
        const t0 = performance.now();
        const r = await sweep({ pool, store, queues, log: silentLogger }, { batchSize, concurrency, maxRetentionSeconds: 90 * 24 * 3600, maxBatches: Number.MAX_SAFE_INTEGER, staging: false });
        return { ...r, seconds: (performance.now() - t0) / 1000 };
      }),
    );
    if (res.deleted !== rows || res.failed !== 0) throw new Error(`sweep deleted ${res.deleted} of ${rows} (failed ${res.failed})`);
    const { rows: audit } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events WHERE event = 'media.deleted'`);
    if (audit[0]!.n !== rows) throw new Error(`audit has ${audit[0]!.n} rows for ${rows} deletions`);

    // Baseline: the same objects put back, then deleted raw.
    const baseMedia = media.slice(0, Number(process.env.SWEEP_BENCH_BASELINE_MEDIA ?? (driver === 's3' ? 10_000 : media.length)));
    media.length = 0;
    await seedObjects(store, baseMedia.map((m) => storageKey(m.appId, m.id)), { dataDir: iso.config.DATA_DIR, concurrency: driver === 's3' ? 16 : 32 });
    const { value: baselineDeletesPerSecond, ...rawCpu } = await withCpu(pool, s3?.pid, () => rawDeletes(driver, baseMedia, { dataDir: iso.config.DATA_DIR, s3: s3?.opts }));

    return {
      driver,
      concurrency,
      rows,
      seedSeconds,
      sweepSeconds: res.seconds,
      deletesPerSecond: rows / res.seconds,
      rssBeforeMiB: rssBefore / MiB,
      peakRssMiB: peak / MiB,
      longestBatchMs: res.longestBatchMs,
      longestTransactionMs: res.longestTransactionMs,
      batches: res.batches,
      baselineDeletesPerSecond,
      baselineMedia: baseMedia.length,
      sweepCpuMs: { node: (sweepCpu.node * 1e6) / rows, pg: (sweepCpu.pg * 1e6) / rows, s3rver: (sweepCpu.extra * 1e6) / rows },
      rawCpuMs: { node: (rawCpu.node * 1e6) / baseMedia.length, s3rver: (rawCpu.extra * 1e6) / baseMedia.length },
      webhooks,
    };
  } finally {
    await store.close();
    await s3?.stop();
    await queues.close();
    redis.disconnect();
    await pool.end();
    await iso.cleanup();
  }
}

export async function run(): Promise<Row[]> {
  const rows = Number(process.env.SWEEP_BENCH_ROWS ?? 100_000);
  // s3rver stores an object as three files and takes ~330 puts/s here: seeding 100,000 takes about
  // five minutes, so the s3 run defaults to 20,000 (SWEEP_BENCH_S3_ROWS=100000 for the full figure).
  const s3Rows = Number(process.env.SWEEP_BENCH_S3_ROWS ?? Math.min(rows, 20_000));
  // Spread over apps as production is. s3rver re-reads a key's whole directory (readdirSync) after
  // every delete, so 10,000 keys under one app measure that quadratic walk rather than the sweep.
  const apps = Number(process.env.SWEEP_BENCH_APPS ?? 100);
  // The service's defaults unless overridden.
  const batchSize = Number(process.env.SWEEP_BATCH_SIZE ?? envSchema.shape.SWEEP_BATCH_SIZE.parse(undefined));
  const webhooks = process.env.SWEEP_BENCH_WEBHOOKS === '1';
  const drivers = (process.env.SWEEP_BENCH_DRIVERS ?? 'fs,s3').split(',').map((d) => d.trim()) as Array<'fs' | 's3'>;
  const out: Row[] = [];
  const lanes = (process.env.SWEEP_BENCH_CONCURRENCY ?? String(DEFAULT_SWEEP_LANES)).split(',').map(Number);
  for (const d of drivers) for (const c of lanes) out.push(await benchDriver(d, d === 's3' ? s3Rows : rows, apps, batchSize, c, webhooks));
  const f = (x: number, digits = 0) => x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  console.log(`Sweep of expired media over ${apps} apps, batch size ${batchSize}${webhooks ? ', half the apps with a webhook' : ''}, one run (seeding not timed).\n`);
  console.log('| driver | lanes | media | sweep s | media/s | raw deletes of their objects, media/s (baseline) | baseline media | ratio | CPU ms per 1000 media, sweep: node + postgres (+ s3rver) | CPU ms per 1000 media, raw: node (+ s3rver) | RSS before MiB | peak RSS MiB | longest batch ms | longest transaction ms | batches | seed s |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of out) {
    console.log(
      `| ${r.driver} | ${r.concurrency} | ${f(r.rows)} | ${f(r.sweepSeconds, 1)} | ${f(r.deletesPerSecond)} | ${f(r.baselineDeletesPerSecond)} | ${f(r.baselineMedia)} | ${f(r.deletesPerSecond / r.baselineDeletesPerSecond, 2)} | ${f(r.sweepCpuMs.node)} + ${f(r.sweepCpuMs.pg)}${r.driver === 's3' ? ` + ${f(r.sweepCpuMs.s3rver)}` : ''} | ${f(r.rawCpuMs.node)}${r.driver === 's3' ? ` + ${f(r.rawCpuMs.s3rver)}` : ''} | ${f(r.rssBeforeMiB)} | ${f(r.peakRssMiB)} | ${f(r.longestBatchMs)} | ${f(r.longestTransactionMs)} | ${r.batches} | ${f(r.seedSeconds, 1)} |`,
    );
  }
  // The issue-12 rows: the default lane count's figure for each driver.
  const measures = { fs: ['retention sweep, fs, vs raw fs deletes of the same objects', 0.5], s3: ['retention sweep, S3 server, vs raw DeleteObjects of the same keys', 0.8] } as const;
  console.log('\n| measure | mediaflow | baseline | ratio | goal |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const r of out) {
    const [measure, goal] = measures[r.driver as 'fs' | 's3'];
    console.log(`| ${measure}${lanes.length > 1 ? ` (${r.concurrency} lanes)` : ''} | ${f(r.deletesPerSecond)} media/s | ${f(r.baselineDeletesPerSecond)} media/s | ${f(r.deletesPerSecond / r.baselineDeletesPerSecond, 2)} | ≥ ${goal} |`);
  }
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
