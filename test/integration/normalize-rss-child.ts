/**
 * Child process for the worker-RSS check of acceptance 3: loads the pipeline as the worker does,
 * normalizes one image, and prints its outcome with the process's peak resident set (VmHWM), so
 * the measure is this normalization's, not the test runner's.
 *   node --import tsx test/integration/normalize-rss-child.ts <input> <sniffedMime> <scratchDir>
 */
import { readFileSync } from 'node:fs';
import { silentLogger } from '../../src/log.js';
import { normalize } from '../../src/pipeline/normalize.js';

function statusKb(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/self/status`);
  return Number(m[1]);
}

const [inputPath, sniffedMime, scratchDir] = process.argv.slice(2);
if (!inputPath || !sniffedMime || !scratchDir) throw new Error('usage: normalize-rss-child.ts <input> <sniffedMime> <scratchDir>');

const loadedKb = statusKb('VmHWM');
const started = performance.now();
let outcome: { ok: true; width: number | null; height: number | null } | { ok: false; code: string; message: string };
try {
  const out = await normalize({ inputPath, sniffedMime, kind: 'image', scratchDir, log: silentLogger });
  outcome = { ok: true, width: out.width, height: out.height };
} catch (err) {
  const e = err as { code?: string; message?: string };
  outcome = { ok: false, code: e.code ?? 'none', message: e.message ?? String(err) };
}
const ms = performance.now() - started;
process.stdout.write(`${JSON.stringify({ outcome, ms, loadedKb, peakKb: statusKb('VmHWM') })}\n`);
