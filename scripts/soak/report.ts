/**
 * The soak report's measured lines (throughput and latency per phase, per-media work of each service,
 * CPU per role, peak RSS) and the text it prints: formatting only, over what run.ts collected.
 */
import type { Line, MediaRowLite } from './invariants.js';
import { percentile } from './invariants.js';
import type { Submission } from './load.js';
import type { RoleProcess } from './processes.js';
import type { FaultEvent } from './run.js';

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;

/** Throughput and upload → ready latency, without faults (the baseline) and during them; peak RSS. */
export function measure(
  subs: Submission[],
  rows: MediaRowLite[],
  peakRss: Array<{ name: string; peakBytes: number }>,
  roles: RoleProcess[],
  events: FaultEvent[],
): string[] {
  const rowById = new Map(rows.map((r) => [r.id, r]));
  const out: string[] = [];
  for (const phase of ['baseline', 'faults'] as const) {
    const mine = subs.filter((s) => s.phase === phase);
    if (mine.length === 0) continue;
    const lat: number[] = [];
    let last = 0;
    for (const s of mine) {
      const r = s.mediaId ? rowById.get(s.mediaId) : undefined;
      if (!r?.ready_at) continue;
      lat.push(r.ready_at.getTime() - s.startedAt);
      last = Math.max(last, r.ready_at.getTime());
    }
    lat.sort((a, b) => a - b);
    const first = Math.min(...mine.map((s) => s.startedAt));
    const span = (last - first) / 1000;
    out.push(
      `${phase === 'baseline' ? 'without faults' : 'during faults '}: ${mine.length} media sent, ${lat.length} reached ready in ${span.toFixed(0)} s = ${(lat.length / Math.max(span, 1)).toFixed(1)} ready/s; upload → ready p50 ${(percentile(lat, 50) / 1000).toFixed(2)} s, p99 ${(percentile(lat, 99) / 1000).toFixed(2)} s, max ${(percentile(lat, 100) / 1000).toFixed(2)} s`,
    );
  }
  const byWay = new Map<string, number[]>();
  for (const s of subs) {
    const r = s.mediaId ? rowById.get(s.mediaId) : undefined;
    if (r?.ready_at) byWay.set(s.way, [...(byWay.get(s.way) ?? []), r.ready_at.getTime() - s.startedAt]);
  }
  out.push(
    `p50 upload → ready by way in: ${[...byWay.entries()].map(([w, l]) => `${w} ${(percentile(l.sort((a, b) => a - b), 50) / 1000).toFixed(2)} s`).join(', ')}`,
  );
  out.push(`faults done: ${countBy(events.map((e) => e.fault))}`);
  out.push(`restarts: ${roles.filter((r) => r.restarts > 0).map((r) => `${r.name} ${r.restarts}${r.failedStarts ? ` (${r.failedStarts} starts refused while a dependency was down, tried again)` : ''}`).join(', ') || 'none'}`);
  out.push(`peak RSS: ${peakRss.map((p) => `${p.name} ${mib(p.peakBytes)}`).join(', ')}`);
  return out;
}

/** Per-media work of each service and CPU per role: the numbers docs/scaling.md scales from. */
export function usageLines(
  u: { s3: Record<string, number>; redis: Array<{ name: string; role: string; commands: number }>; pg?: { xact: string; ins: string; upd: string; del: string }; ownQueries: number; loadAvg: number[] },
  cpu: Map<string, number>,
  media: number,
  loadAtStart: number[],
): string[] {
  const per = (n: number) => (n / Math.max(1, media)).toFixed(1);
  const out: string[] = [];
  const s3Total = Object.values(u.s3).reduce((a, b) => a + b, 0);
  out.push(`S3 requests per media: ${per(s3Total)} (${Object.entries(u.s3).sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ${per(n)}`).join(', ')})`);
  const masters = u.redis.filter((r) => r.role === 'master').sort((a, b) => b.commands - a.commands);
  if (masters[0]) out.push(`Redis commands per media on the master holding the prefix: ${per(masters[0].commands)} (${u.redis.map((r) => `${r.name} ${r.role} ${r.commands}`).join(', ')}; a node restarted by the fault counts from its restart)`);
  if (u.pg) out.push(`PostgreSQL per media: ${per(Number(u.pg.xact) - u.ownQueries)} transactions (the soak's own ${u.ownQueries} taken off), ${per(Number(u.pg.ins))} rows inserted, ${per(Number(u.pg.upd))} updated, ${per(Number(u.pg.del))} deleted`);
  const byRole = new Map<string, number>();
  for (const [name, sec] of cpu) {
    const role = name.replace(/[-:[].*$/, '');
    byRole.set(role, (byRole.get(role) ?? 0) + sec);
  }
  out.push(`CPU seconds per 1000 media: ${[...byRole.entries()].sort((a, b) => b[1] - a[1]).map(([r, sec]) => `${r} ${((sec * 1000) / Math.max(1, media)).toFixed(0)}`).join(', ')} (total ${[...byRole.values()].reduce((a, b) => a + b, 0).toFixed(0)} s)`);
  out.push(`machine load average: ${loadAtStart.map((l) => l.toFixed(1)).join(' ')} at the start, ${u.loadAvg.map((l) => l.toFixed(1)).join(' ')} at the end (2 cores, shared)`);
  return out;
}

function countBy(xs: string[]): string {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return [...m.entries()].map(([k, n]) => `${k} ×${n}`).join(', ');
}

export function formatReport(topology: string[], events: FaultEvent[], lines: Line[], measures: string[], held: number, broken: number): string {
  const out: string[] = ['', 'mediaflow soak', '', 'topology:'];
  for (const l of topology) out.push(`  ${l}`);
  out.push('', 'faults (seconds from the start of the load):');
  for (const e of events) out.push(`  ${e.t.toFixed(1).padStart(6)}  ${e.fault.padEnd(18)} ${e.detail}`);
  out.push('', 'measured:');
  for (const m of measures) out.push(`  ${m}`);
  out.push('', 'invariants:');
  for (const l of lines) out.push(`  [${l.held ? 'held' : 'BROKEN'}] ${l.name}: ${l.detail}`);
  out.push('', `invariants: ${held} held, ${broken} broken`);
  return out.join('\n');
}

