/**
 * mediaflow behind PgBouncer in transaction mode (issue 13). Real: Debian's pgbouncer on a free local
 * port in front of the local PostgreSQL (test/helpers/pgbouncer.ts, started and stopped here), Redis,
 * the fs store, sharp, sweeper processes racing and one SIGKILLed mid-batch. The API and the workers
 * run in this process with DATABASE_URL at PgBouncer and DATABASE_MIGRATION_URL at PostgreSQL itself
 * (migrations hold a session lock). Nothing is mocked.
 *
 * In transaction mode consecutive statements of one client may run on different server connections,
 * so anything kept in a session (an advisory lock, a SET, a prepared statement, a temporary table)
 * is lost or leaks onto a connection someone else gets next: each test here would fail if mediaflow
 * still relied on one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/cli/admin.js';
import { loadConfig, type Config } from '../../src/config/index.js';
import { createPool, type Pool } from '../../src/db/pool.js';
import { isSweepLeaseLive } from '../../src/db/repos/sweep-leases.js';
import { createLogger } from '../../src/log.js';
import { sweep } from '../../src/retention/sweep.js';
import { startRoles, type Running } from '../../src/roles.js';
import { fsStoreRoot } from '../../src/storage/create-store.js';
import { createFsStore } from '../../src/storage/fs-store.js';
import { isolatedEnv } from '../helpers/env.js';
import { sha256, smallJpeg } from '../helpers/media.js';
import { startPgBouncer, type PgBouncer } from '../helpers/pgbouncer.js';
import { bulkInsertMedia, insertApp, keysOf, seedObjects, seedReadyMedia } from '../helpers/retention-seed.js';
import { ROOT, runCli } from '../helpers/service-process.js';
import { multipart, waitFor } from '../helpers/service.js';

const MAX_RETENTION = 90 * 24 * 3600;
const CHILD_LEASE_SECONDS = 4;

let bouncer: PgBouncer;
let iso: Awaited<ReturnType<typeof isolatedEnv>>;
/** The service's environment: DATABASE_URL through PgBouncer, migrations direct. */
let env: Record<string, string>;
let config: Config;
let api: Running;
let worker: Running;
let url: string;
/** A direct pool of the test's own, for seeding and looking. */
let direct: Pool;
let dbName: string;

beforeAll(async () => {
  bouncer = await startPgBouncer();
  iso = await isolatedEnv();
  dbName = new URL(iso.env.DATABASE_URL!).pathname.slice(1);
  env = { ...iso.env, DATABASE_URL: bouncer.via(iso.env.DATABASE_URL!), DATABASE_MIGRATION_URL: iso.env.DATABASE_URL! };
  config = loadConfig(env);
  const log = createLogger({ level: config.LOG_LEVEL });
  // The API and the workers, without the scheduled sweeper: the sweeps below are the tests' own.
  api = await startRoles(config, log, 'api');
  worker = await startRoles(config, log, 'worker');
  url = api.url!;
  direct = createPool(iso.env.DATABASE_URL!);
}, 120_000);

afterAll(async () => {
  await api?.stop();
  await worker?.stop();
  await direct?.end();
  await iso?.cleanup();
  await bouncer?.close();
}, 120_000);

const call = (p: string, key: string, init: RequestInit = {}) => fetch(`${url}${p}`, { ...init, headers: { authorization: `Bearer ${key}`, ...(init.headers as Record<string, string>) } });

async function waitSettled(key: string, id: string): Promise<Record<string, any>> {
  return waitFor(async () => {
    const r = await call(`/v1/media/${id}`, key);
    if (r.status !== 200) return null;
    const m = ((await r.json()) as { data: Record<string, any> }).data;
    return m.status === 'ready' || m.status === 'failed' ? m : null;
  }, 60_000);
}

/** Spawns a helper script in test/helpers with the service's environment (through PgBouncer) plus `extra`. */
function spawnHelper(script: string, extra: Record<string, string>): { proc: ChildProcess; lines: string[]; line(n: number): Promise<string>; exited: Promise<unknown> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/helpers', script)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env, ...extra },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const lines: string[] = [];
  createInterface({ input: proc.stdout! }).on('line', (l) => lines.push(l));
  const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig)));
  const line = (n: number) =>
    waitFor(async () => {
      if (lines.length > n) return lines[n]!;
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`${script} exited before line ${n}: ${stderr}`);
      return null;
    }, 120_000, 20);
  return { proc, lines, line, exited };
}

async function auditRows(ids: readonly string[]): Promise<{ n: number; distinct: number }> {
  const { rows } = await direct.query<{ n: number; distinct: number }>(
    `SELECT count(*)::int AS n, count(DISTINCT media_id)::int AS distinct FROM audit_events WHERE event = 'media.deleted' AND media_id = ANY($1::text[])`,
    [ids],
  );
  return rows[0]!;
}

describe('mediaflow behind PgBouncer (transaction mode)', () => {
  it('migrates through DATABASE_MIGRATION_URL (`mediaflow migrate`, `mediaflow orphans`) while DATABASE_URL points at PgBouncer', async () => {
    const migrated = await runCli(['migrate', '--json'], env);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(JSON.parse(migrated.stdout)).toEqual({ applied: [] });
    const orphans = await runCli(['orphans', '--json'], env);
    expect(orphans.code, orphans.stderr).toBe(0);
    expect(JSON.parse(orphans.stdout).objectsWithoutRow.count).toBe(0);
  });

  it('runs the core path through PgBouncer: upload → ready → download, Idempotency-Key replay, delete', async () => {
    const { apiKey } = await createApp(api.rt, { name: 'bouncer' });
    const jpeg = await smallJpeg(90, 60, 31);
    const body = () => multipart({ kind: 'image' }, { bytes: jpeg, name: 'p.jpg', type: 'image/jpeg' });
    const first = await call('/v1/media', apiKey, { method: 'POST', body: body(), headers: { 'idempotency-key': 'bouncer-1' } });
    expect(first.status).toBe(202);
    const id = ((await first.json()) as { data: { id: string } }).data.id;
    const again = await call('/v1/media', apiKey, { method: 'POST', body: body(), headers: { 'idempotency-key': 'bouncer-1' } });
    expect(((await again.json()) as { data: { id: string } }).data.id).toBe(id);
    expect((await waitSettled(apiKey, id)).status).toBe('ready');

    const content = await call(`/v1/media/${id}/content`, apiKey);
    expect(content.status).toBe(200);
    expect(content.headers.get('etag')).toContain(sha256(Buffer.from(await content.arrayBuffer())));
    const { rows } = await direct.query<{ storage_key: string }>('SELECT storage_key FROM media WHERE id = $1', [id]);
    const store = createFsStore({ root: fsStoreRoot(config.DATA_DIR) });
    expect(await store.exists(rows[0]!.storage_key)).toBe(true);

    expect((await call(`/v1/media/${id}`, apiKey, { method: 'DELETE' })).status).toBe(204);
    expect((await call(`/v1/media/${id}`, apiKey)).status).toBe(404);
    expect(await store.exists(rows[0]!.storage_key)).toBe(false);

    // It really went through PgBouncer: it logged clients on this file's database.
    expect(await bouncer.log()).toContain(`${dbName}/`);
  });

  it('two sweeper processes through PgBouncer delete 2,000 due media exactly once between them', async () => {
    const appId = await insertApp(direct);
    const ids = await bulkInsertMedia(direct, { appId, count: 2000, expiresIn: -60 });
    const liveIds = await bulkInsertMedia(direct, { appId, count: 20, expiresIn: 3600 });
    const store = createFsStore({ root: fsStoreRoot(config.DATA_DIR) });
    await seedObjects(store, keysOf(appId, [...ids, ...liveIds]), { dataDir: config.DATA_DIR });

    const sweepers = [spawnHelper('sweep-child.ts', { SWEEP_BATCH_SIZE: '50' }), spawnHelper('sweep-child.ts', { SWEEP_BATCH_SIZE: '50' })];
    for (const s of sweepers) expect(await s.line(0)).toBe('ready');
    for (const s of sweepers) s.proc.stdin!.write('go\n');
    expect(await Promise.all(sweepers.map((s) => s.exited))).toEqual([0, 0]);
    const results = sweepers.map((s) => JSON.parse(s.lines[1]!) as { deleted: number; failed: number });
    expect(results.map((r) => r.failed)).toEqual([0, 0]);
    expect(results[0]!.deleted + results[1]!.deleted).toBe(2000);
    for (const r of results) expect(r.deleted).toBeGreaterThan(0);

    expect(await auditRows(ids)).toEqual({ n: 2000, distinct: 2000 });
    const { rows } = await direct.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM media WHERE app_id = $1 GROUP BY status ORDER BY status', [appId]);
    expect(rows).toEqual([
      { status: 'deleted', n: 2000 },
      { status: 'ready', n: 20 },
    ]);
    let left = 0;
    for await (const o of store.list(`objects/${appId}/`)) if (o) left++;
    expect(left).toBe(20);
  }, 180_000);

  it('a sweeper SIGKILLed mid-batch through PgBouncer: its lease lapses, and the next sweep finishes its rows once each', async () => {
    const appId = await insertApp(direct);
    const store = createFsStore({ root: fsStoreRoot(config.DATA_DIR) });
    const due = [];
    for (let i = 0; i < 4; i++) due.push(await seedReadyMedia(direct, store, { appId, ttlSeconds: -60 }));
    const live = await seedReadyMedia(direct, store, { appId, ttlSeconds: 3600 });

    const child = spawnHelper('sweep-claim-child.ts', { SWEEP_BATCH_SIZE: '100', SWEEP_LEASE_SECONDS: String(CHILD_LEASE_SECONDS), CRASH_AFTER: 'claim' });
    const claimed = JSON.parse(await child.line(0)) as { token: number; ids: string[] };
    expect(claimed.ids.sort()).toEqual(due.map((m) => m.id).sort());

    // A sweep through PgBouncer (the service's own pool) leaves the live sweeper's batch alone.
    const deps = { pool: api.rt.pool, store, queues: api.rt.queues, log: api.rt.log };
    expect((await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION, staging: false, appId })).deleted).toBe(0);
    expect(await isSweepLeaseLive(direct, claimed.token)).toBe(true);

    child.proc.kill('SIGKILL');
    await child.exited;
    await waitFor(async () => !(await isSweepLeaseLive(direct, claimed.token)), CHILD_LEASE_SECONDS * 1000 + 10_000, 50);
    const res = await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION, staging: false, appId });
    expect(res.deleted).toBe(4);
    for (const m of due) expect(await store.exists(m.storage_key)).toBe(false);
    expect(await store.exists(live.storage_key)).toBe(true);
    expect(await auditRows(due.map((m) => m.id))).toEqual({ n: 4, distinct: 4 });
  }, 120_000);

  it('leaves no session state behind: no advisory lock held and no transaction left open on any server connection', async () => {
    const { rows: locks } = await direct.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE l.locktype = 'advisory' AND d.datname = $1`,
      [dbName],
    );
    expect(locks[0]!.n).toBe(0);
    const { rows: open } = await direct.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'`,
      [dbName],
    );
    expect(open[0]!.n).toBe(0);
  });
});
