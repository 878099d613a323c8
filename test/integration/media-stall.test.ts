/**
 * A real stall, with real processes: two `mediaflow start --role worker` processes on real Redis,
 * PostgreSQL, the fs store and ffmpeg, JOB_LOCK_SECONDS=1. The first worker is frozen (SIGSTOP, as
 * a VM pause or a long GC freezes a process) in the middle of a transcode, so its job lock lapses
 * and BullMQ's stalled checker hands the job to the second worker; the first is then thawed and
 * finishes its own run too.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runMediaflow, type Child } from '../helpers/child.js';
import { sha256 } from '../helpers/media.js';
import { multipart, startService, waitFor, type TestService } from '../helpers/service.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

/** A WebM clip that must be transcoded to MP4 (a second or two of ffmpeg): long enough to freeze a worker mid-job. */
function makeWebm(dir: string): string {
  const out = path.join(dir, 'clip.webm');
  execFileSync('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440',
    '-t', '6', '-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '1M', '-c:a', 'libopus', '-shortest', '-y', out]);
  return out;
}

function worker(svc: TestService): Child {
  const w = runMediaflow(['start', '--role', 'worker'], { ...svc.env, WORKER_CONCURRENCY: '1', LOG_LEVEL: 'info' });
  cleanups.push(async () => {
    w.proc.kill('SIGCONT');
    w.proc.kill('SIGKILL');
  });
  return w;
}

/** Names of the processes whose parent is `pid` (from /proc: the worker spawns ffmpeg directly). */
async function childrenOf(pid: number): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // "pid (comm) state ppid …"; comm may hold spaces, so split after its closing parenthesis.
    const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat);
    if (m && Number(m[2]) === pid) names.push(m[1]!);
  }
  return names;
}

const logLines = (w: Child) =>
  w.output().split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l) as Record<string, any>];
    } catch {
      return [];
    }
  });

describe('a stalled job taken over by a second worker', () => {
  it('is ready exactly once, with the checksum of the object it points to, and the losing run leaves nothing behind', async () => {
    const svc = await startService({ role: 'api', env: { JOB_LOCK_SECONDS: '1' } });
    cleanups.push(() => svc.stop());
    const app = await svc.newApp({ webhookUrl: 'https://hooks.example.com/mediaflow' });
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'mf-stall-'));
    cleanups.push(() => rm(tmp, { recursive: true, force: true }));
    const bytes = await readFile(makeWebm(tmp));
    const pool = svc.running.rt.pool;
    const rowOf = async (id: string) => (await pool.query('SELECT * FROM media WHERE id = $1', [id])).rows[0];

    const first = worker(svc);
    const res = await svc.call('/v1/media', { method: 'POST', key: app.apiKey, body: multipart({ kind: 'video' }, { bytes, name: 'clip.webm', type: 'video/webm' }) });
    expect(res.status).toBe(202);
    const id = ((await res.json()) as any).data.id as string;
    // Frozen while its transcode runs: ffmpeg (a process of its own) goes on and finishes meanwhile.
    await waitFor(async () => (await childrenOf(first.proc.pid!)).includes('ffmpeg'), 60_000, 10);
    first.proc.kill('SIGSTOP');
    expect((await rowOf(id)).status).toBe('processing');

    // The frozen worker's lock lapses; the second worker's stalled checker takes the job over.
    const second = worker(svc);
    const ready = await waitFor(async () => {
      const r = await rowOf(id);
      return r?.status === 'ready' || r?.status === 'failed' ? r : null;
    }, 60_000, 100);
    expect(ready.status, second.output().slice(-2000)).toBe('ready');
    expect(ready.attempts).toBe(2);
    const sealedBytes = async (key: string) => {
      const chunks: Buffer[] = [];
      for await (const c of await svc.running.rt.store.get(key)) chunks.push(c as Buffer);
      return sha256(Buffer.concat(chunks));
    };
    const committed = await sealedBytes(ready.storage_key);

    // The first run resumes where it was frozen, stores what it made under its own keys, and must
    // not commit: its claim is stale.
    first.proc.kill('SIGCONT');
    const discarded = await waitFor(async () => logLines(first).find((l) => l.mediaId === id && l.msg === 'media changed state during processing; result discarded'), 60_000, 100)
      .catch((err: Error) => {
        throw new Error(`${err.message}\n${first.output().slice(-4000)}`);
      });
    expect(ready.storage_key).not.toContain(discarded.runId);

    const row = await rowOf(id);
    expect(row.status).toBe('ready');
    expect(row.ready_at.getTime()).toBe(ready.ready_at.getTime());
    expect(row.storage_key).toBe(ready.storage_key);
    // The committed object was never rewritten by the losing run (sealed bytes are unique per write).
    expect(await sealedBytes(row.storage_key)).toBe(committed);
    const content = await svc.call(`/v1/media/${id}/content`, { key: app.apiKey });
    expect(content.status).toBe(200);
    expect(sha256(Buffer.from(await content.arrayBuffer()))).toBe(row.checksum);
    // Under objects/<app>/ only what the row points at: the winner's object and its poster.
    const keys = async (prefix: string) => {
      const out: string[] = [];
      for await (const o of svc.running.rt.store.list(prefix)) out.push(o.key);
      return out.sort();
    };
    expect(await keys(`objects/${app.appId}/`)).toEqual([row.storage_key, ...row.variants.map((v: { key: string }) => v.key)].sort());
    expect(await keys('staging/')).toEqual([]);
    const { rows: events } = await pool.query('SELECT event FROM webhook_deliveries WHERE media_id = $1', [id]);
    expect(events).toEqual([{ event: 'media.ready' }]);
  }, 150_000);
});
