/**
 * The operator's CLI against a running worker process: `mediaflow ingest --wait` on a ~10 MB video
 * under a pseudo-terminal (util-linux `script` allocates it) shows a progress bar and ends with the
 * media object; without a terminal it prints plain lines; `stats --json`; `--help`. The worker role
 * has no API, so its metrics are read from its own METRICS_PORT server.
 * Real: processes, a pty, Redis, PostgreSQL, the fs store, ffmpeg.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../src/cli/admin.js';
import { silentLogger } from '../../src/log.js';
import { createRuntime } from '../../src/runtime.js';
import { isolatedEnv } from '../helpers/env.js';
import { smallJpeg } from '../helpers/media.js';
import { BIN, freePort, processEnv, ROOT, runCli, startServiceProcess, type ServiceProcess } from '../helpers/service-process.js';

const hasScript = spawnSync('sh', ['-c', 'command -v script']).status === 0;
const cleanups: Array<() => Promise<unknown>> = [];
let env: Record<string, string>;
let appId: string;
let tmp: string;
let worker: ServiceProcess;

beforeAll(async () => {
  const iso = await isolatedEnv({ LOG_LEVEL: 'warn' });
  cleanups.push(() => iso.cleanup());
  env = { ...iso.env, METRICS_PORT: String(await freePort()) };
  const rt = await createRuntime(iso.config, silentLogger);
  appId = (await createApp(rt, { name: 'cli' }).finally(() => rt.close())).app.id;
  tmp = await mkdtemp(path.join(os.tmpdir(), 'mf-cli-'));
  cleanups.push(() => rm(tmp, { recursive: true, force: true }));
  worker = await startServiceProcess(env, { role: 'worker' });
  cleanups.push(() => worker.stop('SIGTERM').catch(() => worker.proc.kill('SIGKILL')));
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

/** Runs a command line in a pseudo-terminal; resolves with everything the terminal showed. */
function inPty(command: string, timeoutMs = 90_000): Promise<{ code: number | null; screen: string }> {
  // -q no banner, -f flush as written, -e the command's exit code, -c the command; the typescript file is /dev/null.
  const proc = spawn('script', ['-qfec', command, '/dev/null'], { cwd: ROOT, env: processEnv({ ...env, SHELL: '/bin/sh', TERM: 'xterm' }), stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  proc.stdout.on('data', (c: Buffer) => (screen += c.toString('utf8')));
  proc.stderr.on('data', (c: Buffer) => (screen += c.toString('utf8')));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, screen });
    }),
  );
}

/** The last pretty-printed JSON object in a terminal transcript. */
function lastJsonObject(text: string): any {
  const plain = text.replace(/\r\n/g, '\n');
  const start = plain.lastIndexOf('\n{\n');
  return JSON.parse(plain.slice(start + 1).trim());
}

describe('mediaflow ingest on a terminal', () => {
  it.runIf(hasScript)('uploads a ~10 MB video with a progress bar and ends with the ready media object', async () => {
    const video = path.join(tmp, 'clip.mp4');
    execFileSync('ffmpeg', ['-nostdin', '-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30', '-t', '10',
      '-c:v', 'libx264', '-preset', 'ultrafast', '-b:v', '8M', '-pix_fmt', 'yuv420p', '-y', video]);
    const size = (await import('node:fs')).statSync(video).size;
    expect(size).toBeGreaterThan(8_000_000);

    const { code, screen } = await inPty(`${process.execPath} ${BIN} ingest ${video} --app ${appId} --wait --timeout 100`, 120_000);
    expect(code, screen.slice(-2000)).toBe(0);
    // The bar is redrawn in place: carriage return, erase-line, then `phase [###---] NN%`.
    const frames = screen.split('\r').map((f) => f.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')).filter((f) => /\[[#-]{30}\]\s+\d+%/.test(f));
    const uploads = frames.filter((f) => f.startsWith('upload'));
    expect(uploads.length).toBeGreaterThanOrEqual(2);
    expect(uploads.some((f) => /\] +100%/.test(f))).toBe(true);
    expect(uploads.some((f) => /\] +([1-9]|[1-9]\d)%/.test(f))).toBe(true);
    expect(uploads.at(-1)).toMatch(/10\.\d MB \/ 10\.\d MB/);
    expect(frames.some((f) => /^ready +\[#{30}\] 100%/.test(f))).toBe(true);
    // Sizes grow monotonically: the bar tracks the bytes sent.
    const pct = uploads.map((f) => Number(/(\d+)%/.exec(f)![1]));
    expect(pct).toEqual([...pct].sort((a, b) => a - b));

    const media = lastJsonObject(screen);
    expect(media).toMatchObject({ status: 'ready', kind: 'video', mimeType: 'video/mp4', source: 'upload', originalName: 'clip.mp4' });
    expect(media.checksum.algorithm).toBe('sha256');
    expect(media.mediaPath).toMatch(/^media\//);
    // Generous: on 2 shared cores the whole suite runs ffmpeg in parallel with this.
  }, 150_000);

  it('prints plain lines without a terminal, and only the media object on stdout with --json', async () => {
    const jpg = path.join(tmp, 'photo.jpg');
    await writeFile(jpg, await smallJpeg(320, 240, 5));
    const r = await runCli(['ingest', jpg, '--app', appId, '--wait', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('\r');
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^upload \d+%/);
    expect(lines.at(-1)).toBe('ready 100%');
    const media = JSON.parse(r.stdout);
    expect(media).toMatchObject({ status: 'ready', kind: 'image', originalName: 'photo.jpg' });
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('fails with one line and exit 1 for a missing file or an unknown app', async () => {
    const [missing, noApp] = await Promise.all([
      runCli(['ingest', path.join(tmp, 'nope.mp4'), '--app', appId], env),
      runCli(['ingest', path.join(tmp, 'photo.jpg'), '--app', 'app_nope', '--json'], env),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim()).toMatch(/^mediaflow: no file .*nope\.mp4$/);
    expect(noApp.code).toBe(1);
    expect(JSON.parse(noApp.stdout).error.code).toBe('NOT_FOUND');
  });
});

describe('mediaflow stats and --help', () => {
  it('stats --json: queue depths, media by status and kind, bytes stored', async () => {
    const [r, human] = await Promise.all([runCli(['stats', '--json'], env), runCli(['stats'], env)]);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(Object.keys(s.queues)).toEqual(expect.arrayContaining(['media-ingest', 'webhook', 'retention-sweep']));
    expect(s.queues['media-ingest']).toHaveProperty('waiting');
    expect(s.media.byStatus.ready).toBeGreaterThanOrEqual(1);
    expect(s.media.byKind.image).toBeGreaterThanOrEqual(1);
    expect(s.bytesStored).toBeGreaterThan(0);
    expect(human.stdout).toMatch(/^queues\n {2}media-ingest/);
    expect(human.stdout).toMatch(/bytes stored +\d+/);
  });

  it('--help names the commands, the environment and examples', async () => {
    const [top, ing] = await Promise.all([runCli(['--help'], {}), runCli(['ingest', '--help'], {})]);
    expect(top.code).toBe(0);
    for (const c of ['migrate', 'start', 'apps', 'keys', 'ingest', 'sweep', 'stats']) expect(top.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    expect(top.stdout).toContain('Examples:');
    for (const o of ['--app', '--kind', '--device', '--wait', '--timeout', '--json']) expect(ing.stdout).toContain(o);
    expect(ing.stdout).toContain('mediaflow ingest ./clip.mov --app app_123 --wait');
  });
});

describe('a worker-only role', () => {
  it('serves its own metrics and health on METRICS_PORT, and its job counter moved', async () => {
    const base = `http://127.0.0.1:${env.METRICS_PORT}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const text = await (await fetch(`${base}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('mediaflow_jobs_total{queue="media-ingest",outcome="completed"} '));
    expect(Number(line?.split(' ')[1])).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^mediaflow_processing_seconds_count\{kind="(video|image)"/m);
    expect(text).toMatch(/^mediaflow_queue_depth\{queue="media-ingest",state="waiting"\} 0$/m);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });
});
