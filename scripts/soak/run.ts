/**
 * `npm run soak`: mediaflow as a multi-process deployment on this machine, under load, with faults
 * on purpose, then checked.
 *
 *   Redis (3 masters + 3 replicas)   PgBouncer (transaction mode) → PostgreSQL (a fresh database)
 *   S3 server (s3rver, own process)  webhook receiver + a file server for URL ingest (this process)
 *   2 API, 3 worker, 2 sweeper processes (`mediaflow start --role …`)
 *
 * The load (default 3,000 media at 8/s) goes through every way in; the first quarter runs without
 * faults, the rest under the fault schedule. Then everything settles, the processes stop, and the
 * invariants are checked against the database, the bucket, the scratch directories and the
 * receiver. The report ends with `invariants: N held, M broken`; the exit code is 1 when any broke.
 * `runSoak()` is the same run for test/e2e/soak-short.test.ts.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ListMultipartUploadsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Queue } from 'bullmq';
import pg from 'pg';
import { migrate } from '../../src/db/migrate.js';
import { openRedis } from '../../src/queue/connection.js';
import { JOBS } from '../../src/queue/registry.js';
import { startReceiver } from '../../test/helpers/receiver.js';
import { freePort, runCli, streamingUpload } from '../../test/helpers/service-process.js';
import { buildCorpus, pickGroup, rng, type Sample } from './corpus.js';
import {
  createDatabase,
  databaseUrl,
  directPg,
  dropDatabase,
  PG_ADMIN_URL,
  sleep,
  startS3Child,
  startSingleRedis,
  startSoakPgBouncer,
  startSoakRedisCluster,
  type PgUnderTest,
  type RedisUnderTest,
  type S3UnderTest,
} from './infra.js';
import { checkInvariants, type Evidence, type Line, type MediaRowLite } from './invariants.js';
import { formatReport, measure, usageLines } from './report.js';
import { SoakClient, WAYS, type Submission, type Way } from './load.js';
import { HELP, parseOptions, type Fault, type SoakOptions } from './options.js';
import { RoleProcess, RssSampler } from './processes.js';

export interface FaultEvent {
  fault: Fault | 'device-destroy' | 'fault';
  at: number;
  /** Seconds from the start of the load. */
  t: number;
  detail: string;
}

export interface SoakReport {
  options: SoakOptions;
  topology: string[];
  lines: Line[];
  measures: string[];
  faults: FaultEvent[];
  held: number;
  broken: number;
  text: string;
  seconds: number;
}

const RSS_LIMIT_BYTES = 1024 * 2 ** 20;
/** Sweeps run every 5 s; a batch a killed sweeper left is taken over when its lease (30 s) lapses. */
const OVERDUE_MS = 45_000;

/** Set while a run is under way: what a SIGINT/SIGTERM must tear down before the process exits. */
let tearDown: (() => Promise<void>) | undefined;

export async function runSoak(opts: SoakOptions): Promise<SoakReport> {
  const t0 = Date.now();
  const loadAtStart = os.loadavg();
  const say = (m: string) => opts.verbose && process.stderr.write(`[soak +${((Date.now() - t0) / 1000).toFixed(0)}s] ${m}\n`);
  const cleanups: Array<() => Promise<unknown>> = [];
  const workDir = await mkdtemp(path.join(os.tmpdir(), 'mediaflow-soak-'));
  const dbName = `mf_soak_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const sampler = new RssSampler();
  const roles: RoleProcess[] = [];
  const cleanUp = async (): Promise<void> => {
    sampler.stop();
    await Promise.all(roles.map((r) => r.kill().catch(() => undefined)));
    for (const c of cleanups.splice(0).reverse()) await c().catch((err: unknown) => say(`cleanup: ${String(err)}`));
    if (!opts.keep) await rm(workDir, { recursive: true, force: true }).catch(() => undefined);
    else say(`kept ${workDir}`);
  };
  tearDown = cleanUp;
  try {
    say(`work dir ${workDir}; building the corpus`);
    const corpus = await buildCorpus();

    // --- the topology -------------------------------------------------------------------------
    const prefix = opts.redis === 'cluster' ? `{mf${randomBytes(3).toString('hex')}}` : `mfsoak${randomBytes(3).toString('hex')}`;
    say(`starting Redis (${opts.redis})`);
    const redis: RedisUnderTest = opts.redis === 'cluster' ? await startSoakRedisCluster(prefix) : await startSingleRedis(path.join(workDir, 'redis'), prefix);
    cleanups.push(() => redis.stop());
    sampler.track({ name: 'redis', pids: () => redis.pids(), members: redis.members });

    await createDatabase(dbName);
    cleanups.push(() => dropDatabase(dbName));
    const adminDbUrl = databaseUrl(PG_ADMIN_URL, dbName);
    // Migrations take session advisory locks: they run on a direct connection, as a deploy step would.
    await migrate(adminDbUrl);
    say(`database ${dbName} migrated; starting ${opts.pg === 'pgbouncer' ? 'PgBouncer' : 'no PgBouncer (direct)'}`);
    const pgUnder: PgUnderTest = opts.pg === 'pgbouncer' ? await startSoakPgBouncer(dbName) : directPg(dbName);
    cleanups.push(() => pgUnder.stop());
    sampler.track({ name: 'pgbouncer', pids: () => pgUnder.pids() });
    const db = new pg.Pool({ connectionString: adminDbUrl, max: 3 });
    db.on('error', () => undefined);
    let ownQueries = 0;
    db.on('acquire', () => ownQueries++);
    cleanups.push(() => db.end());

    const s3: S3UnderTest = await startS3Child();
    cleanups.push(() => s3.stop());
    sampler.track({ name: 's3-server', pids: () => s3.pids() });
    const hook = await startReceiver([200]);
    cleanups.push(() => hook.close());
    const files = await startSampleServer(Object.values(corpus).flat());
    cleanups.push(() => files.close());
    const inboxDir = path.join(workDir, 'inbox');
    await mkdir(inboxDir, { recursive: true });

    const baseEnv: Record<string, string> = {
      NODE_ENV: 'test',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      REDIS_URL: redis.url,
      QUEUE_PREFIX: prefix,
      DATABASE_URL: pgUnder.url,
      // Migrations and other session-holding commands go around PgBouncer.
      DATABASE_MIGRATION_URL: adminDbUrl,
      STORAGE_DRIVER: 's3',
      S3_ENDPOINT: s3.endpoint,
      S3_BUCKET: s3.bucket,
      S3_REGION: s3.region,
      S3_ACCESS_KEY_ID: s3.accessKeyId,
      S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      S3_FORCE_PATH_STYLE: 'true',
      MASTER_KEY: randomBytes(32).toString('base64'),
      DATA_DIR: path.join(workDir, 'data'),
      // The load's URLs and the receiver are on 127.0.0.1: a test-only setting, refused in production.
      ALLOW_PRIVATE_URLS: 'true',
      FILE_SOURCE_ROOT: inboxDir,
      // Short-TTL media must be swept during the load, not a minute later.
      SWEEP_CRON: '*/5 * * * * *',
      JOB_LOCK_SECONDS: '10',
      RECONCILE_AFTER_SECONDS: '10',
      WEBHOOK_BACKOFF_MS: '1000',
      RATE_LIMIT_PER_MINUTE: '1000000',
      UPLOAD_CONCURRENCY_PER_KEY: '256',
      MAX_CONNECTIONS_PER_IP: '0',
      SHUTDOWN_TIMEOUT_SECONDS: '20',
    };
    say('creating the app');
    const created = await runCli(['apps', 'create', '--name', 'soak', '--webhook-url', hook.url, '--json'], baseEnv, 60_000);
    if (created.code !== 0) throw new Error(`apps create failed: ${created.stderr || created.stdout}`);
    const app = JSON.parse(created.stdout) as { app: { id: string }; apiKey: string };

    const roleEnv = async (role: string): Promise<Record<string, string>> => ({ ...baseEnv, ...(role === 'api' ? {} : { METRICS_PORT: String(await freePort()) }) });
    for (let i = 1; i <= opts.apis; i++) roles.push(new RoleProcess(`api-${i}`, 'api', await roleEnv('api')));
    for (let i = 1; i <= opts.workers; i++) roles.push(new RoleProcess(`worker-${i}`, 'worker', await roleEnv('worker')));
    for (let i = 1; i <= opts.sweepers; i++) roles.push(new RoleProcess(`sweeper-${i}`, 'sweeper', await roleEnv('sweeper')));
    say(`starting ${roles.length} mediaflow processes`);
    // Two at a time: each start compiles the sources through tsx, and there are two cores.
    // allSettled: a start that fails must not leave its pair starting unseen (and never stopped).
    for (let i = 0; i < roles.length; i += 2) {
      const started = await Promise.allSettled(roles.slice(i, i + 2).map((r) => r.start()));
      const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    }
    for (const r of roles) sampler.track(r);
    sampler.start();
    const apis = roles.filter((r) => r.role === 'api');
    const workers = roles.filter((r) => r.role === 'worker');
    const sweepers = roles.filter((r) => r.role === 'sweeper');

    // Devices: three, two destroyed during the load.
    const devices = ['soak-phone-1', 'soak-phone-2', 'soak-phone-3'];
    for (const id of devices) {
      const res = await fetch(`${apis[0]!.url}/v1/devices`, { method: 'POST', headers: { authorization: `Bearer ${app.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ id }) });
      if (res.status !== 201) throw new Error(`device ${id}: ${res.status} ${await res.text()}`);
    }
    const destroyedDevices = new Set<string>();

    const topology = [
      `redis: ${redis.mode === 'cluster' ? '3 masters + 3 replicas (redis-server cluster mode), REDIS_URL=' : 'one redis-server, REDIS_URL='}${redis.url}, QUEUE_PREFIX=${prefix}`,
      `postgres: ${pgUnder.mode === 'pgbouncer' ? 'PgBouncer (pool_mode=transaction, default_pool_size=40) → ' : ''}local PostgreSQL, fresh database ${dbName}`,
      `storage: s3rver in its own process (STORAGE_DRIVER=s3)`,
      `processes: ${apis.length} api, ${workers.length} worker (WORKER_CONCURRENCY 4), ${sweepers.length} sweeper; SWEEP_CRON every 5 s, JOB_LOCK_SECONDS 10`,
      `load: ${opts.media} media at up to ${opts.rate}/s with at most ${opts.maxBacklog} unfinished, ways in ${WAYS.join(', ')}; faults: ${opts.faults.join(', ') || 'none'}`,
    ];
    for (const l of topology) say(l);

    // --- the load ------------------------------------------------------------------------------
    const client = new SoakClient({
      apis: () => apis.map((a) => a.url).filter((u): u is string => !!u),
      apiKey: app.apiKey,
      redisUrl: redis.url,
      prefix,
      appId: app.app.id,
      filesUrl: files.url,
      inboxDir,
      retryDeadlineMs: 180_000,
      destroyedDevices,
    });
    cleanups.push(() => client.close());
    const random = rng(opts.seed);
    const plan = planSubmissions(opts, corpus, random, devices);
    const baselineCount = Math.round(opts.media * opts.baselineShare);
    const loadStart = Date.now();
    const loadDeadline = loadStart + opts.loadSeconds * 1000;
    // The fault phase starts when the baseline's last media has been sent.
    let faultsAt = Infinity;
    let markFaultPhase!: () => void;
    const faultPhase = new Promise<void>((r) => (markFaultPhase = r));
    const events: FaultEvent[] = [];
    const note = (fault: FaultEvent['fault'], detail: string, at = Date.now()) => {
      events.push({ fault, at, t: (at - loadStart) / 1000, detail });
      say(`${fault}: ${detail}`);
    };

    let cutUpload: Evidence['cutUpload'];
    const faultTasks: Array<Promise<void>> = [];
    const restarting: Array<Promise<void>> = [];
    let loadDone = false;
    // The other faults run one after another, a gap apart, so each one's effect is its own; the
    // fault phase lasts as long as that script, and its media are spread over it.
    const steps: Array<() => Promise<void>> = [];
    const sentCount = (): number => submissions.length;
    const submissionsTotal = (): number => plan.length;
    const at = (_label: string, fn: () => Promise<void>) => steps.push(fn);
    // Worker kills on a timer through the fault phase; each killed worker is restarted at once.
    if (opts.faults.includes('worker-kill')) {
      faultTasks.push(
        (async () => {
          await faultPhase;
          await sleep(Math.max(0, faultsAt + 5000 - Date.now()));
          while (!loadDone) {
            const up = workers.filter((w) => w.current);
            const victim = up[Math.floor(random() * up.length)];
            if (victim) {
              // Mid-job: wait (a few seconds at most) for media being processed.
              let busy = 0;
              for (let i = 0; i < 100 && busy === 0; i++) {
                busy = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM media WHERE status = 'processing'`).then((r) => r.rows[0]!.n, () => 0);
                if (busy === 0) await sleep(50);
              }
              await victim.kill();
              note('worker-kill', `SIGKILL ${victim.name} (${busy} media processing across workers)`);
              restarting.push(victim.restart().catch((err: unknown) => note('worker-kill', `restart of ${victim.name} failed: ${String(err)}`)));
            }
            await sleep(opts.workerKillEverySeconds * 1000);
          }
        })(),
      );
    }
    if (opts.faults.includes('api-kill')) {
      at('api-kill', async () => {
        const victim = apis[apis.length - 1]!;
        const filename = `cut-upload-${randomBytes(4).toString('hex')}.jpg`;
        const up = streamingUpload(`${victim.url}/v1/media`, { key: app.apiKey, filename, type: 'image/jpeg', fields: { kind: 'image' } });
        up.send(corpus.photo[3]!.bytes.subarray(0, 256 * 1024));
        await sleep(500);
        await victim.kill();
        const seen = await Promise.race([up.response.then((r) => `HTTP ${r.status}`, (err: Error) => `cut (${(err.cause as { code?: string } | undefined)?.code ?? err.message})`), sleep(10_000).then(() => 'no answer in 10 s')]);
        cutUpload = { clientSawCut: seen.startsWith('cut'), filename, detail: seen };
        note('api-kill', `SIGKILL ${victim.name} with a 256 KiB upload half sent; the client saw: ${seen}`);
        await sleep(2000);
        await victim.restart();
        note('api-kill', `${victim.name} restarted`);
      });
    }
    at('device-1', async () => {
      await destroyDevice(devices[0]!);
    });
    if (opts.faults.includes('redis-master-kill')) {
      at('redis', async () => note('redis-master-kill', await redis.killMaster()));
    }
    if (opts.faults.includes('pgbouncer-stop') && pgUnder.outage) {
      at('pgbouncer', async () => {
        note('pgbouncer-stop', `PgBouncer down for ${opts.outageSeconds} s`);
        note('pgbouncer-stop', await pgUnder.outage!(opts.outageSeconds * 1000));
      });
    }
    if (opts.faults.includes('s3-stop')) {
      at('s3', async () => {
        note('s3-stop', `S3 down for ${opts.outageSeconds} s`);
        note('s3-stop', await s3.outage(opts.outageSeconds * 1000));
      });
    }
    at('device-2', async () => {
      await destroyDevice(devices[1]!);
      if (!opts.faults.includes('sweeper-kill')) return;
      // A sweeper mid-batch: rows in `deleting` are a batch (or the device purge) under way. Both
      // sweepers go, so the one holding the batch is certainly among them.
      const until = Date.now() + 60_000;
      while (Date.now() < until) {
        const n = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM media WHERE status = 'deleting'`).then((r) => r.rows[0]!.n, () => 0);
        if (n > 0) {
          await Promise.all(sweepers.map((s) => s.kill()));
          note('sweeper-kill', `SIGKILL ${sweepers.map((s) => s.name).join(' and ')} while ${n} media were mid-deletion`);
          await sleep(2000);
          for (const s of sweepers) await s.restart();
          note('sweeper-kill', 'sweepers restarted');
          return;
        }
        await sleep(15);
      }
      note('sweeper-kill', 'no batch seen in flight within 60 s; not killed');
    });

    // Each step fires when its share of the fault phase's media has been sent, so the faults keep
    // pace with the load whatever the service's speed.
    // The load holds a step's later media until that step has begun, so a long step (an outage
    // and its restarts) never makes the next one bunch up against it.
    const thresholds = steps.map((_, i) => baselineCount + Math.round(((i + 1) * (submissionsTotal() - baselineCount)) / (steps.length + 1)));
    let stepsStarted = 0;
    faultTasks.push(
      (async () => {
        await faultPhase;
        for (const [i, step] of steps.entries()) {
          while (sentCount() < thresholds[i]! && !loadDone) await sleep(100);
          stepsStarted = i + 1;
          await step().catch((err: unknown) => note('fault', `failed: ${String(err)}`));
        }
      })(),
    );

    async function destroyDevice(id: string): Promise<void> {
      destroyedDevices.add(id);
      for (let attempt = 0; attempt < 20; attempt++) {
        const api = apis.find((a) => a.url);
        const res = api ? await fetch(`${api.url}/v1/devices/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${app.apiKey}` } }).catch(() => undefined) : undefined;
        if (res?.status === 204) {
          const n = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM media WHERE device_id = $1`, [id]).then((r) => r.rows[0]!.n, () => -1);
          note('device-destroy', `DELETE /v1/devices/${id} → 204 (${n} media of it)`);
          return;
        }
        await sleep(1000);
      }
      note('device-destroy', `DELETE /v1/devices/${id} never answered 204`);
    }

    // Open loop: start one media every 1/rate s, whatever the service does; cap what is in flight.
    say(`load: ${opts.media} media at ${opts.rate}/s (${baselineCount} before the first fault)`);
    const submissions: Submission[] = [];
    const inFlight = new Set<Promise<void>>();
    const progress = setInterval(() => {
      const acc = submissions.filter((s) => s.outcome === 'accepted').length;
      say(`${submissions.length} started, ${acc} accepted, ${inFlight.size} in flight`);
    }, 15_000);
    // The backlog (accepted, not yet ready/failed/deleted) is polled; past `maxBacklog` the load
    // waits, so latency measures the service rather than a queue the client piled up.
    let terminal = 0;
    const backlogPoll = setInterval(() => {
      void db
        .query<{ n: number }>(`SELECT count(*)::int AS n FROM media WHERE status IN ('ready', 'failed', 'deleted')`)
        .then((r) => (terminal = r.rows[0]!.n), () => undefined);
    }, 500);
    let accepted = 0;
    const rate = opts.rate;
    let nextAt = loadStart;
    for (let i = 0; i < plan.length; i++) {
      for (;;) {
        const now = Date.now();
        if (now > loadDeadline) break;
        const stepsDue = thresholds.filter((t) => t < i).length;
        if (now >= nextAt && inFlight.size < 200 && accepted - terminal <= opts.maxBacklog && stepsStarted >= stepsDue) break;
        await sleep(Math.max(5, Math.min(50, nextAt - now)));
      }
      if (Date.now() > loadDeadline) break;
      // Never more than one media early to make up for time spent waiting on the backlog.
      nextAt = Math.max(nextAt, Date.now() - 1000 / rate) + 1000 / rate;
      if (i === baselineCount) {
        faultsAt = Date.now();
        say(`fault phase: ${opts.media - baselineCount} media, ${steps.length} faults spread over them${opts.faults.includes('worker-kill') ? `, a worker killed every ${opts.workerKillEverySeconds} s` : ''}`);
        markFaultPhase();
      }
      const p = plan[i]!;
      const sub: Submission = { ...p, seq: i, phase: i < baselineCount ? 'baseline' : 'faults', startedAt: Date.now(), answers: [] };
      if (sub.deviceId && destroyedDevices.has(sub.deviceId)) delete sub.deviceId;
      submissions.push(sub);
      const task = client
        .submit(sub)
        .then(() => {
          if (sub.outcome === 'accepted') accepted++;
        })
        .finally(() => inFlight.delete(task));
      inFlight.add(task);
    }
    clearInterval(backlogPoll);
    markFaultPhase();
    await Promise.all(inFlight);
    const loadEnd = Date.now();
    loadDone = true;
    clearInterval(progress);
    say(`load done in ${((loadEnd - loadStart) / 1000).toFixed(0)} s; waiting for the faults to finish`);
    await Promise.all(faultTasks);
    await Promise.all(restarting);

    // --- settle --------------------------------------------------------------------------------
    say('settling: every media terminal, every webhook delivered');
    const acceptedIds = submissions.filter((s) => s.outcome === 'accepted').map((s) => s.mediaId!);
    const settleDeadline = Date.now() + opts.settleSeconds * 1000;
    let settled = false;
    let lastState = '';
    let lastChange = Date.now();
    let lastJobCheck = 0;
    while (Date.now() < settleDeadline) {
      const { rows } = await db
        .query<{ open: number; known: number; pending: number; delivered: string[] }>(
          `SELECT (SELECT count(*)::int FROM media WHERE status NOT IN ('ready', 'failed', 'deleted')) AS open,
                  (SELECT count(*)::int FROM media WHERE id = ANY($1)) AS known,
                  (SELECT count(*)::int FROM webhook_deliveries WHERE status <> 'delivered') AS pending,
                  (SELECT coalesce(array_agg(id), '{}') FROM webhook_deliveries WHERE status = 'delivered') AS delivered`,
          [acceptedIds],
        )
        .catch(() => ({ rows: [] as Array<{ open: number; known: number; pending: number; delivered: string[] }> }));
      const r = rows[0];
      if (r) {
        const seen = new Set(hook.received.map((x) => receivedId(x.body)));
        const quiet = r.open === 0 && r.pending === 0 && r.delivered.every((id) => seen.has(id));
        if (quiet && r.known === acceptedIds.length) {
          settled = true;
          break;
        }
        // Producer jobs the worker refused before writing a row (a destroyed device) end as failed
        // jobs, not rows: settled too, once every missing one is.
        if (quiet && Date.now() - lastJobCheck > 5000) {
          lastJobCheck = Date.now();
          const states = Object.values(await jobStatesOf(redis, db, acceptedIds).catch(() => ({ x: '?' })));
          if (states.length === acceptedIds.length - r.known && states.every((st) => st.startsWith('failed'))) {
            settled = true;
            break;
          }
        }
        // Nothing in flight and nothing moved for a minute and a half (longer than any retry
        // backoff or lease here): what is missing will not come; stop waiting.
        const state = `${r.open} ${r.known} ${r.pending} ${r.delivered.length} ${seen.size}`;
        if (state !== lastState) {
          lastState = state;
          lastChange = Date.now();
        } else if (r.open === 0 && r.pending === 0 && Date.now() - lastChange > 90_000) {
          break;
        }
      }
      await sleep(1000);
    }
    say(settled ? 'settled' : `not settled within ${opts.settleSeconds} s; checking what there is`);
    sampler.stop();
    const peakRss = sampler.result();
    const cpu = sampler.cpuSeconds();
    // What each service did per media, for docs/scaling.md's 100x estimates. The soak's own queries
    // (backlog and settle polls, the sweeper-kill watch) are counted and taken off.
    const usage = {
      s3: await s3.stats().catch(() => ({}) as Record<string, number>),
      redis: await redis.commandCounts().catch(() => []),
      pg: (
        await db.query<{ xact: string; ins: string; upd: string; del: string }>(
          'SELECT xact_commit + xact_rollback AS xact, tup_inserted AS ins, tup_updated AS upd, tup_deleted AS del FROM pg_stat_database WHERE datname = current_database()',
        )
      ).rows[0],
      ownQueries,
      loadAvg: os.loadavg(),
    };
    const jobStates = await jobStatesOf(redis, db, acceptedIds);

    say('stopping the mediaflow processes (SIGTERM)');
    await Promise.all(roles.map((r) => r.stop()));
    const stoppedAt = Date.now();

    // --- evidence and verdict ------------------------------------------------------------------
    const rows = (
      await db.query<MediaRowLite>(
        `SELECT id, status, error_code, delete_reason, device_id, storage_key, variants, original_name, expires_at, deleted_at, ready_at, created_at FROM media`,
      )
    ).rows;
    const audits = (await db.query<{ media_id: string; reason: string | null; at: Date }>(`SELECT media_id, reason, at FROM audit_events WHERE event = 'media.deleted'`)).rows;
    const deliveries = (await db.query<{ id: string; event: string; media_id: string | null; status: string }>(`SELECT id, event, media_id, status FROM webhook_deliveries`)).rows;
    // What killed runs left: an object written by a run SIGKILLed before its commit belongs to no
    // row. mediaflow leaves those to `mediaflow orphans --fix` (run on a schedule in production);
    // the soak runs it once, as an operator would, and checks it touches nothing a row needs.
    const bucketBefore = await listBucket(s3);
    const repairRun = await runCli(['orphans', '--fix', '--min-age', '0', '--json'], baseEnv, 300_000);
    let repair: Evidence['repair'];
    try {
      const r = JSON.parse(repairRun.stdout) as { objectsWithoutRow: { count: number; items: Array<{ why: string }> }; rowsWithoutObject: { count: number }; fixed: { objectsDeleted: number; rowsMarkedFailed: number } };
      repair = { objectsWithoutRow: r.objectsWithoutRow.count, why: r.objectsWithoutRow.items.map((i) => i.why), rowsWithoutObject: r.rowsWithoutObject.count, objectsDeleted: r.fixed.objectsDeleted, rowsMarkedFailed: r.fixed.rowsMarkedFailed, bucketBefore };
    } catch {
      repair = { error: `mediaflow orphans --fix exited ${repairRun.code}: ${(repairRun.stderr || repairRun.stdout).slice(-300)}`, bucketBefore };
    }
    const bucketKeys = await listBucket(s3);
    // A job's scratch directory is os.tmpdir()/mediaflow-<media id>-XXXXXX (src/jobs/process-media.ts):
    // any left for this run's media is plaintext a finished or killed job did not remove.
    const ids = new Set(rows.map((r) => r.id));
    const scratchLeft = (await readdir(os.tmpdir()).catch(() => [] as string[])).filter((f) => {
      const m = /^mediaflow-(med_[A-Za-z0-9]+)-/.exec(f);
      return !!m && ids.has(m[1]!);
    });
    const evidence: Evidence = {
      submissions,
      rows,
      audits,
      deliveries,
      received: hook.received.map((r) => ({ id: receivedId(r.body), body: r.body })),
      bucketKeys,
      scratchLeft,
      destroyedDevices: [...destroyedDevices],
      cutUpload,
      peakRss,
      rssLimitBytes: RSS_LIMIT_BYTES,
      jobStates,
      repair,
    };
    const lines = checkInvariants(evidence);
    const overdue = rows.filter((r) => r.status === 'ready' && r.expires_at.getTime() < stoppedAt - OVERDUE_MS);
    lines.splice(lines.findIndex((l) => l.name.startsWith('nothing deleted before')) + 1, 0, {
      name: `every media past its expiresAt deleted by the sweeps (within ${OVERDUE_MS / 1000} s)`,
      held: overdue.length === 0,
      detail: `${rows.filter((r) => r.expires_at.getTime() < stoppedAt).length} media expired before the end; ${overdue.length} still ready${overdue.length ? ` (${overdue.slice(0, 3).map((r) => r.id).join(', ')})` : ''}`,
    });
    if (!settled) lines.unshift({ name: `everything settled within ${opts.settleSeconds} s of the load`, held: false, detail: 'see the lines below' });
    const sent = submissions.length;
    lines.unshift({ name: 'the whole load was sent within its time bound', held: sent === plan.length, detail: `${sent} of ${plan.length} media started in ${((loadEnd - loadStart) / 1000).toFixed(0)} s (bound ${opts.loadSeconds} s)` });

    const measures = measure(submissions, rows, peakRss, roles, events);
    measures.push(...usageLines(usage, cpu, rows.length, loadAtStart));
    const held = lines.filter((l) => l.held).length;
    const broken = lines.length - held;
    const text = formatReport(topology, events, lines, measures, held, broken);
    if (broken > 0 && opts.keep) {
      for (const r of roles) await writeFile(path.join(workDir, `${r.name}.log`), r.output());
    }
    const report: SoakReport = { options: opts, topology, lines, measures, faults: events, held, broken, text, seconds: (Date.now() - t0) / 1000 };
    if (opts.jsonOut) await writeFile(opts.jsonOut, JSON.stringify({ ...report, text: undefined }, null, 2));
    return report;
  } finally {
    tearDown = undefined;
    await cleanUp();
  }
}

/** What the ingest queue says of accepted media that have no row (their job is all there is). */
async function jobStatesOf(redis: RedisUnderTest, db: pg.Pool, acceptedIds: string[]): Promise<Record<string, string>> {
  const { rows } = await db.query<{ id: string }>('SELECT id FROM media WHERE id = ANY($1)', [acceptedIds]).catch(() => ({ rows: [] as Array<{ id: string }> }));
  const known = new Set(rows.map((r) => r.id));
  const missing = acceptedIds.filter((id) => !known.has(id));
  if (missing.length === 0) return {};
  const connection = openRedis(redis.url, { maxRetriesPerRequest: 1 });
  const queue = new Queue(JOBS.ingest.queue, { connection, prefix: redis.prefix });
  const out: Record<string, string> = {};
  try {
    for (const id of missing.slice(0, 500)) {
      const job = await queue.getJob(id).catch(() => undefined);
      out[id] = job ? `${await job.getState()}, ${job.attemptsMade} attempts${job.failedReason ? `, ${job.failedReason.slice(0, 120)}` : ''}` : 'no job in Redis';
    }
  } finally {
    await queue.close();
    await connection.quit().catch(() => connection.disconnect());
  }
  return out;
}

function receivedId(body: string): string {
  try {
    return String((JSON.parse(body) as { id?: unknown }).id ?? '');
  } catch {
    return '';
  }
}

interface PlannedMedia {
  sample: Sample;
  way: Way;
  deviceId?: string;
  ttlSeconds?: number;
}

/** Which file, which way in, which device and lifetime each media gets: fixed by the seed. */
function planSubmissions(opts: SoakOptions, corpus: Record<string, Sample[]>, random: () => number, devices: string[]): Array<PlannedMedia> {
  const plan: PlannedMedia[] = [];
  for (let i = 0; i < opts.media; i++) {
    const group = pickGroup(random());
    const samples = corpus[group]!;
    const sample = samples[Math.floor(random() * samples.length)]!;
    // base64 carries the file in JSON: kept to files a client would inline (under 1 MB).
    let way = WAYS[i % WAYS.length]!;
    if (way === 'base64' && sample.bytes.length > 1_000_000) way = 'multipart';
    const p: PlannedMedia = { sample, way };
    const r = random();
    // One in eight belongs to a device (two of the three are destroyed during the run).
    if (r < 0.125) p.deviceId = devices[Math.floor(random() * devices.length)];
    // One in ten lives a short while (20–60 s by default), so sweeps delete during the load.
    if (random() < 0.1) p.ttlSeconds = opts.shortTtl[0] + Math.floor(random() * (opts.shortTtl[1] - opts.shortTtl[0] + 1));
    plan.push(p);
  }
  return plan;
}

/** Every sample at `/s/<id>`, for URL ingest by the API and by producers. */
async function startSampleServer(samples: Sample[]): Promise<{ url: string; close(): Promise<void> }> {
  const byId = new Map(samples.map((s) => [s.id, s]));
  const server = http.createServer((req, res) => {
    const s = byId.get((req.url ?? '').replace(/^\/s\//, ''));
    if (!s) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': s.mime, 'content-length': s.bytes.length }).end(s.bytes);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function listBucket(s3: S3UnderTest): Promise<string[]> {
  const client = new S3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, ContinuationToken: token }));
      for (const o of page.Contents ?? []) keys.push(o.Key ?? '');
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket }));
    for (const u of uploads.Uploads ?? []) keys.push(`upload:${u.Key ?? ''}`);
    return keys;
  } finally {
    client.destroy();
  }
}

async function main(): Promise<void> {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
  if (opts === 'help') {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  // Interrupted: the processes, Redis nodes, PgBouncer, S3 server and database go too.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`soak: ${sig}, tearing down\n`);
      void (tearDown?.() ?? Promise.resolve()).finally(() => process.exit(130));
    });
  }
  const report = await runSoak(opts);
  process.stdout.write(`${report.text}\n`);
  process.exitCode = report.broken > 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    process.stderr.write(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
