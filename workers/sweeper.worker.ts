/**
 * Thin entry point: the retention sweeper and its job scheduler (what `mediaflow start --role sweeper` runs).
 * Run with `node --import tsx workers/sweeper.worker.ts`; several may run, they split the work.
 */
import { loadConfig } from '../src/config/index.js';
import { createLogger } from '../src/log.js';
import { exitOnFailure, runRole } from '../src/run-role.js';

try {
  const config = loadConfig(process.env);
  await runRole(config, createLogger({ level: config.LOG_LEVEL }), 'sweeper');
} catch (err) {
  exitOnFailure(err);
}
