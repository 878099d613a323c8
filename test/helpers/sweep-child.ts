/**
 * One sweeper process for the concurrency test: it builds the runtime from its environment like
 * `mediaflow sweep` does, waits for `go` on stdin so that several start together, runs one sweep
 * and prints the result as one JSON line. Run as `node --import tsx test/helpers/sweep-child.ts`.
 */
import { createInterface } from 'node:readline';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/log.js';
import { sweep } from '../../src/retention/sweep.js';
import { createRuntime } from '../../src/runtime.js';

const config = loadConfig(process.env);
const rt = await createRuntime(config, createLogger({ level: config.LOG_LEVEL }));
await rt.pool.query('SELECT 1');
process.stdout.write('ready\n');
const lines = createInterface({ input: process.stdin });
for await (const line of lines) if (line.trim() === 'go') break;
lines.close();
const res = await sweep(rt, { batchSize: config.SWEEP_BATCH_SIZE, maxRetentionSeconds: config.MAX_RETENTION_SECONDS, maxBatches: 100_000, leaseSeconds: config.SWEEP_LEASE_SECONDS });
process.stdout.write(`${JSON.stringify({ deleted: res.deleted, failed: res.failed, batches: res.batches, ids: res.items.length })}\n`);
await rt.close();
