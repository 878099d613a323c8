import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { runner } from 'node-pg-migrate';
import type { Logger } from '../log.js';
import { ensureDatabase } from './pool.js';

/** `migrations/` at the package root, from the sources (src/db) or from a build (dist/src/db). */
export const MIGRATIONS_DIR = [
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations'),
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../migrations'),
].find((d) => existsSync(d))!;

/**
 * Where migrations (and other work that holds a session) connect: DATABASE_MIGRATION_URL, a direct
 * PostgreSQL, when set. node-pg-migrate holds a session advisory lock from before the first
 * migration to after the last; through PgBouncer in transaction mode the unlock may reach another
 * server connection than the lock, and the lock would stay on the first one, blocking every later start.
 */
export function sessionDatabaseUrl(config: { DATABASE_URL: string; DATABASE_MIGRATION_URL?: string }): string {
  return config.DATABASE_MIGRATION_URL ?? config.DATABASE_URL;
}

/** Creates the database if missing and applies pending migrations; safe to run from several processes. */
export async function migrate(databaseUrl: string, log?: Logger, direction: 'up' | 'down' = 'up'): Promise<string[]> {
  await ensureDatabase(databaseUrl);
  const ran = await runner({
    databaseUrl,
    dir: MIGRATIONS_DIR,
    direction,
    migrationsTable: 'pgmigrations',
    count: direction === 'down' ? Infinity : undefined,
    singleTransaction: true,
    // node-pg-migrate takes an advisory lock, so concurrent starts wait rather than race; its
    // default mode fails the second start at once ("Another migration is already running"), which
    // `npm run soak` met starting two processes together.
    noLock: false,
    advisoryLockMode: 'wait',
    log: (msg: string) => log?.debug({ migration: true }, msg),
    logger: log
      ? { debug: (m: string) => log.debug(m), info: (m: string) => log.debug(m), warn: (m: string) => log.warn(m), error: (m: string) => log.error(m) }
      : { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
  });
  return ran.map((m) => m.name);
}
