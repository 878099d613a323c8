import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../log.js';

/**
 * A media job's scratch directory holds plaintext (the input, the tools' outputs): it is made when
 * the job first needs a file and removed in the job's `finally`. A worker killed mid-job (SIGKILL,
 * the OOM killer) never reaches that `finally`, so the directory's name carries the worker's pid,
 * and the next worker to start on the machine removes what dead workers left
 * (`removeAbandonedScratch`): `npm run soak` kills workers every 20 s and checks none is left.
 */
const PATTERN = /^mediaflow-med_[A-Za-z0-9]+-p(\d+)-[A-Za-z0-9]{6}$/;

export function makeScratchDir(mediaId: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `mediaflow-${mediaId}-p${process.pid}-`));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but is another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes scratch directories of workers that are gone: their pid is not running, or they are older
 * than `maxAgeMs` (no job outlives JOB_TIMEOUT_SECONDS, so an older one is abandoned even if its pid
 * was reused). Assumes os.tmpdir() is this machine's own, not shared across pid namespaces.
 */
export async function removeAbandonedScratch(opts: { maxAgeMs: number; log: Logger; dir?: string }): Promise<number> {
  const dir = opts.dir ?? os.tmpdir();
  let removed = 0;
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const m = PATTERN.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid) continue;
    const full = path.join(dir, name);
    const old = await stat(full).then((s) => Date.now() - s.mtimeMs > opts.maxAgeMs, () => false);
    if (alive(pid) && !old) continue;
    await rm(full, { recursive: true, force: true }).then(
      () => removed++,
      (err: unknown) => opts.log.warn({ err: String(err), dir: full }, 'could not remove an abandoned scratch directory'),
    );
  }
  if (removed > 0) opts.log.info({ removed }, 'removed scratch directories that killed workers left');
  return removed;
}
