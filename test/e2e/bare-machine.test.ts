/**
 * The README's run command where something is missing, as a new user meets it: `npm start` in a clean
 * copy of the repository stops by itself with one line naming the missing piece and how to get it,
 * and exit code 69 (EX_UNAVAILABLE), never a stack trace or a retry loop. Then `mediaflow doctor`
 * against the real services, and scripts/setup.sh's own guidance for the test command.
 *
 * Real: `npm`, bash, Redis and PostgreSQL. "Missing" is made without touching the machine: ffmpeg is
 * hidden by a PATH that holds only node, npm, sh and bash; Redis is a closed local port. Package
 * installs are off (MEDIAFLOW_SETUP_INSTALL=0), and with that PATH apt-get is not even there.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, cp, mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, runToEnd } from '../helpers/child.js';
import { databaseUrl, dropDatabase, isolatedEnv, REDIS_URL, uniqueName } from '../helpers/env.js';

let copy = '';
let bareBin = '';
let dataDir = '';
const db = uniqueName('mf_bare');

/** What a fresh clone holds: everything but installed, built and generated things. */
const NOT_IN_A_CLONE = new Set(['node_modules', '.git', 'data', 'dist', 'coverage']);

async function onPath(name: string): Promise<string> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const file = path.join(dir, name);
    if (await access(file, constants.X_OK).then(() => true, () => false)) return file;
  }
  throw new Error(`${name} is not on PATH`);
}

/** A local port nothing listens on: bound once by the system's choice, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

beforeAll(async () => {
  copy = await mkdtemp(path.join(os.tmpdir(), 'mf-clean-copy-'));
  await cp(ROOT, copy, {
    recursive: true,
    filter: (src) => {
      const rel = path.relative(ROOT, src);
      return !NOT_IN_A_CLONE.has(rel.split(path.sep)[0]!) && !rel.endsWith('.log');
    },
  });
  // `npm ci` would give the same packages; a link saves installing them again.
  await symlink(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));
  bareBin = path.join(copy, '.bare-bin');
  await mkdir(bareBin);
  await symlink(process.execPath, path.join(bareBin, 'node'));
  for (const tool of ['npm', 'sh', 'bash']) await symlink(await onPath(tool), path.join(bareBin, tool));
  dataDir = await mkdtemp(path.join(os.tmpdir(), 'mf-bare-data-'));
});

afterAll(async () => {
  await dropDatabase(db);
  if (copy) await rm(copy, { recursive: true, force: true });
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** `npm start` in the clean copy, to its end (a start that hangs is killed and shows as SIGKILL). */
function npmStart(env: Record<string, string>): Promise<{ code: number | string; output: string }> {
  const proc = spawn('npm', ['start'], {
    cwd: copy,
    env: {
      HOME: process.env.HOME ?? '/tmp',
      PORT: '0',
      HOST: '127.0.0.1',
      DATABASE_URL: databaseUrl(db),
      QUEUE_PREFIX: uniqueName('mfbare'),
      DATA_DIR: dataDir,
      MEDIAFLOW_SETUP_INSTALL: '0',
      // npm's "new version available" notice would be one more line to read.
      npm_config_update_notifier: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  proc.stdout.on('data', (c: Buffer) => (output += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const killer = setTimeout(() => process.kill(-proc.pid!, 'SIGKILL'), 40_000);
  return new Promise((resolve) =>
    proc.on('exit', (code, sig) => {
      clearTimeout(killer);
      resolve({ code: code ?? sig ?? -1, output });
    }),
  );
}

/** What the user reads, without npm's own `> mediaflow@… start` banners. */
const said = (output: string) =>
  output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('>'));

describe('npm start on a bare machine', () => {
  it('without ffmpeg on PATH: stops with one line saying how to install it, exit 69', async () => {
    const run = await npmStart({ PATH: bareBin, REDIS_URL });
    expect(run.code).toBe(69);
    expect(said(run.output)).toEqual([expect.stringMatching(/^mediaflow: ffmpeg and ffprobe not found on PATH .*apt-get install -y ffmpeg.*--role api` runs without them$/)]);
  }, 60_000);

  it('with Redis at a closed local port: stops with one line naming Redis and what to do, exit 69', async () => {
    const port = await closedPort();
    const run = await npmStart({ PATH: process.env.PATH ?? '', REDIS_URL: `redis://127.0.0.1:${port}` });
    expect(run.code).toBe(69);
    expect(said(run.output)).toEqual([`mediaflow: Redis is not reachable at 127.0.0.1:${port} (nothing listens there): start a Redis on port ${port}, or unset REDIS_URL to use the one on 127.0.0.1:6379`]);
  }, 60_000);
});

describe('mediaflow doctor', () => {
  it('against the real services: every check ok or warn, exit 0, no secret printed', async () => {
    const iso = await isolatedEnv();
    try {
      const res = await runToEnd(['doctor', '--json'], iso.env);
      expect(res.code).toBe(0);
      const rows = JSON.parse(res.stdout) as { check: string; status: string; detail: string; fix?: string }[];
      expect(rows.map((r) => r.check)).toEqual(
        expect.arrayContaining(['node', 'configuration', 'ffmpeg', 'ffprobe', 'heif-convert', 'redis', 'redis eviction', 'redis persistence', 'postgres', 'migrations', 'storage', 'master keys']),
      );
      for (const r of rows) expect(['ok', 'warn'], `${r.check}: ${r.detail}`).toContain(r.status);
      expect(rows.find((r) => r.check === 'migrations')).toMatchObject({ status: 'ok' });
      expect(res.output).not.toContain(iso.env.MASTER_KEY);
    } finally {
      await iso.cleanup();
    }
  });

  it('with Redis at a closed local port: a failed redis row with what to do, exit 1', async () => {
    const port = await closedPort();
    const password = randomBytes(8).toString('hex');
    const res = await runToEnd(['doctor', '--json'], { REDIS_URL: `redis://:${password}@127.0.0.1:${port}`, DATABASE_URL: databaseUrl(db), DATA_DIR: dataDir });
    expect(res.code).toBe(1);
    const rows = JSON.parse(res.stdout) as { check: string; status: string; detail: string; fix?: string }[];
    expect(rows.find((r) => r.check === 'redis')).toEqual({
      check: 'redis',
      status: 'fail',
      detail: `not reachable at 127.0.0.1:${port} (nothing listens there)`,
      fix: `start a Redis on port ${port}, or unset REDIS_URL to use the one on 127.0.0.1:6379`,
    });
    expect(res.output).not.toContain(password);
  });

  it('prints a table for a person', async () => {
    const res = await runToEnd(['doctor'], { REDIS_URL, DATABASE_URL: databaseUrl(db), DATA_DIR: dataDir });
    const [head, ...lines] = res.stdout.trimEnd().split('\n');
    expect(head).toMatch(/^check\s+status\s+detail\s+fix$/);
    expect(lines.find((l) => l.startsWith('redis '))).toMatch(new RegExp(`^redis\\s+ok\\s+\\S+ at ${new URL(REDIS_URL).host.replace(/\./g, '\\.')}$`));
  });
});

describe('scripts/setup.sh for the test command', () => {
  const setup = (env: Record<string, string>) =>
    new Promise<{ code: number | null; output: string }>((resolve) => {
      const proc = spawn(path.join(bareBin, 'bash'), [path.join(copy, 'scripts/setup.sh'), '--for-tests'], { env: { PATH: bareBin, MEDIAFLOW_SETUP_INSTALL: '0', REDIS_URL, ...env } });
      let output = '';
      proc.stderr.on('data', (c: Buffer) => (output += c.toString()));
      proc.stdout.on('data', (c: Buffer) => (output += c.toString()));
      proc.on('exit', (code) => resolve({ code, output }));
    });

  it('names each missing media tool with the command that installs it, and fails', async () => {
    const run = await setup({});
    expect(run.code).toBe(1);
    expect(run.output.trim().split('\n')).toEqual([
      expect.stringMatching(/^\[setup\] ffmpeg\/ffprobe missing .*apt-get install -y ffmpeg/),
      expect.stringMatching(/^\[setup\] heif-convert missing .*apt-get install -y libheif-examples/),
    ]);
  });

  it('does nothing at all when NODE_ENV=production', async () => {
    expect(await setup({ NODE_ENV: 'production' })).toEqual({ code: 0, output: '' });
  });
});
