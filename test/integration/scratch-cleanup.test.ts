/**
 * Scratch directories a killed worker left (src/jobs/scratch.ts): real directories in a temp dir of
 * this test's own, real processes for the pids (one that has exited, one still running).
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { makeScratchDir, removeAbandonedScratch } from '../../src/jobs/scratch.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function exitedPid(): Promise<number> {
  const p = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => p.once('exit', r));
  return p.pid!;
}

describe('abandoned scratch directories', () => {
  it('names a job scratch directory after the media and this process', async () => {
    const d = await makeScratchDir('med_abc123');
    dirs.push(d);
    expect(path.basename(d)).toMatch(new RegExp(`^mediaflow-med_abc123-p${process.pid}-[A-Za-z0-9]{6}$`));
  });

  it("removes a dead worker's and a too-old directory, keeps a live worker's, its own and anything else", async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'mf-scratch-test-'));
    dirs.push(root);
    const live = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      const dead = await exitedPid();
      const make = async (name: string) => {
        await mkdir(path.join(root, name));
        await writeFile(path.join(root, name, 'input'), 'plaintext media bytes');
        return name;
      };
      const deadDir = await make(`mediaflow-med_a1-p${dead}-AbC123`);
      const liveDir = await make(`mediaflow-med_a2-p${live.pid}-XyZ789`);
      const ownDir = await make(`mediaflow-med_a3-p${process.pid}-Qwe456`);
      const oldLive = await make(`mediaflow-med_a4-p${live.pid}-Old000`);
      const past = new Date(Date.now() - 2 * 3600 * 1000);
      await utimes(path.join(root, oldLive), past, past);
      const other = await make('mediaflow-something-else');

      const removed = await removeAbandonedScratch({ dir: root, maxAgeMs: 3600 * 1000, log: createLogger({ level: 'silent' }) });
      expect(removed).toBe(2);
      expect((await readdir(root)).sort()).toEqual([liveDir, ownDir, other].sort());
      expect(await readdir(root)).not.toContain(deadDir);
    } finally {
      live.kill('SIGKILL');
    }
  });
});
