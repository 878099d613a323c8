import type { Pool, PoolClient, Queryable } from '../pool.js';
import { withTransaction } from '../pool.js';
import type { MediaRow } from './media.js';
import { hasLiveReferenceSql, liveRefsJsonSql, refSummaryColumnsSql, type RefSummary } from './reference-sql.js';

/**
 * Scheduled sends that need a media (table `media_references`, migration *_media-references). A
 * reference is live while `live_until` (its `send_at` + REFERENCE_GRACE_SECONDS when written) is
 * ahead of the database clock; past it, it is over by itself and nothing lists or counts it.
 * No session state, no advisory lock: every write is one statement or one short transaction, so
 * the module works the same behind PgBouncer in transaction mode.
 */

export interface ReferenceRow {
  ref: string;
  send_at: Date;
  created_at: Date;
}

/** A reference as webhooks, 409 details and the CLI show it. */
export type { RefSummary } from './reference-sql.js';

export type AddReferenceOutcome =
  | { kind: 'not_found' }
  | { kind: 'settled'; status: MediaRow['status'] }
  | { kind: 'expired'; expiresAt: Date }
  | { kind: 'too_many'; limit: number }
  | { kind: 'added'; reference: ReferenceRow; row: MediaRow; created: boolean; result: AddedPlan };

export interface AddedPlan {
  expiresAt: Date;
  warnings: string[];
  keptUntil: Date | null;
}

export interface AddReferenceInput {
  appId: string;
  mediaId: string;
  ref: string;
  sendAt: Date;
  liveUntil: Date;
  maxReferences: number;
  /** The media's new expiry and the warnings, decided from the locked row and the database clock. */
  plan: (row: MediaRow, now: Date) => AddedPlan;
}

/**
 * Adds a reference (or moves the `send_at` of the same `ref`) in one short transaction that holds
 * the media row's lock: a concurrent DELETE waits for it and then sees the reference, a concurrent
 * reference counts against the same limit. References already over are pruned first, so the table
 * keeps only what can still matter. The expiry only ever moves later.
 */
export async function addReference(pool: Pool, i: AddReferenceInput): Promise<AddReferenceOutcome> {
  return withTransaction(pool, async (c) => {
    const { rows } = await c.query<MediaRow & { db_now: Date }>(
      'SELECT m.*, now() AS db_now FROM media m WHERE m.app_id = $1 AND m.id = $2 FOR UPDATE',
      [i.appId, i.mediaId],
    );
    const locked = rows[0];
    if (!locked) return { kind: 'not_found' };
    const { db_now: now, ...row } = locked;
    if (row.status === 'failed' || row.status === 'deleting' || row.status === 'deleted') return { kind: 'settled', status: row.status };
    if (row.expires_at.getTime() <= now.getTime()) return { kind: 'expired', expiresAt: row.expires_at };

    const { rows: counted } = await c.query<{ live: number; exists: boolean }>(
      // The prune and the count see the same snapshot: what the prune removes is exactly what is not live.
      `WITH pruned AS (DELETE FROM media_references WHERE media_id = $1 AND live_until <= now())
       SELECT count(*) FILTER (WHERE r.live_until > now())::int AS live,
              COALESCE(bool_or(r.ref = $2 AND r.live_until > now()), false) AS exists
       FROM media_references r WHERE r.media_id = $1`,
      [i.mediaId, i.ref],
    );
    const { live, exists } = counted[0]!;
    if (!exists && live >= i.maxReferences) return { kind: 'too_many', limit: i.maxReferences };

    const plan = i.plan(row as MediaRow, now);
    const { rows: refRows } = await c.query<ReferenceRow & { inserted: boolean }>(
      `INSERT INTO media_references (media_id, ref, send_at, live_until) VALUES ($1, $2, $3, $4)
       ON CONFLICT (media_id, ref) DO UPDATE SET send_at = EXCLUDED.send_at, live_until = EXCLUDED.live_until, updated_at = now()
       RETURNING ref, send_at, created_at, (xmax = 0) AS inserted`,
      [i.mediaId, i.ref, i.sendAt, i.liveUntil],
    );
    const { inserted, ...reference } = refRows[0]!;
    const { rows: after } = await c.query<MediaRow>(
      `UPDATE media SET expires_at = GREATEST(expires_at, $2), updated_at = CASE WHEN $2 > expires_at THEN now() ELSE updated_at END
       WHERE id = $1 RETURNING media.*, ${refSummaryColumnsSql('media')}`,
      [i.mediaId, plan.expiresAt],
    );
    return { kind: 'added', reference, row: after[0]!, created: inserted, result: plan };
  });
}

/** The live references of one media, by send time. */
export async function listLiveReferences(db: Queryable, mediaId: string): Promise<ReferenceRow[]> {
  const { rows } = await db.query<ReferenceRow>(
    `SELECT ref, send_at, created_at FROM media_references WHERE media_id = $1 AND live_until > now() ORDER BY send_at, ref`,
    [mediaId],
  );
  return rows;
}

/** A send that happened or was cancelled: false when this app's media has no such reference. */
export async function removeReference(db: Queryable, appId: string, mediaId: string, ref: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `DELETE FROM media_references r USING media m
     WHERE r.media_id = $2 AND r.ref = $3 AND m.id = r.media_id AND m.app_id = $1 AND m.status NOT IN ('deleting', 'deleted')`,
    [appId, mediaId, ref],
  );
  return (rowCount ?? 0) > 0;
}

export type GuardedDeleteOutcome = { kind: 'not_found' } | { kind: 'in_use'; refs: RefSummary[] } | { kind: 'deleting'; row: MediaRow };

/**
 * A client's delete, refused while a live reference needs the media unless `force`: the row is
 * locked first, so a reference being added either committed before (and is seen here) or waits and
 * then finds the row `deleting`. On success the row answers 404 from now on (as `markDeleting`).
 */
export async function markDeletingUnlessReferenced(pool: Pool, appId: string, id: string, force: boolean): Promise<GuardedDeleteOutcome> {
  return withTransaction(pool, async (c) => {
    const { rows: target } = await c.query<{ id: string }>(
      `SELECT id FROM media WHERE app_id = $1 AND id = $2 AND status NOT IN ('deleting', 'deleted') FOR UPDATE`,
      [appId, id],
    );
    if (!target[0]) return { kind: 'not_found' };
    if (!force) {
      const refs = await liveRefSummaries(c, id);
      if (refs.length > 0) return { kind: 'in_use', refs };
    }
    const { rows } = await c.query<MediaRow>(
      `UPDATE media SET status = 'deleting', delete_reason = 'deleted', updated_at = now() WHERE id = $1 RETURNING *`,
      [id],
    );
    return { kind: 'deleting', row: rows[0]! };
  });
}

async function liveRefSummaries(db: Queryable | PoolClient, mediaId: string): Promise<RefSummary[]> {
  const { rows } = await db.query<{ ref: string; send_at: Date }>(
    `SELECT ref, send_at FROM media_references WHERE media_id = $1 AND live_until > now() ORDER BY send_at, ref`,
    [mediaId],
  );
  return rows.map((r) => ({ ref: r.ref, sendAt: r.send_at.toISOString() }));
}

/**
 * References a producer's job carried (queue payload `references`), written with the media row the
 * worker creates for it. A repeated delivery changes nothing; references already over are skipped.
 */
export async function insertReferences(db: Queryable, mediaId: string, refs: ReadonlyArray<{ ref: string; sendAt: Date; liveUntil: Date }>): Promise<number> {
  if (refs.length === 0) return 0;
  const { rowCount } = await db.query(
    `INSERT INTO media_references (media_id, ref, send_at, live_until)
     SELECT $1, u.ref, u.send_at, u.live_until FROM unnest($2::text[], $3::timestamptz[], $4::timestamptz[]) AS u(ref, send_at, live_until)
     WHERE u.live_until > now()
     ON CONFLICT (media_id, ref) DO NOTHING`,
    [mediaId, refs.map((r) => r.ref), refs.map((r) => r.sendAt), refs.map((r) => r.liveUntil)],
  );
  return rowCount ?? 0;
}

/** What a `media.expiring` event is built from: the event's media fields and the live references. */
export type ExpiringRow = Pick<
  MediaRow,
  'id' | 'app_id' | 'device_id' | 'kind' | 'media_path' | 'mime_type' | 'detected_mime' | 'size_bytes' | 'checksum' | 'error_code' | 'error_message' | 'expires_at'
> & { refs: RefSummary[] };

/**
 * Media due a `media.expiring` notice: not yet noticed, expiring within `noticeSeconds` (and not
 * yet expired), with a live reference whose send is at or after the expiry. Claims nothing: the
 * notice is recorded by `recordExpiryNotices`, which only one caller wins per media.
 */
export async function findExpiryNoticesDue(db: Queryable, noticeSeconds: number, limit: number): Promise<ExpiringRow[]> {
  // The NOT IN repeats media_due's predicate, so the window is a range scan of that index.
  const { rows } = await db.query<ExpiringRow>(
    `SELECT m.id, m.app_id, m.device_id, m.kind, m.media_path, m.mime_type, m.detected_mime, m.size_bytes, m.checksum,
            m.error_code, m.error_message, m.expires_at, COALESCE(${liveRefsJsonSql('m.id')}, '[]'::jsonb) AS refs
     FROM media m
     WHERE m.status IN ('queued', 'processing', 'ready') AND m.status NOT IN ('deleting', 'deleted') AND m.expiry_noticed_at IS NULL
       AND m.expires_at > now() AND m.expires_at <= now() + make_interval(secs => $1)
       AND EXISTS (SELECT 1 FROM media_references r WHERE r.media_id = m.id AND r.live_until > now() AND r.send_at >= m.expires_at)
     ORDER BY m.expires_at LIMIT $2`,

    [noticeSeconds, limit],
  );
  return rows;
}

/**
 * Marks each media noticed and writes its `media.expiring` outbox row (for apps with a webhook) in
 * one statement, conditional on the media not being noticed yet: of several sweepers racing on the
 * same media exactly one records it, and a crash before the commit records nothing. Returns the
 * media this call noticed and the deliveries to enqueue.
 */
export async function recordExpiryNotices(
  db: Queryable,
  items: ReadonlyArray<{ id: string; eventId: string; body: unknown }>,
): Promise<{ noticed: string[]; deliveries: string[] }> {
  if (items.length === 0) return { noticed: [], deliveries: [] };
  const { rows } = await db.query<{ id: string; delivery_id: string | null }>(
    `WITH i AS (SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[]) AS i(id, event_id, body)),
     marked AS (
       UPDATE media m SET expiry_noticed_at = now()
       WHERE m.id = ANY($1::text[]) AND m.expiry_noticed_at IS NULL AND m.status IN ('queued', 'processing', 'ready') AND m.expires_at > now()
       RETURNING m.id, m.app_id),
     outbox AS (
       INSERT INTO webhook_deliveries (id, app_id, event, media_id, body)
       SELECT i.event_id, marked.app_id, 'media.expiring', marked.id, i.body FROM marked JOIN i ON i.id = marked.id
       WHERE EXISTS (SELECT 1 FROM apps a WHERE a.id = marked.app_id AND a.webhook_url IS NOT NULL AND a.webhook_url <> '')
       RETURNING media_id, id)
     SELECT marked.id, outbox.id AS delivery_id FROM marked LEFT JOIN outbox ON outbox.media_id = marked.id`,
    [items.map((x) => x.id), items.map((x) => x.eventId), items.map((x) => JSON.stringify(x.body))],
  );
  return { noticed: rows.map((r) => r.id), deliveries: rows.flatMap((r) => (r.delivery_id ? [r.delivery_id] : [])) };
}

export interface ExpiringMedia {
  id: string;
  appId: string;
  status: string;
  expiresAt: string;
  references: { count: number; nextSendAt: string | null };
  refs: RefSummary[];
}

/** Media with a live reference that will be gone before `before` (CLI `media expiring`), soonest first. */
export async function listReferencedExpiringBefore(db: Queryable, before: Date, opts: { appId?: string; limit: number }): Promise<{ total: number; items: ExpiringMedia[] }> {
  const where = `m.status NOT IN ('deleting', 'deleted') AND m.expires_at < $1 AND ($2::text IS NULL OR m.app_id = $2) AND ${hasLiveReferenceSql('m')}`;
  const { rows } = await db.query<{ id: string; app_id: string; status: string; expires_at: Date; refs: RefSummary[]; total: number }>(
    `SELECT m.id, m.app_id, m.status, m.expires_at, COALESCE(${liveRefsJsonSql('m.id')}, '[]'::jsonb) AS refs, count(*) OVER ()::int AS total
     FROM media m WHERE ${where} ORDER BY m.expires_at, m.id LIMIT $3`,
    [before, opts.appId ?? null, opts.limit],
  );
  return {
    total: rows[0]?.total ?? 0,
    items: rows.map((r) => ({
      id: r.id,
      appId: r.app_id,
      status: r.status,
      expiresAt: r.expires_at.toISOString(),
      references: { count: r.refs.length, nextSendAt: r.refs[0]?.sendAt ?? null },
      refs: r.refs,
    })),
  };
}
