/**
 * The soak's verdict: what it saw (the client's record, the database, the bucket, the scratch
 * directories, the webhook receiver) checked against what mediaflow promises, one line each.
 * Pure over the collected evidence, so the checks themselves are easy to read and to test.
 */
import { ERROR_STATUS } from '../../src/domain/errors.js';
import type { Submission } from './load.js';

export interface MediaRowLite {
  id: string;
  status: string;
  error_code: string | null;
  delete_reason: string | null;
  device_id: string | null;
  storage_key: string;
  variants: Array<{ key?: string }> | null;
  original_name: string | null;
  expires_at: Date;
  deleted_at: Date | null;
  ready_at: Date | null;
  created_at: Date;
}

export interface Evidence {
  submissions: Submission[];
  rows: MediaRowLite[];
  /** `media.deleted` audit rows. */
  audits: Array<{ media_id: string; reason: string | null; at: Date }>;
  deliveries: Array<{ id: string; event: string; media_id: string | null; status: string }>;
  /** Every webhook POST the receiver got: event id and raw body. */
  received: Array<{ id: string; body: string }>;
  /** Every key in the bucket, plus `upload:<key>` for each multipart upload still open. */
  bucketKeys: string[];
  /** Files and directories left under the processes' scratch roots (TMPDIR). */
  scratchLeft: string[];
  destroyedDevices: string[];
  /** The API-killed-mid-upload fault: whether the client saw the connection cut, and the file name it sent. */
  cutUpload?: { clientSawCut: boolean; filename: string; detail: string };
  peakRss: Array<{ name: string; peakBytes: number }>;
  rssLimitBytes: number;
  /** `mediaflow orphans --fix --min-age 0` run once at the end, and the bucket before it. */
  repair?: { objectsWithoutRow?: number; why?: string[]; rowsWithoutObject?: number; objectsDeleted?: number; rowsMarkedFailed?: number; error?: string; bucketBefore: string[] };
  /** For accepted media without a row: what the queue says of their job (state, attempts, failure). */
  jobStates?: Record<string, string>;
}

export interface Line {
  name: string;
  held: boolean;
  detail: string;
}

const CONTRACT_CODES = new Set(Object.keys(ERROR_STATUS));
const TERMINAL = new Set(['ready', 'failed', 'deleted']);

function count<T>(items: T[], key: (t: T) => string): string {
  const m = new Map<string, number>();
  for (const i of items) m.set(key(i), (m.get(key(i)) ?? 0) + 1);
  return [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
}

const sample = <T>(items: T[], n = 3): string => items.slice(0, n).map(String).join(', ') + (items.length > n ? ', …' : '');

export function checkInvariants(ev: Evidence): Line[] {
  const lines: Line[] = [];
  const rowById = new Map(ev.rows.map((r) => [r.id, r]));
  const auditByMedia = new Map<string, Array<{ reason: string | null; at: Date }>>();
  for (const a of ev.audits) auditByMedia.set(a.media_id, [...(auditByMedia.get(a.media_id) ?? []), a]);
  const accepted = ev.submissions.filter((s) => s.outcome === 'accepted');
  const destroyed = new Set(ev.destroyedDevices);

  // 1. Nothing lost: every accepted media is ready, failed with a contract code, or deleted with an audit row.
  const lost: string[] = [];
  // A producer's job for a device destroyed before a worker took it is refused before any row is
  // written: the job fails (NOT_FOUND) in the queue, and no media.failed webhook is sent.
  const refusedInQueue = accepted.filter(
    (s) => !rowById.has(s.mediaId!) && s.way.startsWith('producer') && !!s.deviceId && destroyed.has(s.deviceId) && /^failed, .*no device /.test(ev.jobStates?.[s.mediaId!] ?? ''),
  );
  for (const s of accepted) {
    if (refusedInQueue.includes(s)) continue;
    const r = rowById.get(s.mediaId!);
    const ok =
      r &&
      (r.status === 'ready' ||
        (r.status === 'failed' && r.error_code !== null && CONTRACT_CODES.has(r.error_code)) ||
        (r.status === 'deleted' && (auditByMedia.get(r.id)?.length ?? 0) > 0));
    if (!ok) lost.push(`${s.mediaId} (${s.way}, ${r ? r.status : `no row; job: ${ev.jobStates?.[s.mediaId!] ?? '?'}`})`);
  }
  const ends = accepted.map((s) => rowById.get(s.mediaId!)).filter((r): r is MediaRowLite => !!r);
  lines.push({
    name: 'every accepted media ready, failed with a contract code, or deleted with an audit row',
    held: lost.length === 0,
    detail: `${accepted.length} accepted: ${count(ends, (r) => (r.status === 'failed' ? `failed ${r.error_code}` : r.status === 'deleted' ? `deleted (${r.delete_reason})` : r.status))}${refusedInQueue.length ? `, producer jobs refused in the queue for a destroyed device (no row, no webhook) ${refusedInQueue.length}` : ''}; ${lost.length} lost${lost.length ? `: ${sample(lost)}` : ''}`,
  });

  // 2. Each media ended as its sample says: good files never fail because of a fault.
  const wrong: string[] = [];
  for (const s of accepted) {
    const r = rowById.get(s.mediaId!);
    if (!r) continue;
    const exp = s.sample.expect;
    const deviceGone = !!s.deviceId && destroyed.has(s.deviceId);
    const fine =
      r.status === 'deleted' ||
      (exp.status === 'ready' && r.status === 'ready') ||
      (exp.status === 'failed' && r.status === 'failed' && r.error_code === exp.code) ||
      // A producer job for a device destroyed before its worker got to it is refused by ownership.
      (deviceGone && r.status === 'failed' && r.error_code === 'NOT_FOUND');
    if (!fine) wrong.push(`${s.sample.id} via ${s.way} → ${r.status}${r.error_code ? ` ${r.error_code}` : ''} (${r.id})`);
  }
  lines.push({ name: 'every media ended as its file says (good files ready, broken ones failed with their code)', held: wrong.length === 0, detail: `${wrong.length} otherwise${wrong.length ? `: ${sample(wrong)}` : ''}` });

  // 3. No row left in flight, including rows of requests whose answer the client never got.
  const unknown = ev.rows.filter((r) => !accepted.some((s) => s.mediaId === r.id));
  const inFlight = ev.rows.filter((r) => !TERMINAL.has(r.status));
  lines.push({
    name: 'no media left queued, processing or deleting',
    held: inFlight.length === 0,
    detail: `${ev.rows.length} rows (${unknown.length} the client never got an answer for: ${count(unknown, (r) => r.status) || 'none'}); ${inFlight.length} in flight${inFlight.length ? `: ${sample(inFlight.map((r) => `${r.id} ${r.status}`))}` : ''}`,
  });

  // 4. Objects and rows match one to one.
  const objects = ev.bucketKeys.filter((k) => k.startsWith('objects/'));
  const owner = new Map<string, string[]>();
  for (const r of ev.rows) {
    for (const k of [r.storage_key, ...(r.variants ?? []).map((v) => v.key).filter((k): k is string => !!k)]) owner.set(k, [...(owner.get(k) ?? []), r.id]);
  }
  const orphans = objects.filter((k) => {
    const ids = owner.get(k) ?? [];
    return ids.length !== 1 || rowById.get(ids[0]!)!.status !== 'ready';
  });
  const keySet = new Set(objects);
  /** A key with what the database says of its media: `<key> [row: status, stored as <run>]`. */
  function describeKey(k: string): string {
    const id = /(med_[a-z0-9]+)/.exec(k)?.[1];
    const r = id ? rowById.get(id) : undefined;
    const s = id ? ev.submissions.find((x) => x.mediaId === id) : undefined;
    return `${k} [${r ? `row ${r.status}${r.error_code ? ` ${r.error_code}` : ''}, stored as ${r.storage_key.split('.').slice(-2, -1)[0] ?? '-'}` : 'no row'}${s ? `, ${s.way}${s.outcome ? ` ${s.outcome}` : ''}` : ', not accepted'}]`;
  }
  const missing = ev.rows.filter((r) => r.status === 'ready' && !keySet.has(r.storage_key));
  const rp = ev.repair;
  const repairOk = !rp || (!rp.error && rp.rowsWithoutObject === 0 && rp.rowsMarkedFailed === 0);
  const before = rp ? rp.bucketBefore.filter((k) => k.startsWith('objects/')).length - objects.length : 0;
  lines.push({
    name: `every stored object belongs to exactly one ready row, every ready row has its object${rp ? ' (after `mediaflow orphans --fix`, which must find no ready row without its object)' : ''}`,
    held: orphans.length === 0 && missing.length === 0 && repairOk,
    detail: `${rp ? (rp.error ? `repair failed: ${rp.error}; ` : `the repair deleted ${rp.objectsDeleted} objects killed runs left (${count(rp.why ?? [], (w) => w) || 'none'}), found ${rp.rowsWithoutObject} ready rows without object, marked ${rp.rowsMarkedFailed} failed; `) : ''}${rp && before !== (rp.objectsDeleted ?? 0) ? `bucket shrank by ${before}; ` : ''}`,
  });
  lines[lines.length - 1]!.detail += `${objects.length} objects, ${ev.rows.filter((r) => r.status === 'ready').length} ready rows; ${orphans.length} orphans${orphans.length ? ` (${sample(orphans.map(describeKey))})` : ''}, ${missing.length} missing${missing.length ? ` (${sample(missing.map((r) => r.id))})` : ''}`;

  // 5. No staging object, open multipart upload or anything else left in the bucket.
  const leftovers = ev.bucketKeys.filter((k) => !k.startsWith('objects/'));
  lines.push({ name: 'no staging object or open multipart upload left', held: leftovers.length === 0, detail: `${leftovers.length} left${leftovers.length ? `: ${count(leftovers, (k) => k.split('/')[0]!)} (${sample(leftovers.map(describeKey))})` : ''}` });

  // 6. No plaintext scratch file left behind, killed workers included.
  lines.push({ name: 'no plaintext scratch file left', held: ev.scratchLeft.length === 0, detail: `${ev.scratchLeft.length} left${ev.scratchLeft.length ? `: ${sample(ev.scratchLeft)}` : ''}` });

  // 7. Nothing deleted before its expiresAt (expiry deletions; explicit and device deletions are on demand).
  const early = ev.rows.filter((r) => {
    if (r.status !== 'deleted' || r.delete_reason !== 'expired') return false;
    const at = auditByMedia.get(r.id)?.[0]?.at ?? r.deleted_at;
    return !at || at.getTime() < r.expires_at.getTime() || (r.deleted_at !== null && r.deleted_at.getTime() < r.expires_at.getTime());
  });
  const expired = ev.rows.filter((r) => r.status === 'deleted' && r.delete_reason === 'expired');
  const unexplained = ev.rows.filter((r) => r.status === 'deleted' && !['expired', 'device_destroyed'].includes(r.delete_reason ?? ''));
  lines.push({
    name: 'nothing deleted before its expiresAt',
    held: early.length === 0 && unexplained.length === 0,
    detail: `${expired.length} deleted on expiry during the run, ${early.length} early; ${unexplained.length} deleted for another reason${unexplained.length ? ` (${sample(unexplained.map((r) => `${r.id} ${r.delete_reason}`))})` : ''}`,
  });

  // 8. Destroyed devices: every media of theirs gone, bytes too, each with one audit row.
  const devRows = ev.rows.filter((r) => r.device_id !== null && destroyed.has(r.device_id));
  const devLeft = devRows.filter((r) => !(r.status === 'deleted' || (r.status === 'failed' && r.error_code === 'NOT_FOUND')) || keySet.has(r.storage_key));
  const devNoAudit = devRows.filter((r) => r.status === 'deleted' && (auditByMedia.get(r.id)?.length ?? 0) === 0);
  lines.push({
    name: 'every media of a destroyed device deleted, bytes and row, with an audit row',
    held: ev.destroyedDevices.length > 0 && devLeft.length === 0 && devNoAudit.length === 0,
    detail: `${ev.destroyedDevices.length} devices destroyed, ${devRows.length} of their media: ${count(devRows, (r) => r.status) || 'none'}; ${devLeft.length} left, ${devNoAudit.length} without audit`,
  });

  // 9. One audit row per deletion, one media.ready / media.deleted event per media: nothing twice.
  const twiceAudited = [...auditByMedia.entries()].filter(([, a]) => a.length > 1).map(([id]) => id);
  const perMediaEvent = new Map<string, number>();
  for (const d of ev.deliveries) if (d.media_id && (d.event === 'media.ready' || d.event === 'media.deleted' || d.event === 'media.failed')) perMediaEvent.set(`${d.event} ${d.media_id}`, (perMediaEvent.get(`${d.event} ${d.media_id}`) ?? 0) + 1);
  const twiceEvents = [...perMediaEvent.entries()].filter(([, n]) => n > 1).map(([k]) => k);
  lines.push({
    name: 'nothing twice: one audit row per deletion, one ready/failed/deleted event per media',
    held: twiceAudited.length === 0 && twiceEvents.length === 0,
    detail: `${ev.audits.length} audit rows, ${ev.deliveries.length} events; ${twiceAudited.length} media audited twice, ${twiceEvents.length} events twice${twiceEvents.length ? ` (${sample(twiceEvents)})` : ''}`,
  });

  // 10. Webhooks: every event delivered at least once; never one id with two bodies.
  const seen = new Map<string, Set<string>>();
  for (const r of ev.received) seen.set(r.id, (seen.get(r.id) ?? new Set()).add(r.body));
  const undelivered = ev.deliveries.filter((d) => d.status !== 'delivered' || !seen.has(d.id));
  const twoBodies = [...seen.entries()].filter(([, b]) => b.size > 1).map(([id]) => id);
  const redeliveries = ev.received.length - seen.size;
  lines.push({
    name: 'every webhook event delivered at least once',
    held: undelivered.length === 0 && ev.deliveries.length > 0,
    detail: `${ev.deliveries.length} events (${count(ev.deliveries, (d) => d.event)}), ${ev.received.length} POSTs received (${redeliveries} repeats); ${undelivered.length} undelivered${undelivered.length ? ` (${sample(undelivered.map((d) => `${d.id} ${d.status}`))})` : ''}`,
  });
  lines.push({ name: 'no event id delivered with two different bodies', held: twoBodies.length === 0, detail: `${seen.size} event ids; ${twoBodies.length} with two bodies` });

  // 11. What clients saw: refusals carry contract codes; nobody had to give up.
  const answers = ev.submissions.flatMap((s) => s.answers);
  // HTTP answers carry a contract code; the producer module's errors too (`producer QUEUE_UNAVAILABLE`).
  const unclear = answers.filter((a) => /^\d{3}$/.test(a) || (/^\d{3} /.test(a) && !/^\d{3} ([A-Z_]+|device-gone)$/.test(a)) || a.startsWith('producer:'));
  const refused = ev.submissions.filter((s) => s.outcome === 'refused' && !s.answers.includes('404 device-gone'));
  const gaveUp = ev.submissions.filter((s) => s.outcome === 'gave-up');
  // An outage is 502/503 with its code; a 500 is the service failing in a way the contract does not name.
  const internal = ev.submissions.flatMap((s) => s.answers.filter((a) => /^5\d\d /.test(a) && !/^50[23] /.test(a)).map(() => s.way));
  lines.push({
    name: 'clients saw a contract code or a cut connection, and every good upload got in',
    held: unclear.length === 0 && internal.length === 0 && refused.length === 0 && gaveUp.length === 0,
    detail: `${answers.length} non-accepting answers (${count(answers, (a) => a.replace(/^conn .*/, 'connection cut/refused')) || 'none'})${internal.length ? `; 5xx without an outage code by way in: ${count(internal, (x) => x)}` : ''}; ${refused.length} refused${refused.length ? ` (${sample(refused.map((s) => `${s.way}: ${s.refusal}`), 2)})` : ''}, ${gaveUp.length} gave up${gaveUp.length ? ` (${sample(gaveUp.map((s) => `${s.way} ${s.sample.id}, last answers: ${s.answers.slice(-3).join(' / ')}`), 2)})` : ''}`,
  });

  // 12. The API killed mid-upload: the client saw the cut, nothing was kept.
  if (ev.cutUpload) {
    const kept = ev.rows.filter((r) => r.original_name === ev.cutUpload!.filename);
    lines.push({
      name: 'an API killed mid-upload: the client sees a cut connection and nothing is kept',
      held: ev.cutUpload.clientSawCut && kept.length === 0,
      detail: `client saw: ${ev.cutUpload.detail}; ${kept.length} rows kept`,
    });
  }

  // 13. Memory.
  const over = ev.peakRss.filter((p) => p.peakBytes > ev.rssLimitBytes);
  lines.push({
    name: `every process's peak RSS under ${Math.round(ev.rssLimitBytes / 2 ** 20)} MiB`,
    held: over.length === 0 && ev.peakRss.length > 0,
    detail: `${ev.peakRss.length} processes; highest ${ev.peakRss.reduce((a, p) => (p.peakBytes > a.peakBytes ? p : a), { name: '-', peakBytes: 0 }).name}${over.length ? `; over: ${sample(over.map((p) => p.name))}` : ''}`,
  });
  return lines;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
