import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

/** A progress read waits no longer: it decorates an answer and must never hold one up. */
const READ_TIMEOUT_MS = 250;

/**
 * A job's progress as its worker last reported it (`job.updateProgress`), 0–100, in one Redis call
 * (HGET of the job's hash). Undefined when the job is gone, has reported nothing numeric, or Redis
 * does not answer in time or at all: callers leave the progress out rather than fail.
 */
export async function readJobProgress(redis: Pick<Redis, 'hget'>, queue: Pick<Queue, 'toKey'>, jobId: string, timeoutMs = READ_TIMEOUT_MS): Promise<number | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const read = redis.hget(queue.toKey(jobId), 'progress').catch(() => null);
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)));
  try {
    return parseProgress(await Promise.race([read, late]));
  } finally {
    clearTimeout(timer);
  }
}

/** BullMQ stores progress as JSON (a number, or an object for other uses): only a number is a percentage. */
export function parseProgress(raw: string | null | undefined): number | undefined {
  if (raw === null || raw === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
  return Math.max(0, Math.min(100, Math.round(value)));
}
