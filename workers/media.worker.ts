/**
 * Thin entry point: the media-ingest and webhook workers (what `mediaflow start --role worker` runs).
 * Run with `node --import tsx workers/media.worker.ts`; scale by running more of them.
 */
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/log.js';
import { exitOnFailure, runRole } from '../src/run-role.js';

try {
  const config = loadConfig(process.env);
  await runRole(config, createLogger({ level: config.LOG_LEVEL }), 'worker');
} catch (err) {
  exitOnFailure(err);
}
