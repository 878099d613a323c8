/**
 * Throughput of the sealed object format against what the machine can do at best.
 *
 *   node --import tsx bench/crypto.bench.ts
 *
 * Baselines come from `openssl speed` in the same run (the machine is shared and noisy: compare
 * ratios, not absolute figures across runs). A seal pass does SHA-256 and AES-256-GCM one after the
 * other on one core, so its ceiling is 1/(1/aes + 1/sha), not the AES speed. The file path is compared
 * with `cp` of the same file. Allocator variants run in child processes because glibc reads MALLOC_*
 * and LD_PRELOAD only at process start.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { loadavg, tmpdir, availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { SEGMENT_SIZE, createOpenStream, createSealStream, type Keyring, type SealContext } from '../src/storage/sealed-format.js';

const run$ = promisify(execFile);
const MiB = 1024 * 1024;
const MB = 1e6;
const BLOCK = 16 * MiB;
/** 32 x 16 MiB = 537 MB through the in-memory seal. */
const MEMORY_REPEATS = 32;
/** 16 x 16 MiB = 268 MB on disk. */
const FILE_REPEATS = 16;
const MALLOC_VARS = ['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_', 'MALLOC_ARENA_MAX'] as const;
const MALLOC_TUNED = { MALLOC_MMAP_THRESHOLD_: '67108864', MALLOC_TRIM_THRESHOLD_: '268435456', MALLOC_TOP_PAD_: '67108864' };
const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
const CHILD_ENV = 'MF_CRYPTO_BENCH_CHILD';

const keyring: Keyring = { activeKeyId: 'bench', keys: new Map([['bench', randomBytes(32)]]) };
const ctx: SealContext = { purpose: 'media', appId: 'app_bench', mediaId: 'med_bench' };

/** Bytes per second of `openssl speed -evp <alg>` on 16 KiB blocks, or null when openssl is missing. */
async function opensslSpeed(alg: string): Promise<number | null> {
  try {
    const { stdout } = await run$('openssl', ['speed', '-mr', '-evp', alg, '-seconds', '1', '-bytes', '16384']);
    // Machine-readable result line: +F:<n>:<name>:<bytes per second for each block size>
    const m = /^\+F:\d+:[^:]+:([\d.]+)/m.exec(stdout);
    if (m?.[1]) return Number(m[1]);
    // Human form: "<name>  1234567.89k" in thousands of bytes per second.
    const k = /^\S+\s+([\d.]+)k\s*$/m.exec(stdout);
    return k?.[1] ? Number(k[1]) * 1000 : null;
  } catch {
    return null;
  }
}

/** A source that pushes the same block `repeats` times: no allocation in the measured path. */
function repeatSource(block: Buffer, repeats: number): Readable {
  let left = repeats;
  return new Readable({
    highWaterMark: block.length,
    read() {
      this.push(left-- > 0 ? block : null);
    },
  });
}

function discard(): Writable {
  return new Writable({
    highWaterMark: 4 * SEGMENT_SIZE,
    write(_c, _e, cb) {
      cb();
    },
    writev(_c, cb) {
      cb();
    },
  });
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function sealInMemory(block: Buffer, updateSlice: number): Promise<number> {
  const { stream, result } = createSealStream(keyring, ctx, { updateSlice });
  const s = await timed(() => pipeline(repeatSource(block, MEMORY_REPEATS), stream, discard()));
  const r = await result;
  return r.plainBytes / s;
}

/** Alternating runs of each variant, median of each: the box is noisy and drifts. */
async function sealVariants(block: Buffer, slices: readonly number[], rounds: number): Promise<Map<number, number>> {
  const runs = new Map<number, number[]>(slices.map((s) => [s, []]));
  await sealInMemory(block, slices[0]!); // warm-up: JIT, allocator arenas
  for (let r = 0; r < rounds; r++) for (const s of slices) runs.get(s)!.push(await sealInMemory(block, s));
  return new Map([...runs].map(([s, v]) => [s, median(v)]));
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function openInMemory(block: Buffer): Promise<number> {
  // Sealed segments carry their index, so the sealed form of a long stream cannot be made by repeating
  // a block: seal 64 MiB once and open it 8 times.
  const { stream } = createSealStream(keyring, ctx);
  const parts: Buffer[] = [];
  await pipeline(repeatSource(block, 4), stream, new Writable({ write(c: Buffer, _e, cb) { parts.push(c); cb(); } }));
  const sealed = Buffer.concat(parts);
  parts.length = 0;
  let plain = 0;
  const s = await timed(async () => {
    for (let i = 0; i < 8; i++) {
      await pipeline(
        repeatSource(sealed, 1),
        createOpenStream(keyring, ctx),
        new Writable({ write(c: Buffer, _e, cb) { plain += c.length; cb(); } }),
      );
    }
  });
  return plain / s;
}

/** Peak RSS while `fn` runs, sampled every 10 ms. */
async function withRss<T>(fn: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 10);
  try {
    const value = await fn();
    return { value, peak: Math.max(peak, process.memoryUsage.rss()) };
  } finally {
    clearInterval(timer);
  }
}

async function filePaths(block: Buffer): Promise<{ rows: [string, number][]; sealPeakRss: number; baselineRss: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'mf-crypto-bench-'));
  try {
    const src = join(dir, 'plain.bin');
    const dst = join(dir, 'out.bin');
    const fh = await open(src, 'w');
    for (let i = 0; i < FILE_REPEATS; i++) await fh.write(block);
    await fh.close();
    const bytes = FILE_REPEATS * block.length;
    const rows: [string, number][] = [];
    const once = async (label: string, fn: () => Promise<void>): Promise<void> => {
      await rm(dst, { force: true });
      rows.push([label, bytes / (await timed(fn))]);
    };
    // Read once first so every path starts from a warm page cache.
    await pipeline(createReadStream(src, { highWaterMark: MiB }), discard());
    await once('cp', async () => void (await run$('cp', [src, dst])));
    await once('Node stream copy (64 KiB reads)', () => pipeline(createReadStream(src), createWriteStream(dst)));
    gc();
    const baselineRss = process.memoryUsage.rss();
    const { peak } = await withRss(() =>
      once('file → seal+sha256 → file (64 KiB reads)', () => pipeline(createReadStream(src), createSealStream(keyring, ctx).stream, createWriteStream(dst))),
    );
    await once('file → seal+sha256 → file (1 MiB reads)', () =>
      pipeline(createReadStream(src, { highWaterMark: MiB }), createSealStream(keyring, ctx).stream, createWriteStream(dst)),
    );
    return { rows, sealPeakRss: peak, baselineRss };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** A full GC before reading a baseline RSS, without asking the caller for --expose-gc. */
function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function mallocNote(env: NodeJS.ProcessEnv): string {
  const set = MALLOC_VARS.filter((v) => env[v] !== undefined).map((v) => `${v}=${env[v]}`);
  const preload = env.LD_PRELOAD?.includes('jemalloc') ? `LD_PRELOAD=${env.LD_PRELOAD}` : '';
  if (set.length === 0 && !preload) return 'no (stock glibc malloc)';
  return `yes (${[...set, preload].filter(Boolean).join(' ')})`;
}

/** The in-memory seal under another allocator setting, in a child process. */
async function sealInChild(env: NodeJS.ProcessEnv): Promise<number | null> {
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url)], {
    env: { ...env, [CHILD_ENV]: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const m = /^seal=([\d.]+)$/m.exec(out);
  return code === 0 && m?.[1] ? Number(m[1]) : null;
}

async function childMain(): Promise<void> {
  const block = randomBytes(BLOCK);
  const r = await sealVariants(block, [64 * 1024], 3);
  process.stdout.write(`seal=${r.get(64 * 1024)}\n`);
}

const fmt = (bps: number | null): string => (bps === null ? 'n/a' : (bps / MB).toFixed(0));
const ratio = (a: number | null, b: number | null): string => (a === null || b === null ? 'n/a' : `${(a / b).toFixed(2)}x`);

export async function run(): Promise<void> {
  const started = Date.now();
  const aes = await opensslSpeed('aes-256-gcm');
  const sha = await opensslSpeed('sha256');
  const ceiling = aes !== null && sha !== null ? 1 / (1 / aes + 1 / sha) : null;

  const load = loadavg()[0]!;
  const block = randomBytes(BLOCK);
  // The file path first, so its RSS is not mixed with the garbage of the in-memory runs.
  const files = await filePaths(block);
  const seal = await sealVariants(block, [64 * 1024, 16 * 1024], 3);
  const seal16 = seal.get(16 * 1024)!;
  const seal64 = seal.get(64 * 1024)!;
  const openRate = await openInMemory(block);

  const { MALLOC_MMAP_THRESHOLD_: _a, MALLOC_TRIM_THRESHOLD_: _b, MALLOC_TOP_PAD_: _c, MALLOC_ARENA_MAX: _d, LD_PRELOAD: _e, ...stockEnv } = process.env;
  const allocators: [string, number | null][] = [
    ['stock glibc', await sealInChild(stockEnv)],
    ['glibc + MALLOC_* (STACK.md)', await sealInChild({ ...stockEnv, ...MALLOC_TUNED })],
  ];
  if (existsSync(JEMALLOC)) allocators.push(['jemalloc (LD_PRELOAD)', await sealInChild({ ...stockEnv, LD_PRELOAD: JEMALLOC })]);

  const memMB = (MEMORY_REPEATS * BLOCK) / MB;
  const lines = [
    `## sealed format: ${memMB.toFixed(0)} MB in memory, ${((FILE_REPEATS * BLOCK) / MB).toFixed(0)} MB file (Node ${process.version}, MB = 10^6 bytes)`,
    '',
    '| measure | MB/s | ratio |',
    '| --- | ---: | ---: |',
    `| openssl speed -evp aes-256-gcm (16 KiB) | ${fmt(aes)} | |`,
    `| openssl speed -evp sha256 (16 KiB) | ${fmt(sha)} | |`,
    `| sequential ceiling 1/(1/aes+1/sha) | ${fmt(ceiling)} | 1.00x |`,
    `| mediaflow seal+sha256, 64 KiB updates (default) | ${fmt(seal64)} | ${ratio(seal64, ceiling)} of ceiling |`,
    `| mediaflow seal+sha256, 16 KiB updates | ${fmt(seal16)} | ${ratio(seal16, ceiling)} of ceiling |`,
    `| mediaflow open (verify+decrypt) | ${fmt(openRate)} | ${ratio(openRate, aes)} of openssl AES |`,
    '',
    '| file path | MB/s | ratio to cp |',
    '| --- | ---: | ---: |',
    ...files.rows.map(([label, bps]) => `| ${label} | ${fmt(bps)} | ${ratio(bps, files.rows[0]![1])} |`),
    '',
    '| allocator (child process, in-memory seal) | MB/s | ratio to ceiling |',
    '| --- | ---: | ---: |',
    ...allocators.map(([label, bps]) => `| ${label} | ${fmt(bps)} | ${ratio(bps, ceiling)} |`),
    '',
    `- load average at start ${load.toFixed(1)} on ${availableParallelism()} cores${load > 0.8 ? ': other work was running, trust ratios within this run more than absolute figures' : ''}`,
    `- MALLOC_* / jemalloc tuning in this process: ${mallocNote(process.env)}`,
    `- RSS during file → seal → file: peak ${(files.sealPeakRss / MiB).toFixed(0)} MiB (${(files.baselineRss / MiB).toFixed(0)} MiB before it, 16 MiB of it the bench's source block)`,
    `- peak RSS of the whole bench process: ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB`,
    `- took ${((Date.now() - started) / 1000).toFixed(1)} s`,
  ];
  console.log(lines.join('\n'));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  (process.env[CHILD_ENV] ? childMain() : run()).catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
