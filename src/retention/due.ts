import type { MediaRow } from '../db/repos/media.js';
import type { Queryable } from '../db/pool.js';
import type { DeleteReason } from '../webhooks/emit.js';
import { LIVE_TOKENS_SQL } from './lease.js';

/** Narrows a sweep to one app or one device (the immediate purge after a device is destroyed). */
export interface SweepScope {
  appId?: string;
  deviceId?: string;
}

export type ClaimedRow = MediaRow & { reason: DeleteReason };

/** Failed uploads, and queued/processing rows that name no source, are removed this long after their last change. */
export const ABANDONED_AFTER = "interval '1 hour'";
/**
 * A `queued`/`processing` row is accepted work when it names its input: a staging object (upload,
 * base64, slot PUT, CLI file: the row is written only once the bytes are staged), a URL, or a
 * producer's job (the source lives in the job). Such a row waits through a worker outage of any
 * length (the reconciler, which the sweeper runs too, re-enqueues it if the queue lost it) and only
 * expiry removes it. Uploads that never completed have no row at all (an unused slot lives in
 * `upload_slots`, a cut upload leaves at most a staging object `sweepStaging` removes), so a row
 * that names nothing is the only kind left to call abandoned.
 */
export const NAMES_NO_SOURCE = `m.staging_key IS NULL AND m.source_url IS NULL AND m.source <> 'queue'`;
/**
 * `deleting` rows no sweeper claimed (a client DELETE or a device destroy whose own deletion did not
 * finish) are left this long to the request that marked them before a sweep takes them over.
 */
export const UNCLAIMED_DELETING_GRACE_SECONDS = 30;
/** How far back the sweep looks for destroyed devices whose media arrived after the destroy. */
export const DESTROYED_DEVICE_WINDOW = "interval '7 days'";

/** Bound parameters of one statement: `p(value)` returns its placeholder. Only used values are sent. */
class Params {
  readonly values: unknown[] = [];
  p = (value: unknown): string => {
    this.values.push(value);
    return `$${this.values.length}`;
  };
}

const LIVE = `m.status NOT IN ('deleting', 'deleted')`;
const DEVICE_DESTROYED = `(m.device_id IS NOT NULL AND EXISTS (SELECT 1 FROM devices d WHERE d.app_id = m.app_id AND d.id = m.device_id AND d.status = 'destroyed'))`;
const REASON = `CASE WHEN ${DEVICE_DESTROYED} THEN 'device_destroyed' WHEN m.expires_at <= now() THEN 'expired' ELSE 'retention' END`;

/**
 * Why a row is due, one index-backed query each. One OR of all of them cannot use an index (the
 * device test alone forces a scan of every live row), so every claim would scan and sort the
 * table; separate arms each stop after LIMIT rows.
 */
interface Arm {
  name: string;
  from: string;
  where: (p: Params['p'], maxRetentionSeconds: number) => string;
  order?: string;
}

const ARMS: readonly Arm[] = [
  // Partial index media_due (expires_at) WHERE status NOT IN ('deleting', 'deleted').
  { name: 'expired', from: 'media m', where: () => 'm.expires_at <= now()', order: 'm.expires_at' },
  // Media that reached a device after its destroy (the destroy itself marks the device's media).
  {
    name: 'device_destroyed',
    from: 'devices d JOIN media m ON m.app_id = d.app_id AND m.device_id = d.id',
    where: () => `d.status = 'destroyed' AND d.destroyed_at >= now() - ${DESTROYED_DEVICE_WINDOW}`,
  },
  // Partial index media_live_created: finds rows created before the cap was lowered.
  { name: 'retention', from: 'media m', where: (p, cap) => `m.created_at <= now() - make_interval(secs => ${p(cap)})`, order: 'm.created_at' },
  // Index media_status_updated (status, updated_at).
  { name: 'failed', from: 'media m', where: () => `m.status = 'failed' AND m.updated_at <= now() - ${ABANDONED_AFTER}`, order: 'm.updated_at' },
  {
    name: 'abandoned',
    from: 'media m',
    where: () => `m.status IN ('queued', 'processing') AND m.updated_at <= now() - ${ABANDONED_AFTER} AND ${NAMES_NO_SOURCE}`,
    order: 'm.updated_at',
  },
];

function scopeSql(p: Params['p'], scope: SweepScope): string {
  const parts: string[] = [];
  if (scope.appId !== undefined) parts.push(`m.app_id = ${p(scope.appId)}`);
  if (scope.deviceId !== undefined) parts.push(`m.device_id = ${p(scope.deviceId)}`);
  return parts.length ? parts.join(' AND ') : 'true';
}

function armSelect(arm: Arm, columns: string, p: Params['p'], cap: number, scope: SweepScope): string {
  return `SELECT ${columns} FROM ${arm.from} WHERE ${LIVE} AND ${arm.where(p, cap)} AND ${scopeSql(p, scope)}`;
}

/**
 * Claims up to `limit` due rows for lease `token`: each arm is one short statement (its own
 * transaction), so no lock outlives the statement that took it and concurrent sweepers skip each
 * other's rows instead of waiting. The rows answer 404 from here on.
 */
export async function claimDue(db: Queryable, token: number, limit: number, maxRetentionSeconds: number, scope: SweepScope = {}): Promise<ClaimedRow[]> {
  const out: ClaimedRow[] = [];
  for (const arm of ARMS) {
    if (out.length >= limit) break;
    const q = new Params();
    const ids = `${armSelect(arm, 'm.id', q.p, maxRetentionSeconds, scope)} ${arm.order ? `ORDER BY ${arm.order}` : ''} LIMIT ${q.p(limit - out.length)} FOR UPDATE OF m SKIP LOCKED`;
    // ANY(ARRAY(…)) keeps the update a primary-key lookup of the locked ids whatever the batch size;
    // as a join the planner turns to a scan of the whole table once a batch is large.
    const sql = `UPDATE media m SET status = 'deleting', delete_reason = ${REASON}, sweep_claim = ${q.p(token)}, updated_at = now()
      WHERE m.id = ANY(ARRAY(${ids})) AND ${LIVE}
      RETURNING m.*, m.delete_reason AS reason`;
    const { rows } = await db.query<ClaimedRow>(sql, q.values);
    out.push(...rows);
  }
  return out;
}

/** `deleting` rows nobody is working on: their sweeper died, or the request that marked them gave up. */
function abandonedDeleting(p: Params['p']): string {
  return `m.status = 'deleting' AND CASE
    WHEN m.sweep_claim IS NULL THEN m.updated_at <= now() - make_interval(secs => ${p(UNCLAIMED_DELETING_GRACE_SECONDS)})
    ELSE m.sweep_claim NOT IN (${LIVE_TOKENS_SQL}) END`;
}

/** Takes over abandoned `deleting` rows for lease `token`; their reason is the one they were marked with. */
export async function claimAbandonedDeleting(db: Queryable, token: number, limit: number, scope: SweepScope = {}): Promise<ClaimedRow[]> {
  const q = new Params();
  const ids = `SELECT m.id FROM media m WHERE ${abandonedDeleting(q.p)} AND ${scopeSql(q.p, scope)} ORDER BY m.updated_at LIMIT ${q.p(limit)} FOR UPDATE OF m SKIP LOCKED`;
  const sql = `UPDATE media m SET sweep_claim = ${q.p(token)}, updated_at = now()
     WHERE m.id = ANY(ARRAY(${ids})) AND m.status = 'deleting'
     RETURNING m.*, COALESCE(m.delete_reason, 'expired') AS reason`;
  const { rows } = await db.query<ClaimedRow>(sql, q.values);
  return rows;
}

/** Every row a sweep would delete, with its reason, each once (an expired failed upload is due twice). */
function allDueSql(p: Params['p'], cap: number, scope: SweepScope): string {
  const arms = ARMS.map((arm, i) => `UNION ALL ${armSelect(arm, `m.id, ${REASON} AS reason, ${i + 1} AS pri`, p, cap, scope)}`);
  return `SELECT DISTINCT ON (u.id) u.id, u.reason FROM (
      SELECT m.id, COALESCE(m.delete_reason, 'expired') AS reason, 0 AS pri FROM media m WHERE m.status = 'deleting' AND ${scopeSql(p, scope)}
      ${arms.join('\n      ')}
    ) u ORDER BY u.id, u.pri`;
}

/** Due rows not yet deleted (including those being deleted): the sweep backlog. */
export async function countBacklog(db: Queryable, maxRetentionSeconds: number, scope: SweepScope = {}): Promise<number> {
  const q = new Params();
  const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${allDueSql(q.p, maxRetentionSeconds, scope)}) due`, q.values);
  return rows[0]!.n;
}

export interface DuePreview {
  total: number;
  bytes: number;
  byReason: Record<string, number>;
  items: Array<{ id: string; appId: string; reason: DeleteReason; bytes: number; status: string; expiresAt: string }>;
}

/** What a sweep would delete now, claiming nothing (`sweep --dry-run`). */
export async function previewDue(db: Queryable, maxRetentionSeconds: number, scope: SweepScope, itemLimit: number): Promise<DuePreview> {
  const a = new Params();
  const agg = await db.query<{ reason: DeleteReason; n: number; bytes: number }>(
    `SELECT due.reason, count(*)::int AS n, COALESCE(sum(m.stored_bytes), 0)::bigint AS bytes
     FROM (${allDueSql(a.p, maxRetentionSeconds, scope)}) due JOIN media m ON m.id = due.id GROUP BY due.reason`,
    a.values,
  );
  const b = new Params();
  const items = await db.query<{ id: string; app_id: string; reason: DeleteReason; stored_bytes: number | null; status: string; expires_at: Date }>(
    `SELECT m.id, m.app_id, due.reason, m.stored_bytes, m.status, m.expires_at
     FROM (${allDueSql(b.p, maxRetentionSeconds, scope)}) due JOIN media m ON m.id = due.id
     ORDER BY m.expires_at, m.id LIMIT ${b.p(Math.max(0, Math.floor(itemLimit)))}`,
    b.values,
  );
  const byReason: Record<string, number> = {};
  let total = 0;
  let bytes = 0;
  for (const r of agg.rows) {
    byReason[r.reason] = r.n;
    total += r.n;
    bytes += Number(r.bytes);
  }
  return {
    total,
    bytes,
    byReason,
    items: items.rows.map((r) => ({
      id: r.id,
      appId: r.app_id,
      reason: r.reason,
      bytes: r.stored_bytes ?? 0,
      status: r.status,
      expiresAt: r.expires_at.toISOString(),
    })),
  };
}
