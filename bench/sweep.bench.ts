/**
 * The retention sweep at scale: 100,000 expired media rows (INSERT … SELECT generate_series, spread
 * over 100 apps) with a tiny object each, swept by one `sweep()` run, on the fs driver and on the s3
 * driver (s3rver in a child process over loopback).
 *
 *   node --import tsx bench/sweep.bench.ts
 *   SWEEP_BENCH_ROWS=100000 SWEEP_BENCH_S3_ROWS=20000 SWEEP_BENCH_APPS=100 SWEEP_BENCH_DRIVERS=fs,s3
 *   SWEEP_BENCH_CONCURRENCY=2 SWEEP_BATCH_SIZE=500 (the defaults; CONCURRENCY takes a list, e.g. 1,2)
 *
 * Reported: sweep wall time, deletes per second, RSS of this process before (after a GC) and at its
 * peak during the sweep, the longest a batch held its lease (claim → bytes deleted → rows committed:
 * the longest any row is locked by the sweep) and the longest single transaction. The baseline is
 * the store's own delete of up to 10,000 keys in 1000-key calls, with no database work: the ratio
 * says how much of the storage ceiling the sweep reaches (a sweep also deletes each media's absent
 * staging key, so two keys per media). s3rver keeps every object as files plus metadata and
 * shares the two cores with the sweeper, so s3 figures are a floor, not a forecast for S3 or MinIO.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createPool, type Pool } from '../src/db/pool.js';
import { storageKey } from '../src/domain/ids.js';
import { silentLogger } from '../src/log.js';
import { createRedis } from '../src/queue/connection.js';
import { Queues } from '../src/queue/queues.js';
import { sweep } from '../src/retention/sweep.js';
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

async function startS3Child(): Promise<{ opts: { endpoint: string; bucket: string; region: string; accessKeyId: string; secretAccessKey: string }; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL('./sweep-s3-server.ts', import.meta.url).pathname], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`s3rver child exited ${String(code)}`)));
  });
  return {
    opts: JSON.parse(line),
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin!.end();
      await exited;
    },
  };
}

/** Lets the RSS before a sweep reflect live memory, not the garbage of seeding. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

async function benchDriver(driver: 'fs' | 's3', rows: number, apps: number, batchSize: number, concurrency: number): Promise<Row> {
  const iso = await isolatedEnv();
  const pool: Pool = createPool(iso.config.DATABASE_URL);
  const redis = createRedis(iso.config.REDIS_URL, 'producer');
  const queues = new Queues(redis, iso.config.QUEUE_PREFIX);
  const s3 = driver === 's3' ? await startS3Child() : undefined;
  const store: BlobStore = s3 ? createS3Store({ ...s3.opts, forcePathStyle: true }) : createFsStore({ root: fsStoreRoot(iso.config.DATA_DIR) });
  try {
    const seedStart = performance.now();
    const keys: string[] = [];
    let appId = '';
    for (let a = 0; a < apps; a++) {
      appId = await insertApp(pool);
      const count = Math.floor(rows / apps) + (a < rows % apps ? 1 : 0);
      const ids = await bulkInsertMedia(pool, { appId, count, expiresIn: -60, idPrefix: `med_bench${a}_` });
      for (const id of ids) keys.push(storageKey(appId, id));
    }
    await seedObjects(store, keys, { dataDir: iso.config.DATA_DIR, concurrency: driver === 's3' ? 16 : 32 });
    keys.length = 0;
    await pool.query('VACUUM ANALYZE media');
    const seedSeconds = (performance.now() - seedStart) / 1000;
    collectGarbage();
    const rssBefore = process.memoryUsage.rss();

    const { value: res, peak } = await withPeakRss(async () => {
      const t0 = performance.now();
      const r = await sweep({ pool, store, queues, log: silentLogger }, { batchSize, concurrency, maxRetentionSeconds: 90 * 24 * 3600, maxBatches: Number.MAX_SAFE_INTEGER, staging: false });
      return { ...r, seconds: (performance.now() - t0) / 1000 };
    });
    if (res.deleted !== rows || res.failed !== 0) throw new Error(`sweep deleted ${res.deleted} of ${rows} (failed ${res.failed})`);
    const { rows: audit } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_events WHERE event = 'media.deleted'`);
    if (audit[0]!.n !== rows) throw new Error(`audit has ${audit[0]!.n} rows for ${rows} deletions`);

    // Baseline: the store alone deleting as many keys (re-seeded), 1000 per call.
    const n = Math.min(rows, 10_000);
    const baseKeys = Array.from({ length: n }, (_, i) => `objects/${appId}/base${i % apps}/${i}.bin`);
    await seedObjects(store, baseKeys, { dataDir: iso.config.DATA_DIR, concurrency: driver === 's3' ? 16 : 32 });
    const b0 = performance.now();
    for (let i = 0; i < baseKeys.length; i += 1000) await store.delete(baseKeys.slice(i, i + 1000));
    const baselineDeletesPerSecond = n / ((performance.now() - b0) / 1000);

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
  const batchSize = Number(process.env.SWEEP_BATCH_SIZE ?? 500);
  const drivers = (process.env.SWEEP_BENCH_DRIVERS ?? 'fs,s3').split(',').map((d) => d.trim()) as Array<'fs' | 's3'>;
  const out: Row[] = [];
  const lanes = (process.env.SWEEP_BENCH_CONCURRENCY ?? '2').split(',').map(Number);
  for (const d of drivers) for (const c of lanes) out.push(await benchDriver(d, d === 's3' ? s3Rows : rows, apps, batchSize, c));
  const f = (x: number, digits = 0) => x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  console.log(`Sweep of expired media over ${apps} apps, batch size ${batchSize}, one run (seeding not timed).\n`);
  console.log('| driver | lanes | media | sweep s | deletes/s | store-only deletes/s (baseline) | ratio | RSS before MiB | peak RSS MiB | longest batch ms | longest transaction ms | batches | seed s |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of out) {
    console.log(
      `| ${r.driver} | ${r.concurrency} | ${f(r.rows)} | ${f(r.sweepSeconds, 1)} | ${f(r.deletesPerSecond)} | ${f(r.baselineDeletesPerSecond)} | ${f(r.deletesPerSecond / r.baselineDeletesPerSecond, 2)} | ${f(r.rssBeforeMiB)} | ${f(r.peakRssMiB)} | ${f(r.longestBatchMs)} | ${f(r.longestTransactionMs)} | ${r.batches} | ${f(r.seedSeconds, 1)} |`,
    );
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
