import pg from 'pg';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
export type Queryable = Pick<pg.Pool, 'query'>;

// bigint columns (sizes) fit in a JS number for anything we store (< 2^53).
pg.types.setTypeParser(20, (v) => Number(v));

export function createPool(databaseUrl: string, opts: { max?: number; statementTimeoutMs?: number } = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: opts.max ?? 10,
    // Fail fast when PostgreSQL is unreachable: the API answers 503 rather than hanging.
    connectionTimeoutMillis: 2000,
    idleTimeoutMillis: 30_000,
    statement_timeout: opts.statementTimeoutMs ?? 30_000,
    application_name: 'mediaflow',
  });
  // An idle client losing its connection must not crash the process.
  pool.on('error', () => undefined);
  return pool;
}

/** Creates the database named in the URL when it does not exist (connecting to `postgres`). */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!name) return;
  const admin = new URL(databaseUrl);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) {
      try {
        await client.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
      } catch (err) {
        // Two processes starting together: the other one created it (42P04), or is creating it right
        // now and its catalogue row won the race (23505 on pg_database_datname_index).
        const code = (err as { code?: string }).code;
        if (code !== '42P04' && code !== '23505') throw err;
      }
    }
  } finally {
    await client.end();
  }
}

/**
 * Runs `fn` in one transaction, on a connection from the pool, or on `db` itself when it is a
 * connection already checked out by the caller: that one is left checked out for its owner to release.
 */
export async function withTransaction<T>(db: pg.Pool | pg.PoolClient, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const borrowed = 'release' in db;
  const client = borrowed ? db : await db.connect();
  try {
    await client.query('BEGIN');
    const out = await fn(client);
    await client.query('COMMIT');
    return out;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    if (!borrowed) client.release();
  }
}

/** Answers when PostgreSQL answers (readiness). */
export async function pingDatabase(db: Queryable): Promise<void> {
  await db.query('SELECT 1');
}

/**
 * One connection attempt with no pool and no retry, for start-up checks: resolves when PostgreSQL
 * answers, even to say the database does not exist yet (migrations create it); rejects with the
 * connection's error otherwise (ECONNREFUSED, ENOTFOUND, a timeout, a refused login).
 */
export async function probeDatabase(databaseUrl: string, timeoutMs = 2000): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    if ((err as { code?: string }).code === '3D000') return;
    throw err;
  } finally {
    await client.end().catch(() => undefined);
  }
}
