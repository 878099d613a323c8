import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per process; every role registers what it moves. */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'mediaflow_' });

export const jobsTotal = new Counter({
  name: 'mediaflow_jobs_total',
  help: 'Jobs processed, by queue and outcome',
  labelNames: ['queue', 'outcome'] as const,
  registers: [registry],
});

export const processingSeconds = new Histogram({
  name: 'mediaflow_processing_seconds',
  help: 'Media processing time, by kind and transform',
  labelNames: ['kind', 'transform'] as const,
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
  registers: [registry],
});

export const bytesStoredTotal = new Counter({
  name: 'mediaflow_bytes_stored_total',
  help: 'Plaintext bytes of media stored',
  labelNames: ['kind'] as const,
  registers: [registry],
});

export const httpRequestsTotal = new Counter({
  name: 'mediaflow_http_requests_total',
  help: 'HTTP requests, by route and status',
  labelNames: ['method', 'route', 'status'] as const,
  registers: [registry],
});

export const httpSeconds = new Histogram({
  name: 'mediaflow_http_request_seconds',
  help: 'HTTP request duration, by route',
  labelNames: ['method', 'route'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const sweeperDeletionsTotal = new Counter({
  name: 'mediaflow_sweeper_deletions_total',
  help: 'Media deleted by the sweeper, by reason',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const sweeperBytesFreedTotal = new Counter({
  name: 'mediaflow_sweeper_bytes_freed_total',
  help: 'Stored bytes freed by the sweeper',
  registers: [registry],
});

export const sweepSeconds = new Histogram({
  name: 'mediaflow_sweep_seconds',
  help: 'Duration of one retention sweep',
  buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
  registers: [registry],
});

export const queueDepth = new Gauge({
  name: 'mediaflow_queue_depth',
  help: 'Jobs in a queue, by state',
  labelNames: ['queue', 'state'] as const,
  registers: [registry],
});

export const integrityFailuresTotal = new Counter({
  name: 'mediaflow_integrity_failures_total',
  help: 'Stored objects that failed authentication on read',
  registers: [registry],
});
