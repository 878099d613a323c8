import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../src/config/index.js';
import { migrate } from '../../src/db/migrate.js';

export const REDIS_URL = process.env.TEST_REDIS_URL ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const PG_ADMIN_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

export function databaseUrl(name: string): string {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A database, queue prefix and data dir of this test file's own; `cleanup` removes all three. */
export async function isolatedEnv(extra: Record<string, string> = {}): Promise<{ config: Config; env: Record<string, string>; cleanup(): Promise<void> }> {
  const db = uniqueName('mf_test');
  const prefix = uniqueName('mft');
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'mediaflow-test-data-'));
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    PORT: '0',
    HOST: '127.0.0.1',
    REDIS_URL,
    DATABASE_URL: databaseUrl(db),
    QUEUE_PREFIX: prefix,
    DATA_DIR: dataDir,
    MASTER_KEY: randomBytes(32).toString('base64'),
    RECONCILE_AFTER_SECONDS: '2',
    JOB_LOCK_SECONDS: '5',
    ...extra,
  };
  const config = loadConfig(env);
  await migrate(config.DATABASE_URL);
  return {
    config,
    env,
    async cleanup() {
      await dropDatabase(db);
      await deletePrefix(prefix);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export async function dropDatabase(name: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_ADMIN_URL });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await c.end();
  }
}

export async function deletePrefix(prefix: string): Promise<void> {
  const r = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}
