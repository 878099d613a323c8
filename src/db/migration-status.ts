import { readdir } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { MIGRATIONS_DIR } from './migrate.js';

export interface MigrationStatus {
  serverVersion: string;
  /** False when the database named in the URL does not exist yet (`migrate` creates it). */
  databaseExists: boolean;
  /** Files in migrations/ not applied to this database. */
  pending: string[];
  /** Applied to this database but absent from migrations/: the database is ahead of this code. */
  unknown: string[];
}

/**
 * Compares migrations/ with what the database has applied, reading only: nothing is created, not
 * even the database or the migrations table (for `mediaflow doctor`).
 */
export async function migrationStatus(databaseUrl: string, timeoutMs = 3000): Promise<MigrationStatus> {
  const files = (await readdir(MIGRATIONS_DIR))
    .filter((f) => /\.(sql|js|cjs|mjs|ts)$/.test(f))
    .map((f) => path.basename(f, path.extname(f)))
    .sort();
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: timeoutMs, statement_timeout: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') throw err;
    const admin = new URL(databaseUrl);
    admin.pathname = '/postgres';
    const other = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: timeoutMs });
    other.on('error', () => undefined);
    try {
      await other.connect();
      const { rows } = await other.query<{ v: string }>("SELECT current_setting('server_version') AS v");
      return { serverVersion: rows[0]!.v, databaseExists: false, pending: files, unknown: [] };
    } finally {
      await other.end().catch(() => undefined);
    }
  }
  try {
    const { rows: version } = await client.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    const { rows: table } = await client.query<{ t: string | null }>("SELECT to_regclass('pgmigrations')::text AS t");
    const applied = table[0]?.t ? (await client.query<{ name: string }>('SELECT name FROM pgmigrations ORDER BY run_on, id')).rows.map((r) => r.name) : [];
    const known = new Set(files);
    const done = new Set(applied);
    return {
      serverVersion: version[0]!.v,
      databaseExists: true,
      pending: files.filter((f) => !done.has(f)),
      unknown: applied.filter((a) => !known.has(a)),
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}
