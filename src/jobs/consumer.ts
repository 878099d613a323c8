import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { RedisConnection } from '../queue/connection.js';
import { jobsTotal } from '../metrics.js';
import { JOBS, type JobName } from '../queue/registry.js';
import type { Runtime } from '../runtime.js';
import { deliverWebhookJob } from './deliver-webhook.js';
import { decideFailure } from './failure.js';
import type { JobContext, JobHandler } from './job-context.js';
import { processMediaJob } from './process-media.js';
import { sweepJob } from './sweep.js';

/** Exactly one handler per job name of the registry: `checkHandlers` refuses anything else at start-up. */
export const HANDLERS: { readonly [N in JobName]: JobHandler<N> } = {
  ingest: processMediaJob,
  webhook: deliverWebhookJob,
  'retention-sweep': sweepJob,
};

export function checkHandlers(handlers: Readonly<Record<string, unknown>> = HANDLERS): void {
  for (const name of Object.keys(JOBS)) {
    if (typeof handlers[name] !== 'function') throw new Error(`job ${name} has no handler`);
  }
  for (const name of Object.keys(handlers)) if (!(name in JOBS)) throw new Error(`handler ${name} has no job in the registry`);
}

export interface ConsumerOptions {
  concurrency: number;
  connection: RedisConnection;
  /** Aborted when a graceful stop runs out of patience: running jobs stop and go back to the queue. */
  stopSignal: AbortSignal;
}

/** A BullMQ worker on the job's queue, running its handler through `runJob`. */
export function startConsumer(rt: Runtime, name: JobName, opts: ConsumerOptions): Worker {
  const queue = JOBS[name].queue;
  const lockMs = rt.config.JOB_LOCK_SECONDS * 1000;
  const worker = new Worker(queue, (job) => runJob(rt, name, job, opts.stopSignal), {
    connection: opts.connection,
    prefix: rt.config.QUEUE_PREFIX,
    concurrency: opts.concurrency,
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: 3,
    autorun: true,
  });
  worker.on('completed', () => jobsTotal.labels(queue, 'completed').inc());
  worker.on('failed', (job, err) => {
    const final = !job || err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
    jobsTotal.labels(queue, final ? 'failed' : 'retried').inc();
  });
  worker.on('error', (err) => rt.log.error({ err, queue }, 'worker error'));
  return worker;
}

/**
 * One attempt of one job: the payload is parsed once against the registry's schema (a payload no
 * handler can read is final), the handler runs under the job timeout and the shutdown signal, and
 * what it throws is made final or left to retry by `decideFailure`.
 */
async function runJob(rt: Runtime, name: JobName, job: Job, stopSignal: AbortSignal): Promise<unknown> {
  const attempt = job.attemptsMade + 1;
  const finalAttempt = attempt >= (job.opts.attempts ?? 1);
  const mediaId = (job.data as { mediaId?: unknown } | undefined)?.mediaId;
  const log = rt.log.child({ queue: JOBS[name].queue, jobId: job.id, attempt, ...(mediaId ? { mediaId } : {}) });
  const payload = JOBS[name].schema.safeParse(job.data);
  if (!payload.success) throw new UnrecoverableError(`invalid ${name} payload: ${payload.error.issues[0]?.message}`);

  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error('job timed out')), rt.config.JOB_TIMEOUT_SECONDS * 1000);
  // Aborting puts a media back to `queued`, and BullMQ retries the job.
  const onStop = () => ac.abort(new Error('the worker is shutting down; the job will be retried'));
  if (stopSignal.aborted) onStop();
  stopSignal.addEventListener('abort', onStop, { once: true });
  const ctx: JobContext = {
    id: job.id ?? '',
    log,
    attempt,
    finalAttempt,
    signal: ac.signal,
    progress: throttle((p: number) => job.updateProgress(p).catch(() => undefined), 1000, PROGRESS_AFTER_MS),
  };
  try {
    return await (HANDLERS[name] as JobHandler<JobName>)(rt, payload.data, ctx);
  } catch (err) {
    if (decideFailure(err, { finalAttempt }).final && !(err instanceof UnrecoverableError)) {
      throw new UnrecoverableError(err instanceof Error ? err.message : String(err));
    }
    throw err;
  } finally {
    clearTimeout(timer);
    stopSignal.removeEventListener('abort', onStop);
  }
}

/**
 * A job shorter than this reports no progress at all: a small photo is ready before anyone could
 * read it, and each report is a Redis round trip and an event.
 */
const PROGRESS_AFTER_MS = 500;

/**
 * Calls `fn` at most once per `ms`, and not before `after` ms since the job began; 100 (the end)
 * is always reported once something was.
 */
function throttle(fn: (percent: number) => unknown, ms: number, after: number): (percent: number) => void {
  const begun = Date.now();
  let last = 0;
  return (percent) => {
    const now = Date.now();
    if (now - begun < after) return;
    if (now - last >= ms || (percent === 100 && last > 0)) {
      last = now;
      void fn(percent);
    }
  };
}
