/**
 * Several processes starting at once (2 API + 3 workers + 2 sweepers in `npm run soak`) each apply
 * migrations first: they must wait for one another, not fail. Real PostgreSQL, a database of this
 * test's own.
 */
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { migrate } from '../../src/db/migrate.js';
import { databaseUrl, dropDatabase, uniqueName } from '../helpers/env.js';

const db = uniqueName('mf_test_migrate');
afterAll(() => dropDatabase(db));

describe('migrations from several processes at once', () => {
  it('lets concurrent runs wait for the lock and all succeed, applying each migration once', async () => {
    const url = databaseUrl(db);
    const results = await Promise.allSettled([migrate(url), migrate(url), migrate(url), migrate(url)]);
    expect(results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))).toEqual(['ok', 'ok', 'ok', 'ok']);
    const applied = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const { rows } = await c.query<{ name: string }>('SELECT name FROM pgmigrations');
      expect(applied.sort()).toEqual(rows.map((r) => r.name).sort());
      expect(new Set(applied).size).toBe(applied.length);
    } finally {
      await c.end();
    }
  });
});
