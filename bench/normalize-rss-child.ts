/**
 * One normalization in a fresh process, for the bench's peak-RSS table: prints
 * {"nodeMaxRssKb", "childPeakKb", "ms"} as JSON. The node figure is this process's high-water mark
 * (sharp works in-process); the child figure is the largest VmHWM seen among ffmpeg/ffprobe
 * children, sampled every 10 ms (a high-water mark, so a late sample still sees the peak).
 *   node --import tsx bench/normalize-rss-child.ts <kind> <mime> <file>
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MediaKind } from '../src/domain/kinds.js';
import { silentLogger } from '../src/log.js';
import { normalize } from '../src/pipeline/normalize.js';

async function childrenPeakKb(): Promise<number> {
  let peak = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = await readFile(`/proc/${entry}/status`, 'latin1');
      if (!new RegExp(`^PPid:\\s+${process.pid}$`, 'm').test(status)) continue;
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
  try {
    if (kind !== 'baseline') await normalize({ inputPath: file, sniffedMime: mime, kind: kind as MediaKind, scratchDir, log: silentLogger });
  } finally {
    sampling = false;
    await sampler;
    await rm(scratchDir, { recursive: true, force: true });
  }
  const ms = performance.now() - started;
  process.stdout.write(`${JSON.stringify({ nodeMaxRssKb: process.resourceUsage().maxRSS, childPeakKb, ms })}\n`);
}

await main();
