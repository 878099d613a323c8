/**
 * End-to-end figures of the running service (a real `mediaflow start` process on local Redis and
 * PostgreSQL with the fs store):
 *  - upload → ready throughput for small JPEGs, beside raw sharp doing the same normalization on the
 *    same images in this process (the baseline: what the pipeline costs over the image work itself);
 *  - RSS growth of the API process while a 100 MB document streams in (target < 64 MB).
 *
 *   node --import tsx bench/pipeline.bench.ts
 */
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { isolatedEnv } from '../test/helpers/env.js';
import { runMediaflow, runToEnd } from '../test/helpers/child.js';
import { minimalPdf, smallJpeg } from '../test/helpers/media.js';

const N = Number(process.env.BENCH_IMAGES ?? 200);
const CONCURRENCY = 8;

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

async function waitHttp(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer`);
}

async function rawSharp(images: Buffer[], parallel: number): Promise<number> {
  const t0 = performance.now();
  let i = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (i < images.length) {
        const img = images[i++]!;
        await sharp(img, { limitInputPixels: 40_000_000 }).rotate().resize(4096, 4096, { fit: 'inside', withoutEnlargement: true }).jpeg({ quality: 82 }).toBuffer();
      }
    }),
  );
  return images.length / ((performance.now() - t0) / 1000);
}

export async function run(): Promise<void> {
  const iso = await isolatedEnv({ LOG_LEVEL: 'warn', PORT: '0', WORKER_CONCURRENCY: '4', RATE_LIMIT_PER_MINUTE: '1000000', UPLOAD_CONCURRENCY_PER_KEY: '64' });
  const port = 20000 + Math.floor(Math.random() * 20000);
  const env = { ...iso.env, PORT: String(port), LOG_LEVEL: 'warn' };
  const created = await runToEnd(['apps', 'create', '--name', 'bench', '--max-bytes', 'document=110000000', '--json'], env);
  const { apiKey } = JSON.parse(created.stdout) as { apiKey: string };
  const svc = runMediaflow(['start', '--role', 'all'], env);
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitHttp(`${base}/readyz`);
    const images = await Promise.all(Array.from({ length: N }, (_, i) => smallJpeg(640, 480, i + 1)));

    // Upload → ready.
    const t0 = performance.now();
    const ids: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < images.length) {
          const img = images[next++]!;
          const fd = new FormData();
          fd.append('file', new Blob([img], { type: 'image/jpeg' }), 'p.jpg');
          const res = await fetch(`${base}/v1/media`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}` }, body: fd });
          if (res.status !== 202) throw new Error(`upload answered ${res.status}`);
          ids.push(((await res.json()) as { data: { id: string } }).data.id);
        }
      }),
    );
    const accepted = performance.now();
    // One cheap count query every 50 ms, so the bench client does not steal the service's CPU.
    for (;;) {
      const r = (await (await fetch(`${base}/v1/media?status=ready&limit=1`, { headers: { authorization: `Bearer ${apiKey}` } })).json()) as { page: { total: number } };
      if (r.page.total >= N) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    const done = performance.now();
    const pipelineRate = N / ((done - t0) / 1000);
    const acceptRate = N / ((accepted - t0) / 1000);
    const raw1 = await rawSharp(images, 1);
    const raw2 = await rawSharp(images, 2);

    // RSS while a 100 MB document streams in.
    const pid = svc.proc.pid!;
    const before = await rssOf(pid);
    let peak = before;
    const sampler = setInterval(() => void rssOf(pid).then((v) => (peak = Math.max(peak, v))).catch(() => undefined), 25);
    const pdf = minimalPdf('bench');
    const size = 100_000_000;
    const boundary = '----mediaflowbench';
    const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\ndocument\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\nContent-Type: application/pdf\r\n\r\n`);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
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
      const req = http.request(`${base}/v1/media`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}`, 'content-type': `multipart/form-data; boundary=${boundary}` } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      body.pipe(req);
    });
    const streamSeconds = (performance.now() - t1) / 1000;
    clearInterval(sampler);
    const growth = (peak - before) / (1024 * 1024);

    console.log('\n### Pipeline (one `mediaflow start --role all` process, fs store, WORKER_CONCURRENCY=4)\n');
    console.log('| measure | value | baseline | ratio |');
    console.log('| --- | --- | --- | --- |');
    console.log(`| upload → ready, ${N} JPEGs 640x480, ${CONCURRENCY} clients | ${pipelineRate.toFixed(1)} media/s | raw sharp same ops, 2 parallel: ${raw2.toFixed(1)} img/s | ${(pipelineRate / raw2).toFixed(2)} |`);
    console.log(`| uploads accepted (202) | ${acceptRate.toFixed(1)} req/s | raw sharp 1 at a time: ${raw1.toFixed(1)} img/s | - |`);
    console.log(`| 100 MB document streamed in (status ${status}) | ${(size / 1e6 / streamSeconds).toFixed(0)} MB/s | - | - |`);
    console.log(`| API process RSS growth during that upload | ${growth.toFixed(1)} MiB (from ${(before / 1048576).toFixed(0)} MiB) | target < 64 MiB | ${growth < 64 ? 'met' : 'MISSED'} |`);
  } finally {
    svc.proc.kill('SIGTERM');
    await svc.exited;
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
