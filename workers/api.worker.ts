/**
 * Thin entry point: the HTTP API alone (what `mediaflow start --role api` runs).
 * Run with `node --import tsx workers/api.worker.ts`; stateless, put several behind a load balancer.
 */
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/log.js';
import { exitOnFailure, runRole } from '../src/run-role.js';

try {
  const config = loadConfig(process.env);
  await runRole(config, createLogger({ level: config.LOG_LEVEL }), 'api');
} catch (err) {
  exitOnFailure(err);
}
