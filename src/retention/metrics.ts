import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from '../metrics.js';

/** Due media not yet deleted (claimed or not), as the last sweep in this process counted them. */
export const sweepBacklog = new Gauge({
  name: 'mediaflow_sweep_backlog',
  help: 'Media due for deletion and not yet deleted, counted at the end of each sweep',
  registers: [registry],
});

/** Staging objects removed because their upload died before it became a media row (or settled without cleaning up). */
export const sweeperStagingDeletedTotal = new Counter({
  name: 'mediaflow_sweeper_staging_deleted_total',
  help: 'Orphaned staging objects deleted by the sweeper',
  registers: [registry],
});

/** How long one batch holds its lease (claim, delete bytes, finish): the longest any row is locked for. */
export const sweepBatchSeconds = new Histogram({
  name: 'mediaflow_sweep_batch_seconds',
  help: 'Duration of one sweep batch, from claim to the commit of its deletions',
  buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});
