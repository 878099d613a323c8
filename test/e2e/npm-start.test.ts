/**
 * The README's "run it" command on a machine with everything present (media tools, local Redis and
 * PostgreSQL): its set-up step (scripts/setup.sh, the prestart) says nothing, and `npm start` creates
 * the database when missing, applies migrations, generates a development master key with a warning,
 * and serves /readyz 200; SIGTERM stops it with exit 0. A bad value stops the start with one line
 * naming the variable. What a machine lacking something sees is in bare-machine.test.ts.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/child.js';
import { databaseUrl, deletePrefix, dropDatabase, REDIS_URL, uniqueName } from '../helpers/env.js';
import { waitFor } from '../helpers/service.js';

const db = uniqueName('mf_npmstart');
const prefix = uniqueName('mfs');
let dataDir = '';

afterAll(async () => {
  await dropDatabase(db);
  await deletePrefix(prefix);
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

function npmStart(env: Record<string, string>) {
  const proc = spawn('npm', ['start', '--silent'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | string>((r) => proc.on('exit', (code, sig) => r(code ?? sig ?? -1)));
  return { proc, exited, output: () => out };
}

describe('npm start', () => {
  it('creates the database, generates a dev key, serves /readyz, and stops cleanly on SIGTERM', async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'mf-npmstart-'));
    const port = 30000 + Math.floor(Math.random() * 20000);
    const run = npmStart({ PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: databaseUrl(db), REDIS_URL, QUEUE_PREFIX: prefix, DATA_DIR: dataDir });
    try {
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200, 60_000, 250);
      expect(run.output()).toMatch(/generated a development master key/);
      expect(run.output()).not.toMatch(/\[setup\]/);
      expect((await readFile(path.join(dataDir, 'master.key'), 'utf8')).trim()).toMatch(/^[A-Za-z0-9+/]{43}=$/);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    } finally {
      // As a terminal or a process manager does: the signal goes to the whole process group (npm and the service).
      process.kill(-run.proc.pid!, 'SIGTERM');
    }
    // npm relays the signal to the service and then reports the signal itself as its own exit;
    // the service's exit code is checked in ops-shutdown.test.ts (it runs `mediaflow start` directly).
    expect([0, 'SIGTERM']).toContain(await run.exited);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null)) === null, 10_000, 100);
  }, 90_000);

  it('refuses a bad value with one line naming the variable', async () => {
    const run = npmStart({ PORT: 'eighty', DATABASE_URL: databaseUrl(db), REDIS_URL });
    const code = await run.exited;
    expect(code).not.toBe(0);
    const lines = run.output().trim().split('\n').filter((l) => l.includes('PORT'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/invalid configuration: PORT/);
  }, 60_000);
});
