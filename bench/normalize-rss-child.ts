/**
 * One normalization in a fresh process, for the bench's peak-RSS table: prints
 * {"nodePeakKb", "childPeakKb", "ms", "outcome"} as JSON. The node figure is this process's VmHWM
 * (sharp works in-process; getrusage's maxrss is not used because Linux carries it over from the
 * forking parent across exec); the child figure is the largest VmHWM seen among ffmpeg/ffprobe
 * children, sampled every 10 ms (a high-water mark, so a late sample still sees the peak).
 *   node --import tsx bench/normalize-rss-child.ts <kind> <mime> <file>
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppError } from '../src/domain/errors.js';
import type { MediaKind } from '../src/domain/kinds.js';
import { failureKind } from '../src/jobs/failure.js';
import { silentLogger } from '../src/log.js';
import { normalize } from '../src/pipeline/normalize.js';

async function childrenPeakKb(): Promise<number> {
  let peak = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = await readFile(`/proc/${entry}/status`, 'latin1');
      if (!new RegExp(`^PPid:\\s+${process.pid}$`, 'm').test(status)) continue;
      // Only the media tools: tsx's esbuild service is a child too.
      if (!/^Name:\s+ff(mpeg|probe)$/m.test(status)) continue;
      const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(status);
      if (hwm) peak = Math.max(peak, Number(hwm[1]));
    } catch {
      // Exited meanwhile.
    }
  }
  return peak;
}

async function main(): Promise<void> {
  const [kind, mime, file] = process.argv.slice(2);
  if (!kind || !mime || !file) throw new Error('usage: normalize-rss-child.ts <kind> <mime> <file>');
  const scratchDir = await mkdtemp(join(tmpdir(), 'mediaflow-bench-rss-'));
  let childPeakKb = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      childPeakKb = Math.max(childPeakKb, await childrenPeakKb());
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const started = performance.now();
  let outcome = 'ok';
  try {
    if (kind !== 'baseline') {
      const out = await normalize({ inputPath: file, sniffedMime: mime, kind: kind as MediaKind, scratchDir, log: silentLogger });
      outcome = out.transform;
    }
  } catch (err) {
    // A refusal is a result here (the zip bomb case): report it with the memory it took.
    outcome = err instanceof AppError && failureKind(err) === 'permanent' ? `rejected (${err.code})` : `error: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    sampling = false;
    await sampler;
    await rm(scratchDir, { recursive: true, force: true });
  }
  const ms = performance.now() - started;
  const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(await readFile('/proc/self/status', 'latin1'));
  process.stdout.write(`${JSON.stringify({ nodePeakKb: Number(hwm?.[1] ?? 0), childPeakKb, ms, outcome })}\n`);
}

await main();
