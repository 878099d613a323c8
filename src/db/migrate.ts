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
    // node-pg-migrate takes an advisory lock, so concurrent starts wait rather than race.
    noLock: false,
    log: (msg: string) => log?.debug({ migration: true }, msg),
    logger: log
      ? { debug: (m: string) => log.debug(m), info: (m: string) => log.debug(m), warn: (m: string) => log.warn(m), error: (m: string) => log.error(m) }
      : { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined },
  });
  return ran.map((m) => m.name);
}
