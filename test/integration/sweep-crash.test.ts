/**
 * The sweeper under crashes and concurrency. Real: PostgreSQL (this file's own database), the fs
 * store over this file's own data dir, sweeper processes killed with SIGKILL, two sweeper
 * processes racing. Nothing is mocked.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { isSweepLeaseLive } from '../../src/db/repos/sweep-leases.js';
import { sweep } from '../../src/retention/sweep.js';
import type { BlobStore } from '../../src/storage/blob-store.js';
import { isolatedEnv } from '../helpers/env.js';
import { waitFor } from '../helpers/service.js';
import { bulkInsertMedia, insertApp, keysOf, seedObjects, seedReadyMedia, sweepHarness } from '../helpers/retention-seed.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAX_RETENTION = 90 * 24 * 3600;

let iso: Awaited<ReturnType<typeof isolatedEnv>>;
let pool: Pool;
let store: BlobStore;
let deps: Parameters<typeof sweep>[0];

let harness: Awaited<ReturnType<typeof sweepHarness>>;

beforeAll(async () => {
  harness = await sweepHarness();
  ({ iso, pool, store, deps } = harness);
});

afterAll(async () => {
  await harness?.close();
});

/** Spawns a helper script with this file's environment; resolves its first stdout line. */
function spawnHelper(script: string, env: Record<string, string>): { proc: ChildProcess; firstLine: Promise<string>; lines: string[]; exited: Promise<unknown> } {
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/helpers', script)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...iso.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const lines: string[] = [];
  const rl = createInterface({ input: proc.stdout! });
  const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig)));
  const firstLine = new Promise<string>((resolve, reject) => {
    rl.on('line', (l) => {
      lines.push(l);
      if (lines.length === 1) resolve(l);
    });
    void exited.then((c) => reject(new Error(`${script} exited (${String(c)}) before printing: ${stderr}`)));
  });
  firstLine.catch(() => undefined);
  return { proc, firstLine, lines, exited };
}

async function auditCounts(ids: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ media_id: string; n: number }>(
    `SELECT media_id, count(*)::int AS n FROM audit_events WHERE event = 'media.deleted' AND media_id = ANY($1::text[]) GROUP BY media_id`,
    [ids],
  );
  return new Map(rows.map((r) => [r.media_id, r.n]));
}

/** The child's lease is a row with an expiry (SWEEP_LEASE_SECONDS below), renewed while it lives. */
const CHILD_LEASE_SECONDS = 4;
const leaseHeld = (token: number): Promise<boolean> => isSweepLeaseLive(pool, token);

describe('a sweeper killed mid-batch', () => {
  for (const crashAfter of ['claim', 'bytes'] as const) {
    it(`SIGKILLed after ${crashAfter === 'claim' ? 'marking a batch deleting' : 'deleting the bytes'}: the next sweep finishes it, nothing unexpired is touched, one audit row each`, async () => {
      const appId = await insertApp(pool);
      const due = [];
      for (let i = 0; i < 6; i++) due.push(await seedReadyMedia(pool, store, { appId, ttlSeconds: -60, variants: i % 2 ? ['thumb'] : [], staging: i === 0 }));
      const live = [];
      for (let i = 0; i < 3; i++) live.push(await seedReadyMedia(pool, store, { appId, ttlSeconds: 3600 }));

      const child = spawnHelper('sweep-claim-child.ts', { SWEEP_BATCH_SIZE: '100', SWEEP_LEASE_SECONDS: String(CHILD_LEASE_SECONDS), CRASH_AFTER: crashAfter });
      const claimed = JSON.parse(await child.firstLine) as { token: number; ids: string[] };
      expect(claimed.ids.sort()).toEqual(due.map((m) => m.id).sort());
      const { rows: mid } = await pool.query<{ status: string; n: number }>(
        `SELECT status, count(*)::int AS n FROM media WHERE app_id = $1 GROUP BY status ORDER BY status`,
        [appId],
      );
      expect(mid).toEqual([
        { status: 'deleting', n: 6 },
        { status: 'ready', n: 3 },
      ]);
      for (const m of due) expect(await store.exists(m.storage_key)).toBe(crashAfter === 'claim');

      // While the dead-to-be sweeper holds its lease, another sweep leaves its batch alone, also
      // once the lease has outlived its first period (the child renews it).
      const meanwhile = await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION, staging: false });
      expect(meanwhile.deleted).toBe(0);
      await new Promise((r) => setTimeout(r, CHILD_LEASE_SECONDS * 1000 + 500));
      expect(await leaseHeld(claimed.token)).toBe(true);
      expect((await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION, staging: false })).deleted).toBe(0);

      child.proc.kill('SIGKILL');
      await child.exited;
      // Nobody renews the lease now: it lapses within its period, and the rows are free to take over.
      await waitFor(async () => !(await leaseHeld(claimed.token)), CHILD_LEASE_SECONDS * 1000 + 10_000, 50);

      const res = await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION, staging: false });
      expect(res.deleted).toBe(6);
      expect(res.byReason).toEqual({ expired: 6 });
      for (const m of due) {
        for (const key of [m.storage_key, ...m.variants.map((v) => v.key), `staging/${appId}/${m.id}.bin`]) expect(await store.exists(key)).toBe(false);
      }
      const { rows: after } = await pool.query<{ id: string; status: string }>('SELECT id, status FROM media WHERE app_id = $1', [appId]);
      const status = new Map(after.map((r) => [r.id, r.status]));
      for (const m of due) expect(status.get(m.id)).toBe('deleted');
      for (const m of live) {
        expect(status.get(m.id)).toBe('ready');
        expect(await store.exists(m.storage_key)).toBe(true);
      }
      const audits = await auditCounts([...due, ...live].map((m) => m.id));
      expect([...audits.values()]).toEqual(due.map(() => 1));
      expect(audits.size).toBe(6);

      // A further sweep has nothing left to do and audits nothing twice.
      expect((await sweep(deps, { batchSize: 100, maxRetentionSeconds: MAX_RETENTION, staging: false })).deleted).toBe(0);
      expect((await auditCounts(due.map((m) => m.id))).size).toBe(6);
    });
  }
});

describe('two sweepers at once', () => {
  it('delete 10,000 due media exactly once between them (audit count = 10,000, no duplicates)', async () => {
    const appId = await insertApp(pool);
    const ids = await bulkInsertMedia(pool, { appId, count: 10_000, expiresIn: -60 });
    const liveIds = await bulkInsertMedia(pool, { appId, count: 50, expiresIn: 3600 });
    await seedObjects(store, keysOf(appId, [...ids, ...liveIds]), { dataDir: iso.config.DATA_DIR });

    const env = { SWEEP_BATCH_SIZE: '100' };
    const sweepers = [spawnHelper('sweep-child.ts', env), spawnHelper('sweep-child.ts', env)];
    for (const s of sweepers) expect(await s.firstLine).toBe('ready');
    for (const s of sweepers) s.proc.stdin!.write('go\n');
    const codes = await Promise.all(sweepers.map((s) => s.exited));
    expect(codes).toEqual([0, 0]);
    const results = sweepers.map((s) => JSON.parse(s.lines[1]!) as { deleted: number; failed: number });
    expect(results.map((r) => r.failed)).toEqual([0, 0]);
    expect(results[0]!.deleted + results[1]!.deleted).toBe(10_000);
    // Both did part of the work: they ran side by side, not one after the other.
    for (const r of results) expect(r.deleted).toBeGreaterThan(0);

    const { rows } = await pool.query<{ n: number; distinct: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT media_id)::int AS distinct FROM audit_events WHERE event = 'media.deleted' AND media_id LIKE $1`,
      [`${ids[0]!.replace(/\d+$/, '')}%`],
    );
    expect(rows[0]).toEqual({ n: 10_000, distinct: 10_000 });
    const { rows: statuses } = await pool.query<{ status: string; n: number }>(
      'SELECT status, count(*)::int AS n FROM media WHERE app_id = $1 GROUP BY status ORDER BY status',
      [appId],
    );
    expect(statuses).toEqual([
      { status: 'deleted', n: 10_000 },
      { status: 'ready', n: 50 },
    ]);
    let left = 0;
    for await (const o of store.list(`objects/${appId}/`)) if (o) left++;
    expect(left).toBe(50);
  });
});
