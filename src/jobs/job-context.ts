import type { Logger } from '../log.js';
import type { JobName, JobPayload } from '../queue/registry.js';
import type { Runtime } from '../runtime.js';

/** What the consumer hands a handler besides the parsed payload: this attempt of this job. */
export interface JobContext {
  /** The job's id: the id of what it works on (a media id, a delivery id, …). */
  id: string;
  /** A child logger naming the queue, the job id, the attempt and the media when there is one. */
  log: Logger;
  attempt: number;
  /** This is the last attempt the job's options allow. */
  finalAttempt: boolean;
  /**
   * Aborted at JOB_TIMEOUT_SECONDS, and when a graceful stop runs out of patience: the handler stops
   * and the job goes back to the queue.
   */
  signal: AbortSignal;
  /** Reports progress in percent; throttled, so calling it often costs nothing. */
  progress(percent: number): void;
}

/** A job's handler: safe to run twice (a duplicate delivery does nothing twice). */
export type JobHandler<N extends JobName> = (rt: Runtime, payload: JobPayload<N>, job: JobContext) => Promise<unknown>;
