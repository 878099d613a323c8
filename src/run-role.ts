import { ConfigError, type Config } from './config/index.js';
import { migrate, sessionDatabaseUrl } from './db/migrate.js';
import type { Logger } from './log.js';
import { checkPrerequisites, EXIT_UNAVAILABLE, isUnreachable, postgresProblem, PrerequisiteError } from './preflight.js';
import { startRoles, type Role, type Running } from './roles.js';

/**
 * Runs a role as this process's job, for `mediaflow start` and `workers/*.worker.ts` alike: checks
 * that Redis, PostgreSQL and (for roles that process media) ffmpeg are there, applies migrations,
 * starts the role, and stops it gracefully on SIGTERM/SIGINT (exit 0 once drained, 1 if the drain
 * outlives SHUTDOWN_TIMEOUT_SECONDS; a second signal exits at once).
 */
export async function runRole(config: Config, log: Logger, role: Role): Promise<Running> {
  // Handlers go in first: a SIGTERM while migrations run or roles start is honoured as soon as
  // start-up settles (nothing is in flight before that), instead of killing the process mid-way.
  const started: { running?: Running } = {};
  let requested: string | undefined;
  let signals = 0;
  const shutdown = (sig: string) => {
    if (++signals > 1) {
      log.warn({ sig }, 'second signal: exiting now');
      process.exit(1);
    }
    const running = started.running;
    if (!running) {
      requested = sig;
      log.info({ sig }, 'signal during start-up: stopping once start-up settles');
      return;
    }
    log.info({ sig }, 'shutting down gracefully');
    const guard = setTimeout(() => {
      log.error('graceful shutdown timed out; exiting');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_SECONDS * 1000);
    guard.unref();
    running.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  // What is missing at start is reported at once, one line each; an outage after this is ridden out.
  const warnings = await checkPrerequisites(config, { mediaTools: role === 'worker' || role === 'all' });
  for (const w of warnings) log.warn(w);
  await migrate(sessionDatabaseUrl(config), log).catch(async (err: unknown) => {
    throw isUnreachable(err) ? new PrerequisiteError([await postgresProblem(sessionDatabaseUrl(config), err)]) : err;
  });
  const running = await startRoles(config, log, role);
  started.running = running;
  if (requested) {
    signals = 0;
    shutdown(requested);
  }
  return running;
}

/**
 * How a failed start (or CLI command) ends the process: one line on stderr (one per missing piece),
 * exit 78 (EX_CONFIG) for a bad configuration, 69 (EX_UNAVAILABLE) for Redis, PostgreSQL or a media
 * tool missing at start, 1 otherwise.
 */
export function exitOnFailure(err: unknown): never {
  const message = (err as Error | undefined)?.message || String(err);
  process.stderr.write(message.split('\n').map((line) => `mediaflow: ${line}\n`).join(''));
  process.exit(err instanceof ConfigError ? 78 : err instanceof PrerequisiteError ? EXIT_UNAVAILABLE : 1);
}
