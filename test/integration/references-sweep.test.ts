/**
 * Expiry stays the law with scheduled sends (issue 15), on the real sweep: a property over random
 * TTLs, send times, grace, cap, `extend` and elapsed time. Each media gets a reference through the
 * real repository (the route's transaction and arithmetic); time is advanced by moving the row's
 * timestamps back (created_at, expires_at, the reference's send_at and live_until) by the elapsed
 * time, which is what the database clock moving forward would do; then the real sweep runs. The sweep
 * must delete every media whose expiresAt has passed and none whose expiresAt has not, references or
 * not, and always for the reason `expired` (the cap never strikes before expiry, since `extend`
 * never passes it). Also: `media.expiring` recorded exactly once when sweepers race; the 1,000 limit
 * and the delete guard under concurrent requests; a reference over by itself once sendAt + grace passed.
 * Real: PostgreSQL (this file's own database), the fs store, Redis (deliveries enqueued). Nothing mocked.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { addReference, listLiveReferences, markDeletingUnlessReferenced } from '../../src/db/repos/references.js';
import { getMedia } from '../../src/db/repos/media.js';
import { liveUntil, planReference } from '../../src/domain/references.js';
import { sendExpiryNotices } from '../../src/jobs/expiry-notice.js';
import { sweep } from '../../src/retention/sweep.js';
import { insertApp, seedReadyMedia, sweepHarness } from '../helpers/retention-seed.js';

let harness: Awaited<ReturnType<typeof sweepHarness>>;
let pool: Pool;

beforeAll(async () => {
  harness = await sweepHarness();
  pool = harness.pool;
});

afterAll(async () => {
  await harness?.close();
});

const S = 1000;

async function reference(appId: string, mediaId: string, ref: string, sendAt: Date, extend: boolean, grace: number, cap: number) {
  const out = await addReference(pool, {
    appId,
    mediaId,
    ref,
    sendAt,
    liveUntil: liveUntil(sendAt, grace),
    maxReferences: 1000,
    plan: (row) => planReference({ createdAt: row.created_at, expiresAt: row.expires_at, sendAt, extend, graceSeconds: grace, maxRetentionSeconds: cap }),
  });
  if (out.kind !== 'added') throw new Error(`reference not added: ${out.kind}`);
  return out;
}

describe('the sweep with references', () => {
  it('never deletes a media before expiresAt and never keeps one past it', async () => {
    const media = fc.record({
      ttlFrac: fc.double({ min: 0, max: 1, noNaN: true }),
      sendFrac: fc.double({ min: 0.001, max: 1, noNaN: true }),
      extend: fc.boolean(),
      refs: fc.integer({ min: 1, max: 3 }),
      // Elapsed time as a fraction of twice the cap: some media long gone, some not yet.
      elapsedFrac: fc.double({ min: 0, max: 2, noNaN: true }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 60, max: 90 * 24 * 3600 }),
        fc.integer({ min: 0, max: 7 * 24 * 3600 }),
        fc.array(media, { minLength: 1, maxLength: 8 }),
        async (cap, grace, cases) => {
          const appId = await insertApp(pool);
          const seeded: Array<{ id: string; elapsed: number }> = [];
          for (const c of cases) {
            const ttl = Math.max(10, Math.round(c.ttlFrac * cap));
            const row = await seedReadyMedia(pool, harness.store, { appId, ttlSeconds: ttl });
            let last = row.expires_at.getTime();
            for (let r = 0; r < c.refs; r++) {
              // Sends from just after now to the cap from now (the API's bounds), some after expiry.
              const sendAt = new Date(Date.now() + Math.max(1000, Math.round(c.sendFrac * cap * S / (r + 1))));
              const out = await reference(appId, row.id, `ref-${r}`, sendAt, c.extend && r === 0, grace, cap);
              const exp = out.row.expires_at.getTime();
              // The stored expiry: never earlier, never past the cap, moved only by extend.
              expect(exp).toBeGreaterThanOrEqual(last);
              expect(exp).toBeLessThanOrEqual(Math.max(row.created_at.getTime() + cap * S, row.expires_at.getTime()));
              if (!(c.extend && r === 0)) expect(exp).toBe(last);
              last = exp;
            }
            seeded.push({ id: row.id, elapsed: Math.round(c.elapsedFrac * cap) });
          }
          // The clock moves on by each media's elapsed time.
          const ids = seeded.map((s) => s.id);
          const elapsed = seeded.map((s) => s.elapsed);
          await pool.query(
            `UPDATE media m SET created_at = m.created_at - make_interval(secs => e.s), expires_at = m.expires_at - make_interval(secs => e.s)
             FROM unnest($1::text[], $2::int[]) AS e(id, s) WHERE m.id = e.id`,
            [ids, elapsed],
          );
          await pool.query(
            `UPDATE media_references r SET send_at = r.send_at - make_interval(secs => e.s), live_until = r.live_until - make_interval(secs => e.s)
             FROM unnest($1::text[], $2::int[]) AS e(id, s) WHERE r.media_id = e.id`,
            [ids, elapsed],
          );
          const before = await pool.query<{ id: string; expires_at: Date; now: Date }>('SELECT id, expires_at, now() AS now FROM media WHERE id = ANY($1)', [ids]);
          await sweep(harness.deps, { batchSize: 1000, maxRetentionSeconds: cap, appId });
          const after = (await pool.query<{ now: Date }>('SELECT now()')).rows[0]!.now;
          const { rows } = await pool.query<{ id: string; status: string; delete_reason: string | null }>('SELECT id, status, delete_reason FROM media WHERE id = ANY($1)', [ids]);
          const status = new Map(rows.map((r) => [r.id, r]));
          for (const b of before.rows) {
            const s = status.get(b.id)!;
            if (b.expires_at.getTime() <= b.now.getTime()) {
              expect(s.status, `${b.id} expired at ${b.expires_at.toISOString()}, swept at ${b.now.toISOString()}`).toBe('deleted');
              expect(s.delete_reason).toBe('expired');
            } else if (b.expires_at.getTime() > after.getTime()) {
              expect(s.status, `${b.id} expires at ${b.expires_at.toISOString()}, swept by ${after.toISOString()}`).toBe('ready');
            }
          }
          // The references of deleted media went with them.
          const { rows: left } = await pool.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM media_references r JOIN media m ON m.id = r.media_id WHERE m.id = ANY($1) AND m.status = 'deleted'`,
            [ids],
          );
          expect(left[0]!.n).toBe(0);
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('media.expiring', () => {
  it('is recorded exactly once when several sweepers run the notice at the same time', async () => {
    const appId = await insertApp(pool, { webhookUrl: 'https://hooks.example.test/h' });
    const due = await seedReadyMedia(pool, harness.store, { appId, ttlSeconds: 30 });
    const notYet = await seedReadyMedia(pool, harness.store, { appId, ttlSeconds: 3600 });
    const served = await seedReadyMedia(pool, harness.store, { appId, ttlSeconds: 30 });
    await reference(appId, due.id, 'late', new Date(due.expires_at.getTime() + 60_000), false, 60, 7200);
    await reference(appId, notYet.id, 'late', new Date(notYet.expires_at.getTime() + 60_000), false, 60, 7200);
    await reference(appId, served.id, 'early', new Date(served.expires_at.getTime() - 10_000), false, 60, 7200);

    const rt = { pool, queues: harness.deps.queues, log: harness.deps.log, config: { EXPIRY_NOTICE_SECONDS: 120 } } as Parameters<typeof sendExpiryNotices>[0];
    // Six sweepers at once (media of the property above may be noticed too: the count is this app's).
    const runs = await Promise.all(Array.from({ length: 6 }, () => sendExpiryNotices(rt)));
    expect(runs.reduce((n, r) => n + r.noticed, 0)).toBeGreaterThanOrEqual(1);
    await sendExpiryNotices(rt);
    const noticed = await pool.query<{ id: string }>('SELECT id FROM media WHERE app_id = $1 AND expiry_noticed_at IS NOT NULL', [appId]);
    expect(noticed.rows.map((r) => r.id)).toEqual([due.id]);

    const { rows } = await pool.query<{ media_id: string; body: any }>(`SELECT media_id, body FROM webhook_deliveries WHERE app_id = $1 AND event = 'media.expiring'`, [appId]);
    expect(rows.map((r) => r.media_id)).toEqual([due.id]);
    expect(rows[0]!.body.payload).toMatchObject({ media_id: due.id, media_path: due.media_path, refs: ['late'], references: [{ ref: 'late', send_at: new Date(due.expires_at.getTime() + 60_000).toISOString() }] });
  });
});

describe('references under concurrency', () => {
  it('never lets more than the limit in when many are added at once', async () => {
    const appId = await insertApp(pool);
    const m = await seedReadyMedia(pool, harness.store, { appId, ttlSeconds: 3600 });
    await pool.query(
      `INSERT INTO media_references (media_id, ref, send_at, live_until)
       SELECT $1, 'seed-' || g, now() + interval '1 hour', now() + interval '2 hours' FROM generate_series(1, 990) g`,
      [m.id],
    );
    const sendAt = new Date(Date.now() + 600_000);
    const outs = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        addReference(pool, { appId, mediaId: m.id, ref: `race-${i}`, sendAt, liveUntil: liveUntil(sendAt, 60), maxReferences: 1000, plan: (row) => ({ expiresAt: row.expires_at, warnings: [], keptUntil: null }) }),
      ),
    );
    expect(outs.filter((o) => o.kind === 'added')).toHaveLength(10);
    expect(outs.filter((o) => o.kind === 'too_many')).toHaveLength(20);
    expect(await listLiveReferences(pool, m.id)).toHaveLength(1000);
  });

  it('a delete and a reference racing: one of them wins, never both', async () => {
    const appId = await insertApp(pool);
    for (let i = 0; i < 15; i++) {
      const m = await seedReadyMedia(pool, harness.store, { appId, ttlSeconds: 3600 });
      const sendAt = new Date(Date.now() + 600_000);
      const [added, deleted] = await Promise.all([
        reference(appId, m.id, 'race', sendAt, false, 60, 7200).then(() => true, () => false),
        markDeletingUnlessReferenced(pool, appId, m.id, false),
      ]);
      if (added) expect(deleted.kind).toBe('in_use');
      else expect(deleted.kind).toBe('deleting');
    }
  });

  it('a reference is over by itself once sendAt + grace has passed: not listed, not counted, not in the way', async () => {
    const appId = await insertApp(pool);
    const m = await seedReadyMedia(pool, harness.store, { appId, ttlSeconds: 3600 });
    const sendAt = new Date(Date.now() + 60_000);
    await reference(appId, m.id, 'soon-over', sendAt, false, 30, 7200);
    expect((await getMedia(pool, appId, m.id))!.ref_count).toBe(1);
    expect((await markDeletingUnlessReferenced(pool, appId, m.id, false)).kind).toBe('in_use');
    // 91 s later: the send (in 60 s) and its 30 s of grace are over.
    await pool.query(`UPDATE media_references SET send_at = send_at - interval '91 seconds', live_until = live_until - interval '91 seconds' WHERE media_id = $1`, [m.id]);
    expect(await listLiveReferences(pool, m.id)).toEqual([]);
    const row = (await getMedia(pool, appId, m.id))!;
    expect([row.ref_count, row.next_send_at]).toEqual([0, null]);
    expect((await markDeletingUnlessReferenced(pool, appId, m.id, false)).kind).toBe('deleting');
  });
});
