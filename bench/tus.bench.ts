/**
 * Resumable uploads (tus, issue 16): the API process's RSS growth while a 100 MB document arrives
 * through tus-js-client (one PATCH, sealed 64 KiB segment by segment into 4 MiB parts, then assembled
 * into the staging object), against the same document through `POST /v1/media` multipart in the same
 * run. Each upload gets a fresh `mediaflow start --role api` process (no worker: the measure is the
 * API's), on local Redis and PostgreSQL and the fs store. Goal: growth < 64 MiB.
 *
 *   npm run bench -- tus
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { pathToFileURL } from 'node:url';
import { Readable } from 'node:stream';
import { Upload } from 'tus-js-client';
import { isolatedEnv } from '../test/helpers/env.js';
import { BIN, ROOT, runToEnd } from '../test/helpers/child.js';

const SIZE = 100_000_000;
const f1 = (n: number): string => n.toFixed(1);
const goal = (met: boolean): string => (met ? 'met' : 'not met');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

interface Api {
  proc: ChildProcess;
  base: string;
  stop(): Promise<void>;
}

async function startApi(env: Record<string, string>): Promise<Api> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const proc = spawn(process.execPath, [BIN, 'start', '--role', 'api'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env, PORT: String(port) },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err = (err + c.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => proc.on('exit', () => resolve()));
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`mediaflow --role api exited: ${err}`);
    const ok = await fetch(`${base}/readyz`).then((r) => r.status === 200, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`mediaflow --role api did not get ready: ${err}`);
    await sleep(100);
  }
  return {
    proc,
    base,
    async stop() {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** A text document the document rules accept, `bytes` long. */
function textDocument(bytes: number): Buffer {
  const line = Buffer.from('mediaflow tus bench: the quick brown fox jumps over the lazy dog 0123456789\n');
  const out = Buffer.alloc(bytes);
  for (let off = 0; off < bytes; off += line.length) line.copy(out, off, 0, Math.min(line.length, bytes - off));
  return out;
}

/** Peak RSS growth of `pid` while `work` runs (sampled every 25 ms), and the work's seconds. */
async function measure(pid: number, work: () => Promise<void>): Promise<{ growthMiB: number; beforeMiB: number; seconds: number }> {
  const before = await rssOf(pid);
  let peak = before;
  const sampler = setInterval(() => void rssOf(pid).then((v) => (peak = Math.max(peak, v))).catch(() => undefined), 25);
  const t0 = performance.now();
  try {
    await work();
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, await rssOf(pid));
  return { growthMiB: (peak - before) / 1048576, beforeMiB: before / 1048576, seconds: (performance.now() - t0) / 1000 };
}

function tusUpload(base: string, apiKey: string, doc: Buffer): Promise<string> {
  let mediaId = '';
  return new Promise<string>((resolve, reject) => {
    const up = new Upload(doc, {
      endpoint: `${base}/v1/uploads/tus`,
      headers: { authorization: `Bearer ${apiKey}` },
      metadata: { filename: 'big.txt', filetype: 'text/plain', kind: 'document' },
      retryDelays: [],
      onAfterResponse: (_req, res) => {
        mediaId = res.getHeader('Media-Id') ?? mediaId;
      },
      onSuccess: () => (mediaId ? resolve(mediaId) : reject(new Error('no Media-Id on the last response'))),
      onError: reject,
    });
    up.start();
  });
}

function multipartUpload(base: string, apiKey: string, doc: Buffer): Promise<number> {
  const boundary = '----mediaflowtusbench';
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\ndocument\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const body = Readable.from(
    (function* () {
      yield head;
      for (let off = 0; off < doc.length; off += 1024 * 1024) yield doc.subarray(off, off + 1024 * 1024);
      yield tail;
    })(),
  );
  return new Promise<number>((resolve, reject) => {
    const req = http.request(`${base}/v1/media`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': `multipart/form-data; boundary=${boundary}` } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    body.pipe(req);
  });
}

export async function run(): Promise<void> {
  const iso = await isolatedEnv({ MAX_CONNECTIONS_PER_IP: '0', LOG_LEVEL: 'warn' });
  const env = { ...iso.env };
  try {
    const created = await runToEnd(['apps', 'create', '--name', 'tus-bench', '--max-bytes', `document=${SIZE}`, '--json'], env);
    const { apiKey } = JSON.parse(created.stdout) as { apiKey: string };
    const doc = textDocument(SIZE);
    const warm = textDocument(3 * 65536 + 17);

    const api1 = await startApi(env);
    let tus: Awaited<ReturnType<typeof measure>>;
    try {
      // Warm-up: every module and pool the tus path uses is loaded before the baseline is read.
      await tusUpload(api1.base, apiKey, warm);
      tus = await measure(api1.proc.pid!, async () => void (await tusUpload(api1.base, apiKey, doc)));
    } finally {
      await api1.stop();
    }

    const api2 = await startApi(env);
    let multi: Awaited<ReturnType<typeof measure>>;
    let status = 0;
    try {
      await multipartUpload(api2.base, apiKey, warm);
      multi = await measure(api2.proc.pid!, async () => void (status = await multipartUpload(api2.base, apiKey, doc)));
    } finally {
      await api2.stop();
    }

    const mbps = (s: number) => (SIZE / 1e6 / s).toFixed(0);
    console.log(
      [
        '| measure | tus | baseline: POST /v1/media multipart, same document | ratio | goal |',
        '| --- | --- | --- | --- | --- |',
        `| API process RSS growth during a 100 MB tus upload (one PATCH) | ${f1(tus.growthMiB)} MiB (from ${tus.beforeMiB.toFixed(0)} MiB) | ${f1(multi.growthMiB)} MiB (status ${status}) | ${(tus.growthMiB / Math.max(multi.growthMiB, 0.1)).toFixed(2)}× | < 64 MiB: ${goal(tus.growthMiB < 64)} |`,
        `| 100 MB in, sealed and committed | ${mbps(tus.seconds)} MB/s (${f1(tus.seconds)} s) | ${mbps(multi.seconds)} MB/s | ${(multi.seconds / tus.seconds).toFixed(2)}× | - |`,
      ].join('\n'),
    );
  } finally {
    await iso.cleanup();
  }
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
