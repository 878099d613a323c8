import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { buildApp } from './api/app.js';
import { startMetricsServer, type MetricsServer } from './api/plugins/metrics.js';
import type { Config } from './config/index.js';
import * as mediaRepo from './db/repos/media.js';
import { isPermanent } from './domain/errors.js';
import type { Logger } from './log.js';
import { jobsTotal, queueDepth } from './metrics.js';
import { processMedia } from './pipeline/process-media.js';
import { createSafeAgent } from './net/safe-agent.js';
import { createRedis } from './queue/connection.js';
import { JOBS, type JobName } from './queue/registry.js';
import { sweep, sweepSlots } from './retention/sweep.js';
import { createRuntime, type Runtime } from './runtime.js';
import { deliverWebhook } from './webhooks/deliver.js';

export const ROLES = ['api', 'worker', 'sweeper', 'all'] as const;
export type Role = (typeof ROLES)[number];

export interface Running {
  rt: Runtime;
  app?: FastifyInstance;
  /** The bound address of the API, when it runs. */
  url?: string;
  /** The metrics server of a role without the API, when METRICS_PORT is set. */
  metricsUrl?: string;
  stop(): Promise<void>;
}

type Handler = (job: Job, rt: Runtime, log: Logger) => Promise<unknown>;

/** Aborted when a graceful stop runs out of patience: running media jobs stop and go back to the queue. */
const jobStops = new WeakMap<Runtime, AbortSignal>();

/** Exactly one handler per job name: start-up refuses anything else. */
const HANDLERS: Record<JobName, Handler> = {
  ingest: async (job, rt, log) => {
    const payload = JOBS.ingest.schema.safeParse(job.data);
    if (!payload.success) throw new UnrecoverableError(`invalid ingest payload: ${payload.error.issues[0]?.message}`);
    const data = { ...payload.data, mediaId: payload.data.mediaId ?? `med_q${job.id}` };
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(new Error('job timed out')), rt.config.JOB_TIMEOUT_SECONDS * 1000);
    // A transient error: processMedia puts the row back to `queued` and BullMQ retries the job.
    const stopSignal = jobStops.get(rt);
    const onStop = () => ac.abort(new Error('the worker is shutting down; the job will be retried'));
    if (stopSignal?.aborted) onStop();
    stopSignal?.addEventListener('abort', onStop, { once: true });
    try {
      const outcome = await processMedia(
        {
          ...rt,
          log,
        },
        data,
        {
          attempt: job.attemptsMade + 1,
          finalAttempt: job.attemptsMade + 1 >= (job.opts.attempts ?? 1),
          signal: ac.signal,
          onProgress: throttle((p: number) => job.updateProgress(p).catch(() => undefined), 1000),
        },
      );
      if (outcome === 'failed') throw new UnrecoverableError('media rejected');
      return outcome;
    } catch (err) {
      if (isPermanent(err)) throw new UnrecoverableError((err as Error).message);
      throw err;
    } finally {
      clearTimeout(timer);
      stopSignal?.removeEventListener('abort', onStop);
    }
  },
  webhook: async (job, rt, log) => {
    const payload = JOBS.webhook.schema.safeParse(job.data);
    if (!payload.success) throw new UnrecoverableError('invalid webhook payload');
    return deliverWebhook({ pool: rt.pool, log, agent: webhookAgent(rt), allowPrivateNetworks: rt.config.ALLOW_PRIVATE_URLS }, payload.data.deliveryId, {
      finalAttempt: job.attemptsMade + 1 >= (job.opts.attempts ?? 1),
    });
  },
  'retention-sweep': async (job, rt, log) => {
    const payload = JOBS['retention-sweep'].schema.safeParse(job.data);
    if (!payload.success) throw new UnrecoverableError('invalid sweep payload');
    const res = await sweep(rt, {
      batchSize: rt.config.SWEEP_BATCH_SIZE,
      maxRetentionSeconds: rt.config.MAX_RETENTION_SECONDS,
      appId: payload.data.appId,
      deviceId: payload.data.deviceId,
      dryRun: payload.data.dryRun,
    });
    const slots = await sweepSlots(rt.pool);
    if (res.deleted || res.failed || slots) log.info({ deleted: res.deleted, failed: res.failed, byReason: res.byReason, bytesFreed: res.bytesFreed, slots }, 'sweep done');
    return { deleted: res.deleted, failed: res.failed, bytesFreed: res.bytesFreed };
  },
};

const agents = new WeakMap<Runtime, ReturnType<typeof createSafeAgent>>();
function webhookAgent(rt: Runtime) {
  let a = agents.get(rt);
  if (!a) {
    a = createSafeAgent({ allowPrivateNetworks: rt.config.ALLOW_PRIVATE_URLS, connectTimeoutMs: 5000 });
    agents.set(rt, a);
  }
  return a;
}

function throttle<T extends unknown[]>(fn: (...a: T) => unknown, ms: number): (...a: T) => void {
  let last = 0;
  return (...a: T) => {
    const now = Date.now();
    if (now - last >= ms || (a[0] as unknown) === 100) {
      last = now;
      void fn(...a);
    }
  };
}

export function checkHandlers(): void {
  for (const name of Object.keys(JOBS) as JobName[]) {
    if (typeof HANDLERS[name] !== 'function') throw new Error(`job ${name} has no handler`);
  }
  for (const name of Object.keys(HANDLERS)) if (!(name in JOBS)) throw new Error(`handler ${name} has no job in the registry`);
}

function startWorker(rt: Runtime, name: JobName, concurrency: number, connection: Redis): Worker {
  const queue = JOBS[name].queue;
  const worker = new Worker(
    queue,
    async (job) => {
      const log = rt.log.child({ queue, jobId: job.id, attempt: job.attemptsMade + 1, ...(job.data?.mediaId ? { mediaId: job.data.mediaId } : {}) });
      return HANDLERS[name](job, rt, log);
    },
    {
      connection,
      prefix: rt.config.QUEUE_PREFIX,
      concurrency,
      lockDuration: rt.config.JOB_LOCK_SECONDS * 1000,
      stalledInterval: rt.config.JOB_LOCK_SECONDS * 1000,
      maxStalledCount: 3,
      autorun: true,
    },
  );
  worker.on('completed', () => jobsTotal.labels(queue, 'completed').inc());
  worker.on('failed', (job, err) => {
    const final = !job || err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
    jobsTotal.labels(queue, final ? 'failed' : 'retried').inc();
  });
  worker.on('error', (err) => rt.log.error({ err, queue }, 'worker error'));
  return worker;
}

/**
 * Re-enqueues rows the queue lost: `queued` rows whose job is gone (Redis restarted, enqueue failed
 * after the row was written), and pending webhook deliveries likewise. Job ids are deterministic,
 * so a job that does exist is never doubled.
 */
export async function reconcile(rt: Runtime): Promise<number> {
  let n = 0;
  const stale = await mediaRepo.findStale(rt.pool, rt.config.RECONCILE_AFTER_SECONDS);
  const q = rt.queues.get('ingest');
  const alive: string[] = [];
  for (const row of stale) {
    const state = await q.getJobState(row.id);
    if (state === 'waiting' || state === 'delayed' || state === 'active' || state === 'waiting-children' || state === 'prioritized') {
      alive.push(row.id);
      continue;
    }
    if (state === 'completed' || state === 'failed') await q.remove(row.id).catch(() => undefined);
    const { rows } = await rt.pool.query<{ source: string; source_url: string | null; staging_key: string | null; correlation_id: string | null }>(
      'SELECT source, source_url, staging_key, correlation_id FROM media WHERE id = $1',
      [row.id],
    );
    const r = rows[0];
    if (!r) continue;
    const source = r.source_url ? { type: 'url' as const, url: r.source_url } : r.staging_key ? { type: 'storage' as const, key: r.staging_key } : null;
    if (!source) {
      await mediaRepo.markFailed(rt.pool, row.id, 'NOT_FOUND', 'the source of this media was lost before processing');
      continue;
    }
    await rt.queues.add('ingest', { v: 1, mediaId: row.id, appId: row.app_id, source, ...(r.correlation_id ? { correlationId: r.correlation_id } : {}) }, row.id);
    await mediaRepo.touch(rt.pool, row.id);
    rt.log.warn({ mediaId: row.id, previousState: state }, 'reconciler re-enqueued media the queue had lost');
    n++;
  }
  // A row whose job still waits (a long backlog, or no worker running) is refreshed, so it is not
  // looked at again before RECONCILE_AFTER_SECONDS.
  if (alive.length) await rt.pool.query(`UPDATE media SET updated_at = now() WHERE id = ANY($1::text[]) AND status IN ('queued', 'processing')`, [alive]);
  const { rows: deliveries } = await rt.pool.query<{ id: string }>(
    `SELECT id FROM webhook_deliveries WHERE status = 'pending' AND created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT 500`,
    [rt.config.RECONCILE_AFTER_SECONDS],
  );
  const wq = rt.queues.get('webhook');
  for (const d of deliveries) {
    const state = await wq.getJobState(d.id);
    if (state !== 'unknown') continue;
    await rt.queues.add('webhook', { v: 1, deliveryId: d.id }, d.id);
    n++;
  }
  return n;
}

async function updateDepthGauges(rt: Runtime): Promise<void> {
  for (const name of Object.keys(JOBS) as JobName[]) {
    const counts = await rt.queues.get(name).getJobCounts('waiting', 'active', 'delayed', 'failed');
    for (const [state, v] of Object.entries(counts)) queueDepth.labels(JOBS[name].queue, state).set(v);
  }
}

/** Starts the roles in this process; `stop` drains them gracefully (no job dropped). */
export async function startRoles(config: Config, log: Logger, role: Role, opts: { store?: Runtime['store'] } = {}): Promise<Running> {
  checkHandlers();
  const rt = await createRuntime(config, log, opts);
  const api = role === 'api' || role === 'all';
  const work = role === 'worker' || role === 'all';
  const sweeps = role === 'sweeper' || role === 'all';
  await warnAboutRedis(rt);
  const workers: Worker[] = [];
  const connections: Redis[] = [];
  const timers: NodeJS.Timeout[] = [];
  const jobStop = new AbortController();
  jobStops.set(rt, jobStop.signal);
  let app: FastifyInstance | undefined;
  let url: string | undefined;
  let metrics: MetricsServer | undefined;

  if (work) {
    const conn = createRedis(config.REDIS_URL, 'worker');
    connections.push(conn);
    workers.push(startWorker(rt, 'ingest', config.WORKER_CONCURRENCY, conn));
    workers.push(startWorker(rt, 'webhook', 10, conn));
  }
  if (work || sweeps) {
    // The sweeper runs the reconciler too: with every worker down, media whose job the queue lost
    // is still handed back to the queue, to wait for the workers rather than be lost.
    const tick = async () => {
      await reconcile(rt).catch((err) => log.warn({ err: String(err) }, 'reconcile failed'));
      await updateDepthGauges(rt).catch(() => undefined);
    };
    timers.push(setInterval(() => void tick(), Math.max(1000, (config.RECONCILE_AFTER_SECONDS * 1000) / 2)));
  }
  if (sweeps) {
    const conn = createRedis(config.REDIS_URL, 'worker');
    connections.push(conn);
    workers.push(startWorker(rt, 'retention-sweep', 1, conn));
    await rt.queues
      .get('retention-sweep')
      .upsertJobScheduler('retention-sweep', { pattern: config.SWEEP_CRON }, { name: 'retention-sweep', data: { v: 1 }, opts: JOBS['retention-sweep'].options });
  }
  if (api) {
    app = await buildApp(rt);
    url = await app.listen({ port: config.PORT, host: config.HOST });
    log.info({ url, role }, 'mediaflow API listening');
  } else if (config.METRICS_PORT > 0) {
    // No API in this process: Prometheus scrapes this role's own numbers here.
    metrics = await startMetricsServer(rt, config.METRICS_PORT, config.HOST);
    log.info({ url: metrics.url, role }, 'metrics listening');
  }
  let stopping: Promise<void> | undefined;
  return {
    rt,
    app,
    url,
    metricsUrl: metrics?.url,
    stop() {
      stopping ??= (async () => {
        for (const t of timers) clearInterval(t);
        // The API stops taking requests (new ones get 503) and the workers stop taking jobs, both at
        // once; requests and jobs in flight get most of the shutdown budget to finish on their own.
        // Past that grace, uploads still streaming are cut (the client sees the error; a cut upload
        // keeps no row and no staging object) and running media jobs are aborted, which puts them
        // back to `queued` for a retry, so the process exits within SHUTDOWN_TIMEOUT_SECONDS.
        const graceMs = Math.max(1000, config.SHUTDOWN_TIMEOUT_SECONDS * 1000 * 0.6);
        const grace = setTimeout(() => {
          log.warn({ graceMs }, 'shutdown grace is over: cutting open requests and aborting running jobs');
          app?.server.closeAllConnections();
          jobStop.abort();
        }, graceMs);
        grace.unref();
        await Promise.allSettled([
          app ? app.close().catch((err) => log.error({ err }, 'closing the API failed')) : undefined,
          ...workers.map((w) => w.close()),
        ]);
        clearTimeout(grace);
        await metrics?.close();
        await Promise.allSettled(connections.map((c) => c.quit().catch(() => c.disconnect())));
        await rt.close();
        log.info('stopped');
      })();
      return stopping;
    },
  };
}

async function warnAboutRedis(rt: Runtime): Promise<void> {
  try {
    const policy = (await rt.redis.config('GET', 'maxmemory-policy')) as string[];
    if (policy[1] && policy[1] !== 'noeviction') rt.log.warn({ policy: policy[1] }, 'Redis maxmemory-policy is not noeviction: queued jobs can be evicted');
    const aof = (await rt.redis.config('GET', 'appendonly')) as string[];
    const save = (await rt.redis.config('GET', 'save')) as string[];
    if (aof[1] !== 'yes' && !save[1]) rt.log.warn('Redis persistence is off (no AOF, no RDB): a Redis restart loses queued jobs; the reconciler re-enqueues them from PostgreSQL');
  } catch {
    // CONFIG may be disabled on managed Redis; the checks are advice, not a gate.
  }
}
