import type { Worker } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './api/app.js';
import { startMetricsServer, type MetricsServer } from './api/plugins/metrics.js';
import type { Config } from './config/index.js';
import { checkHandlers, startConsumer } from './jobs/consumer.js';
import { reconcile } from './jobs/reconcile.js';
import { removeAbandonedScratch } from './jobs/scratch.js';
import type { Logger } from './log.js';
import { queueDepth } from './metrics.js';
import { configureTools } from './pipeline/ffmpeg/run.js';
import { closeRedis, createRedis, serversOf, type RedisConnection } from './queue/connection.js';
import { JOBS, SWEEP_SCHEDULER_ID, type JobName } from './queue/registry.js';
import { createRuntime, type Runtime } from './runtime.js';

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

async function updateDepthGauges(rt: Runtime): Promise<void> {
  for (const name of Object.keys(JOBS) as JobName[]) {
    const counts = await rt.queues.get(name).getJobCounts('waiting', 'active', 'delayed', 'failed');
    for (const [state, v] of Object.entries(counts)) queueDepth.labels(JOBS[name].queue, state).set(v);
  }
}

/** Starts the roles in this process; `stop` drains them gracefully (no job dropped). */
export async function startRoles(config: Config, log: Logger, role: Role, opts: { store?: Runtime['store'] } = {}): Promise<Running> {
  checkHandlers();
  configureTools({ ffmpeg: config.FFMPEG_PATH, ffprobe: config.FFPROBE_PATH, heifConvert: config.HEIF_CONVERT_PATH });
  const rt = await createRuntime(config, log, opts);
  const api = role === 'api' || role === 'all';
  const work = role === 'worker' || role === 'all';
  const sweeps = role === 'sweeper' || role === 'all';
  await warnAboutRedis(rt);
  const workers: Worker[] = [];
  const connections: RedisConnection[] = [];
  const timers: NodeJS.Timeout[] = [];
  const jobStop = new AbortController();
  let app: FastifyInstance | undefined;
  let url: string | undefined;
  let metrics: MetricsServer | undefined;
  const tickMs = Math.max(1000, (config.RECONCILE_AFTER_SECONDS * 1000) / 2);

  if (work) {
    // Plaintext scratch a killed worker left on this machine (its finally never ran).
    await removeAbandonedScratch({ maxAgeMs: (config.JOB_TIMEOUT_SECONDS + 60) * 1000, log }).catch(() => undefined);
    const conn = createRedis(config.REDIS_URL, 'worker');
    connections.push(conn);
    workers.push(startConsumer(rt, 'ingest', { concurrency: config.WORKER_CONCURRENCY, connection: conn, stopSignal: jobStop.signal }));
    workers.push(startConsumer(rt, 'webhook', { concurrency: config.WEBHOOK_CONCURRENCY, connection: conn, stopSignal: jobStop.signal }));
  }
  if (work || sweeps) {
    // The sweeper runs the reconciler too: with every worker down, media whose job the queue lost
    // is still handed back to the queue, to wait for the workers rather than be lost.
    const tick = async () => {
      await reconcile(rt).catch((err) => log.warn({ err: String(err) }, 'reconcile failed'));
      await updateDepthGauges(rt).catch(() => undefined);
    };
    timers.push(setInterval(() => void tick(), tickMs));
  }
  if (sweeps) {
    const conn = createRedis(config.REDIS_URL, 'worker');
    connections.push(conn);
    workers.push(startConsumer(rt, 'retention-sweep', { concurrency: 1, connection: conn, stopSignal: jobStop.signal }));
    const schedule = () =>
      rt.queues
        .get('retention-sweep')
        .upsertJobScheduler(SWEEP_SCHEDULER_ID, { pattern: config.SWEEP_CRON }, { name: 'retention-sweep', data: { v: 1 }, opts: JOBS['retention-sweep'].options });
    await schedule();
    // Redis can lose the schedule's next job: a Redis Cluster failover drops the writes its replica
    // had not received, a restart without persistence drops everything. The upsert is idempotent
    // (the next run's job id is fixed by its time), so it is repeated now and then, as the reconciler does for media.
    timers.push(setInterval(() => void schedule().catch((err) => log.warn({ err: String(err) }, 'could not renew the sweep schedule')), tickMs));
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
        // A BullMQ worker whose blocking connection was caught in a Redis Cluster failover may never
        // finish closing (seen with BullMQ 6.7 after a master was killed): past the budget, stop
        // waiting for it rather than hang the stop; its jobs' locks lapse and another worker takes them.
        const budgetMs = Math.max(graceMs + 1000, config.SHUTDOWN_TIMEOUT_SECONDS * 1000 - 1000);
        let budget: NodeJS.Timeout | undefined;
        const late = new Promise<'late'>((resolve) => (budget = setTimeout(() => resolve('late'), budgetMs)));
        const closed = Promise.allSettled([
          app ? app.close().catch((err) => log.error({ err }, 'closing the API failed')) : undefined,
          ...workers.map((w) => w.close()),
        ]);
        const overBudget = (await Promise.race([closed, late])) === 'late';
        if (overBudget) log.warn({ budgetMs }, 'a worker did not close within the shutdown budget; its jobs return to the queue when their locks lapse');
        clearTimeout(budget);
        clearTimeout(grace);
        await metrics?.close();
        await Promise.allSettled(connections.map((c) => (overBudget ? Promise.resolve(c.disconnect()) : closeRedis(c))));
        await rt.close();
        log.info('stopped');
      })();
      return stopping;
    },
  };
}

async function warnAboutRedis(rt: Runtime): Promise<void> {
  // On a cluster each master holds its own settings (and one of them holds every key of ours).
  for (const server of serversOf(rt.redis)) {
    const at = rt.redis === server ? undefined : `${server.options.host ?? ''}:${server.options.port ?? ''}`;
    try {
      const policy = (await server.config('GET', 'maxmemory-policy')) as string[];
      if (policy[1] && policy[1] !== 'noeviction') rt.log.warn({ policy: policy[1], at }, 'Redis maxmemory-policy is not noeviction: queued jobs can be evicted');
      const aof = (await server.config('GET', 'appendonly')) as string[];
      const save = (await server.config('GET', 'save')) as string[];
      if (aof[1] !== 'yes' && !save[1]) rt.log.warn({ at }, 'Redis persistence is off (no AOF, no RDB): a Redis restart loses queued jobs; the reconciler re-enqueues them from PostgreSQL');
    } catch {
      // CONFIG may be disabled on managed Redis; the checks are advice, not a gate.
    }
  }
}
