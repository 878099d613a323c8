import { Queue, type JobsOptions } from 'bullmq';
import type { RedisConnection } from './connection.js';
import { AppError } from '../domain/errors.js';
import { JOBS, type JobName, type JobPayload } from './registry.js';

const ADD_TIMEOUT_MS = 1500;

/** The queues a process produces to, sharing one fail-fast connection. */
export class Queues {
  private readonly queues = new Map<string, Queue>();
  constructor(
    private readonly connection: RedisConnection,
    readonly prefix: string,
    /** Per-job option overrides from configuration (e.g. webhook backoff). */
    private readonly overrides: Partial<Record<JobName, JobsOptions>> = {},
  ) {}

  get(name: JobName): Queue {
    const qn = JOBS[name].queue;
    let q = this.queues.get(qn);
    if (!q) {
      q = new Queue(qn, { connection: this.connection, prefix: this.prefix });
      q.on('error', () => undefined);
      this.queues.set(qn, q);
    }
    return q;
  }

  /**
   * Adds a job after checking its payload against the registry's schema. The registry builds the job
   * id from the payload (the id of what it works on), so a repeated add is a no-op. Redis down → 503.
   */
  async add<N extends JobName>(name: N, payload: JobPayload<N>, opts: { delay?: number } = {}): Promise<void> {
    const parsed = JOBS[name].schema.parse(payload) as JobPayload<N>;
    const jobId = (JOBS[name].jobId as (p: JobPayload<N>) => string)(parsed);
    let timer: NodeJS.Timeout | undefined;
    try {
      // BullMQ waits for a connection that is reconnecting; a producer must not, so the wait is bounded.
      await Promise.race([
        this.get(name).add(name, parsed, { ...JOBS[name].options, ...this.overrides[name], jobId, ...opts }),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('redis did not answer within 1500 ms')), ADD_TIMEOUT_MS))),
      ]);
    } catch (err) {
      throw new AppError('QUEUE_UNAVAILABLE', 'the job queue is unavailable; nothing was kept, retry shortly', { cause: String((err as Error).message) });
    } finally {
      clearTimeout(timer);
    }
  }

  all(): Queue[] {
    return (Object.keys(JOBS) as JobName[]).map((n) => this.get(n));
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
  }
}
