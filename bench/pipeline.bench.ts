/**
 * End-to-end figures of the running service (real `mediaflow start` processes on local Redis and
 * PostgreSQL with the fs store), each beside a baseline measured in the same run (issue 12):
 *  1. upload → ready for small JPEGs (640x480), 8 clients, one `--role all` process, vs raw sharp
 *     doing the same operations on the same images, 2 in parallel;
 *  2. CPU per small media end to end (the service process, /proc/<pid>/stat, every thread and waited
 *     child) vs raw sharp's own CPU per image;
 *  3. uploads accepted (202: staged, synced, row committed, enqueued) per second by one `--role api`
 *     process, 30 KB JPEGs;
 *  4. p50/p99 upload → ready of one small JPEG at a time on an idle service;
 *  5. a 5 s AAC voice note → Opus, upload → ready, vs the ffmpeg CLI doing the same conversion;
 *  6. RSS growth of the API while a 100 MB document streams in (target < 64 MiB).
 * Then where each millisecond went: the worker's per-step `timings` of the `media ready` lines.
 *
 * The client is plain node:http with keep-alive and pre-built multipart bodies, so the load
 * generator takes as little of the 2 shared cores as it can, and it watches the media settle in
 * PostgreSQL directly, so the service does no work for the bench beyond the uploads. The load
 * average is sampled throughout.
 *
 *   node --import tsx bench/pipeline.bench.ts
 *   BENCH_CPU_PROF=/tmp/prof …     the service processes write V8 CPU profiles there (--cpu-prof)
 *   BENCH_IMAGES, BENCH_ACCEPTS, BENCH_IDLE, BENCH_VOICE, WORKER_CONCURRENCY, LOG_LEVEL override the sizes
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import sharp from 'sharp';
import { isolatedEnv } from '../test/helpers/env.js';
import { BIN, ROOT, runToEnd } from '../test/helpers/child.js';
import { minimalPdf, prng, smallJpeg } from '../test/helpers/media.js';

const exec = promisify(execFile);
const FFMPEG = process.env.FFMPEG_PATH || 'ffmpeg';
const N = Number(process.env.BENCH_IMAGES ?? 200);
const CLIENTS = 8;
const ACCEPTS = Number(process.env.BENCH_ACCEPTS ?? 3000);
const ACCEPT_CLIENTS = 32;
const IDLE = Number(process.env.BENCH_IDLE ?? 100);
const VOICE = Number(process.env.BENCH_VOICE ?? 8);
const CLK_TCK = 100;

// ------------------------------------------------------------------------------------------------
// Service processes

interface Service {
  proc: ChildProcess;
  base: string;
  /** Lines the process wrote (JSON log lines), kept for the timings breakdown. */
  lines: string[];
  stop(): Promise<void>;
}

async function startService(role: 'all' | 'api', env: Record<string, string>): Promise<Service> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  // One directory per role: a process writes one profile per thread (tsx's loader thread too).
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', join(process.env.BENCH_CPU_PROF, role)] : [];
  const proc = spawn(process.execPath, [...prof, BIN, 'start', '--role', role], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let rest = '';
  proc.stdout!.on('data', (c: Buffer) => {
    const parts = (rest + c.toString()).split('\n');
    rest = parts.pop()!;
    for (const l of parts) if (l.includes('"media ready"') || l.includes('"level":50') || l.includes('"level":60')) lines.push(l);
  });
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`mediaflow --role ${role} exited: ${err}`);
    try {
      if ((await request('GET', `${base}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`mediaflow --role ${role} did not get ready: ${err}`);
    await sleep(100);
  }
  return {
    proc,
    base,
    lines,
    async stop() {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** utime + stime (+ waited children) of a process, in seconds: every thread, libvips' included. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'latin1');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14..17 of proc(5), counted from the state field (3) after the command name
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
}

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

// ------------------------------------------------------------------------------------------------
// A lean client

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

function request(method: string, url: string, opts: { body?: Buffer; headers?: Record<string, string> } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers: { ...opts.headers, ...(opts.body ? { 'content-length': String(opts.body.length) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const BOUNDARY = '----mediaflowbench';

function multipartBody(file: Buffer, name: string, type: string, fields: Record<string, string> = {}): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(fields)) parts.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`));
  parts.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: ${type}\r\n\r\n`), file, Buffer.from(`\r\n--${BOUNDARY}--\r\n`));
  return Buffer.concat(parts);
}

function uploader(base: string, apiKey: string) {
  const headers = { authorization: `Bearer ${apiKey}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` };
  return async (body: Buffer): Promise<string> => {
    const res = await request('POST', `${base}/v1/media`, { body, headers });
    if (res.status !== 202 && res.status !== 200) throw new Error(`upload answered ${res.status}: ${res.body.slice(0, 300)}`);
    return (JSON.parse(res.body) as { data: { id: string } }).data.id;
  };
}

/**
 * How many media are ready and failed, read from PostgreSQL directly: polling through the API would
 * make the service answer the bench, and that work would be counted as the media's.
 */
async function settledCount(db: pg.Pool): Promise<{ ready: number; failed: number }> {
  const { rows } = await db.query<{ ready: number; failed: number }>(
    `SELECT count(*) FILTER (WHERE status = 'ready')::int AS ready, count(*) FILTER (WHERE status = 'failed')::int AS failed FROM media`,
  );
  return rows[0]!;
}

/** Polls one media's row every millisecond until it settles (from PostgreSQL, as above). */
async function untilSettled(db: pg.Pool, id: string): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { rows } = await db.query<{ status: string }>('SELECT status FROM media WHERE id = $1', [id]);
    const status = rows[0]?.status;
    if (status === 'ready' || status === 'failed') return status;
    if (Date.now() > deadline) throw new Error(`media ${id} did not settle`);
    await sleep(1);
  }
}

async function runClients(n: number, clients: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

// ------------------------------------------------------------------------------------------------
// Baselines

/** The operations normalize() does to a small JPEG: orient, fit in 4096, sRGB, JPEG q82 4:2:0. */
function rawSharpOnce(img: Buffer): Promise<Buffer> {
  return sharp(img, { limitInputPixels: 40_000_000, failOn: 'error', sequentialRead: true })
    .autoOrient()
    .resize(4096, 4096, { fit: 'inside', withoutEnlargement: true })
    .toColourspace('srgb')
    .jpeg({ quality: 82, mozjpeg: false, chromaSubsampling: '4:2:0' })
    .toBuffer();
}

async function rawSharp(images: Buffer[], parallel: number): Promise<{ rate: number; cpuMsPerImage: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await runClients(images.length, parallel, async (i) => void (await rawSharpOnce(images[i]!)));
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { rate: images.length / seconds, cpuMsPerImage: (c.user + c.system) / 1000 / images.length };
}

/** A smooth 640x480 photo-like JPEG of about 30 KB (gradients and a little grain). */
async function photoJpeg30k(seed: number): Promise<Buffer> {
  const w = 640;
  const h = 480;
  const noise = prng(seed, w * h);
  const raw = Buffer.allocUnsafe(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x;
      const g = (noise[i]! & 0x0f) - 8;
      raw[i * 3] = Math.max(0, Math.min(255, ((x * 255) / w + g) | 0));
      raw[i * 3 + 1] = Math.max(0, Math.min(255, ((y * 255) / h + g) | 0));
      raw[i * 3 + 2] = Math.max(0, Math.min(255, (128 + 60 * Math.sin((x + y + seed) / 40) + g) | 0));
    }
  }
  return sharp(raw, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 60 }).toBuffer();
}

// ------------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
};
const median = (xs: number[]): number => quantile(xs, 0.5);
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const f1 = (n: number): string => n.toFixed(1);
const f2 = (n: number): string => n.toFixed(2);
const goal = (met: boolean): string => (met ? 'met' : 'not met');

export async function run(): Promise<void> {
  const loads: number[] = [];
  const loadTimer = setInterval(() => loads.push(loadavg()[0]!), 2000);
  loads.push(loadavg()[0]!);
  const logLevel = process.env.LOG_LEVEL ?? 'info';
  const iso = await isolatedEnv({ RATE_LIMIT_PER_MINUTE: '100000000', UPLOAD_CONCURRENCY_PER_KEY: '256', MAX_CONNECTIONS_PER_IP: '0' });
  const env: Record<string, string> = { ...iso.env, LOG_LEVEL: logLevel, RECONCILE_AFTER_SECONDS: '30' };
  if (process.env.WORKER_CONCURRENCY) env.WORKER_CONCURRENCY = process.env.WORKER_CONCURRENCY;
  else delete env.WORKER_CONCURRENCY;
  const created = await runToEnd(['apps', 'create', '--name', 'bench', '--max-bytes', 'document=110000000', '--json'], env);
  const { apiKey } = JSON.parse(created.stdout) as { apiKey: string };
  const tmp = await mkdtemp(join(tmpdir(), 'mediaflow-bench-'));
  const db = new pg.Pool({ connectionString: iso.config.DATABASE_URL, max: 2 });
  const out: string[] = [];
  try {
    const images = await Promise.all(Array.from({ length: N }, (_, i) => smallJpeg(640, 480, i + 1)));
    const bodies = images.map((img) => multipartBody(img, 'p.jpg', 'image/jpeg'));
    const warm = await Promise.all(Array.from({ length: 20 }, (_, i) => smallJpeg(640, 480, 10_000 + i)));
    const voice = join(tmp, 'voice-5s.m4a');
    await exec(FFMPEG, ['-nostdin', '-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'sine=frequency=220:duration=5', '-f', 'lavfi', '-i', 'anoisesrc=duration=5:amplitude=0.05',
      '-filter_complex', 'amix=inputs=2', '-ac', '1', '-c:a', 'aac', '-b:a', '64k', '-f', 'ipod', '-y', voice]);
    const voiceBody = multipartBody(await readFile(voice), 'note.m4a', 'audio/mp4', { kind: 'voice_note' });

    // ---- one `--role all` process
    const svc = await startService('all', env);
    const upload = uploader(svc.base, apiKey);
    let idle: number[];
    let idleAccept: number[];
    let e2eRate: number;
    let e2eCpuMs: number;
    let voiceMs: number[];
    let rssRows: string[];
    let idleFrom = 0;
    let idleTo = 0;
    let loadedTo = 0;
    try {
      // Warm-up: JIT, pools, connections, libvips.
      await runClients(warm.length, 4, async (i) => void (await upload(multipartBody(warm[i]!, 'w.jpg', 'image/jpeg'))));
      for (let i = 0; ; i++) {
        if ((await settledCount(db)).ready >= warm.length) break;
        if (i > 600) throw new Error('warm-up media did not get ready');
        await sleep(50);
      }
      await sleep(300);

      // p99 upload → ready, one at a time on the idle service.
      idleFrom = svc.lines.length;
      idle = [];
      idleAccept = [];
      for (let i = 0; i < IDLE; i++) {
        const body = bodies[i % bodies.length]!;
        const t = performance.now();
        const id = await upload(body);
        idleAccept.push(performance.now() - t);
        const status = await untilSettled(db, id);
        if (status !== 'ready') throw new Error(`idle media ${id} ended ${status}`);
        idle.push(performance.now() - t);
        await sleep(20);
      }

      idleTo = svc.lines.length;
      // upload → ready throughput, 8 clients, and the service's CPU for it.
      const before = (await settledCount(db)).ready;
      const cpu0 = await cpuSeconds(svc.proc.pid!);
      const t0 = performance.now();
      await runClients(N, CLIENTS, async (i) => void (await upload(bodies[i]!)));
      for (;;) {
        const c = await settledCount(db);
        if (c.failed > 0) throw new Error(`${c.failed} media failed`);
        if (c.ready - before >= N) break;
        await sleep(10);
      }
      e2eRate = N / ((performance.now() - t0) / 1000);
      e2eCpuMs = ((await cpuSeconds(svc.proc.pid!)) - cpu0) * 1000 / N;
      loadedTo = svc.lines.length;

      // Voice note: upload → ready, one at a time.
      voiceMs = [];
      for (let i = 0; i < VOICE; i++) {
        const t = performance.now();
        const id = await upload(voiceBody);
        const status = await untilSettled(db, id);
        if (status !== 'ready') throw new Error(`voice note ${id} ended ${status}: ${svc.lines.slice(-3).join('\n')}`);
        voiceMs.push(performance.now() - t);
      }

      // RSS while a 100 MB document streams in.
      rssRows = await bigDocument(svc, apiKey);
    } finally {
      await svc.stop();
    }

    // Baselines, right after the service phase, on the same images.
    const raw1 = await rawSharp(images, 1);
    const raw2 = await rawSharp(images, 2);
    const cli: number[] = [];
    for (let i = 0; i < VOICE; i++) {
      const t = performance.now();
      await exec(FFMPEG, ['-nostdin', '-hide_banner', '-loglevel', 'error', '-i', voice, '-map', '0:a:0', '-vn', '-map_metadata', '-1', '-ac', '1', '-ar', '48000',
        '-c:a', 'libopus', '-b:a', '32k', '-vbr', 'constrained', '-application', 'voip', '-threads', '2', '-f', 'ogg', '-y', join(tmp, 'cli.ogg')]);
      cli.push(performance.now() - t);
    }

    // ---- one `--role api` process: uploads accepted per second (30 KB JPEGs; no worker drains them).
    const small = await Promise.all(Array.from({ length: 64 }, (_, i) => photoJpeg30k(i + 1)));
    const smallBodies = small.map((b) => multipartBody(b, 's.jpg', 'image/jpeg'));
    const api = await startService('api', env);
    let acceptRate: number;
    let acceptCpuMs: number;
    try {
      const up = uploader(api.base, apiKey);
      await runClients(200, ACCEPT_CLIENTS, async (i) => void (await up(smallBodies[i % smallBodies.length]!)));
      const cpu0 = await cpuSeconds(api.proc.pid!);
      const t0 = performance.now();
      await runClients(ACCEPTS, ACCEPT_CLIENTS, async (i) => void (await up(smallBodies[i % smallBodies.length]!)));
      acceptRate = ACCEPTS / ((performance.now() - t0) / 1000);
      acceptCpuMs = ((await cpuSeconds(api.proc.pid!)) - cpu0) * 1000 / ACCEPTS;
    } finally {
      await api.stop();
    }
    clearInterval(loadTimer);
    loads.push(loadavg()[0]!);

    const cpuRatio = e2eCpuMs / raw2.cpuMsPerImage;
    const p99 = quantile(idle, 0.99);
    const voiceRatio = median(cli) / median(voiceMs);
    out.push(
      `\n### Pipeline (fs store; \`--role all\` with WORKER_CONCURRENCY=${env.WORKER_CONCURRENCY ?? 'default'}, LOG_LEVEL=${logLevel}; load average ${f1(Math.min(...loads))}–${f1(Math.max(...loads))}, mean ${f1(mean(loads))})\n`,
      '| measure | mediaflow | baseline in the same run | ratio | goal |',
      '| --- | --- | --- | --- | --- |',
      `| upload → ready, ${N} JPEGs 640x480 (${Math.round(images[0]!.length / 1000)} KB), ${CLIENTS} clients | ${f1(e2eRate)} media/s | raw sharp same ops, 2 parallel: ${f1(raw2.rate)} img/s (1 at a time: ${f1(raw1.rate)}) | ${f2(e2eRate / raw2.rate)} | ≥ 0.8: ${goal(e2eRate / raw2.rate >= 0.8)} |`,
      `| CPU per small media end to end (service process, /proc/<pid>/stat) | ${f1(e2eCpuMs)} ms | raw sharp's CPU per image: ${f1(raw2.cpuMsPerImage)} ms | ${f2(cpuRatio)}× | ≤ 1.3×: ${goal(cpuRatio <= 1.3)} |`,
      `| uploads accepted (202, durable), one \`--role api\` process, 30 KB JPEGs, ${ACCEPT_CLIENTS} clients | ${f1(acceptRate)} req/s (${f2(acceptCpuMs)} ms CPU each) | - | - | ≥ 600/s: ${goal(acceptRate >= 600)} |`,
      `| upload → ready, one small JPEG at a time on an idle service (${IDLE} runs) | p50 ${f1(median(idle))} ms, p99 ${f1(p99)} ms (the upload's 202 alone: p50 ${f1(median(idleAccept))} ms, p99 ${f1(quantile(idleAccept, 0.99))} ms) | - | - | p99 ≤ 60 ms: ${goal(p99 <= 60)} |`,
      `| voice note, 5 s AAC → Opus, upload → ready (median of ${VOICE}) | ${f1(median(voiceMs))} ms | ffmpeg CLI, same conversion: ${f1(median(cli))} ms | ${f2(voiceRatio)} | ≥ 0.8: ${goal(voiceRatio >= 0.8)} |`,
      ...rssRows,
      '',
      timingsTable('idle service, one at a time', svc.lines.slice(idleFrom, idleTo)),
      '',
      timingsTable(`${CLIENTS} clients`, svc.lines.slice(idleTo, loadedTo)),
      '',
      timingsTable('voice notes (AAC → Opus), one at a time', svc.lines.slice(loadedTo), 'audio/ogg'),
    );
    console.log(out.join('\n'));
  } finally {
    clearInterval(loadTimer);
    await db.end();
    await rm(tmp, { recursive: true, force: true });
    await iso.cleanup();
  }
}

/** Where the worker's milliseconds went, per step, from the `timings` of the `media ready` lines. */
function timingsTable(what: string, lines: string[], to = 'image/jpeg'): string {
  const steps = new Map<string, number[]>();
  const totals: number[] = [];
  for (const l of lines) {
    let rec: { msg?: string; timings?: Record<string, number>; seconds?: number; to?: string };
    try {
      rec = JSON.parse(l) as typeof rec;
    } catch {
      continue;
    }
    if (rec.msg !== 'media ready' || !rec.timings || rec.to !== to) continue;
    for (const [k, v] of Object.entries(rec.timings)) steps.set(k, [...(steps.get(k) ?? []), v]);
    if (rec.seconds !== undefined) totals.push(rec.seconds * 1000);
  }
  if (totals.length === 0) return '(no `media ready` lines: run with LOG_LEVEL=info for the per-step breakdown)';
  const rows = [...steps].map(([k, v]) => `| ${k} | ${f1(mean(v))} | ${f1(median(v))} | ${f1(quantile(v, 0.99))} |`);
  return [
    `### Worker steps, ${what} (${totals.length} media; wall ms)\n`,
    '| step | mean | p50 | p99 |',
    '| --- | --- | --- | --- |',
    ...rows,
    `| whole job | ${f1(mean(totals))} | ${f1(median(totals))} | ${f1(quantile(totals, 0.99))} |`,
  ].join('\n');
}

async function bigDocument(svc: Service, apiKey: string): Promise<string[]> {
  const { Readable } = await import('node:stream');
  const pid = svc.proc.pid!;
  const before = await rssOf(pid);
  let peak = before;
  const sampler = setInterval(() => void rssOf(pid).then((v) => (peak = Math.max(peak, v))).catch(() => undefined), 25);
  const pdf = minimalPdf('bench');
  const size = 100_000_000;
  const head = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="kind"\r\n\r\ndocument\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\nContent-Type: application/pdf\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  const pad = Buffer.alloc(1024 * 1024, 0x20);
  const trailerStart = pdf.indexOf('xref');
  const body = Readable.from(
    (function* () {
      yield head;
      yield pdf.subarray(0, trailerStart);
      let left = size - pdf.length;
      while (left > 0) {
        const n = Math.min(left, pad.length);
        yield pad.subarray(0, n);
        left -= n;
      }
      yield pdf.subarray(trailerStart);
      yield tail;
    })(),
  );
  const t1 = performance.now();
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.request(`${svc.base}/v1/media`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    body.pipe(req);
  });
  const streamSeconds = (performance.now() - t1) / 1000;
  clearInterval(sampler);
  const growth = (peak - before) / (1024 * 1024);
  return [
    `| 100 MB document streamed in (status ${status}) | ${(size / 1e6 / streamSeconds).toFixed(0)} MB/s | - | - | - |`,
    `| API process RSS growth during that upload | ${f1(growth)} MiB (from ${(before / 1048576).toFixed(0)} MiB) | - | - | < 64 MiB: ${goal(growth < 64)} |`,
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  run().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
