/**
 * The one module that spawns ffmpeg/ffprobe, against the real binaries (and a stand-in script for
 * the process-group kill): progress, stdout streaming, stderr tail, timeout, abort, missing binary.
 */
import { chmod, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configureTools, runFfmpeg, runFfprobe, ToolExitError, type ToolPaths } from '../../src/pipeline/ffmpeg/run.js';
import { fixture } from '../fixtures/generate.js';
import { scratch, useScratch } from './normalize-helpers.js';

useScratch();

let savedPaths: ToolPaths | undefined;
afterEach(() => {
  if (savedPaths) configureTools(savedPaths);
  savedPaths = undefined;
});

/** Processes of a group that are not zombies (a killed orphan stays a zombie until init reaps it). */
async function liveInGroup(pgid: number): Promise<number[]> {
  const live: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') live.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return live;
}

async function groupAlive(pgid: number): Promise<boolean> {
  // Allow the kernel a moment to deliver SIGKILL to every member.
  for (let i = 0; i < 20; i++) {
    if ((await liveInGroup(pgid)).length === 0) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

describe('runFfmpeg', () => {
  it('reports media time from -progress on its own fd', async () => {
    const times: number[] = [];
    await runFfmpeg({
      args: ['-nostdin', '-hide_banner', '-f', 'lavfi', '-i', 'testsrc2=s=160x120:r=25:d=2', '-f', 'null', 'pipe:1'],
      timeoutMs: 30_000,
      onProgressTime: (ms) => times.push(ms),
    });
    expect(times.length).toBeGreaterThan(0);
    expect(times[times.length - 1]).toBeGreaterThanOrEqual(1900);
    expect(times[times.length - 1]).toBeLessThanOrEqual(2100);
  });

  it('streams stdout to the caller (raw PCM), separate from progress', async () => {
    let bytes = 0;
    await runFfmpeg({
      args: ['-nostdin', '-f', 'lavfi', '-i', 'sine=d=1:r=8000', '-ac', '1', '-f', 's16le', 'pipe:1'],
      timeoutMs: 30_000,
      onStdout: (c) => {
        bytes += c.length;
      },
      onProgressTime: () => undefined,
    });
    expect(bytes).toBe(16_000);
  });

  it('a failure carries the end of stderr', async () => {
    const err = await runFfmpeg({
      args: ['-nostdin', '-hide_banner', '-loglevel', 'error', '-f', 'mov', '-i', `file:${await fixture('pdf')}`, '-f', 'null', 'pipe:1'],
      timeoutMs: 30_000,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolExitError);
    const e = err as ToolExitError;
    expect(e.exitCode).not.toBe(0);
    expect(e.timedOut).toBe(false);
    expect(e.stderrTail).toMatch(/moov atom not found|Invalid data found/);
    expect(e.message).toMatch(/^ffmpeg exited with code \d+: /);
  });

  it('a timeout kills the process group and rejects as timed out', async () => {
    let pid = 0;
    const started = performance.now();
    const err = await runFfmpeg({
      args: ['-nostdin', '-re', '-f', 'lavfi', '-i', 'testsrc2=d=60', '-f', 'null', 'pipe:1'],
      timeoutMs: 400,
      onSpawn: (p) => {
        pid = p;
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolExitError);
    expect((err as ToolExitError).timedOut).toBe(true);
    expect(performance.now() - started).toBeLessThan(3000);
    expect(pid).toBeGreaterThan(0);
    expect(await groupAlive(pid)).toBe(false);
  });

  it('abort kills every process of the group, grandchildren included', async () => {
    // A stand-in "ffmpeg" that starts a background child and waits: only a group kill stops both.
    const dir = await scratch();
    const script = join(dir, 'fake-ffmpeg.sh');
    await writeFile(script, '#!/bin/sh\nsleep 30 &\nsleep 30\n');
    await chmod(script, 0o755);
    savedPaths = configureTools({ ffmpeg: script });
    const controller = new AbortController();
    let pid = 0;
    const pending = runFfmpeg({
      args: [],
      timeoutMs: 60_000,
      signal: controller.signal,
      onSpawn: (p) => {
        pid = p;
      },
    }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 300));
    expect((await liveInGroup(pid)).length).toBe(3);
    controller.abort(new Error('stop'));
    const err = await pending;
    expect((err as Error).message).toBe('stop');
    expect(await groupAlive(pid)).toBe(false);
  });

  it('an already-aborted signal never spawns', async () => {
    const controller = new AbortController();
    controller.abort(new Error('early'));
    let spawned = false;
    const err = await runFfmpeg({ args: ['-version'], timeoutMs: 1000, signal: controller.signal, onSpawn: () => (spawned = true) }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('early');
    expect(spawned).toBe(false);
  });

  it('a missing binary is a plain (transient) spawn error', async () => {
    savedPaths = configureTools({ ffmpeg: '/nonexistent/ffmpeg' });
    const err = await runFfmpeg({ args: ['-version'], timeoutMs: 1000 }).catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(err).not.toBeInstanceOf(ToolExitError);
  });
});

describe('runFfprobe', () => {
  it('collects the JSON from stdout', async () => {
    const { stdout } = await runFfprobe({ args: ['-v', 'error', '-print_format', 'json', '-show_format', `file:${await fixture('mp3')}`], timeoutMs: 30_000 });
    expect(JSON.parse(stdout.toString()).format.format_name).toBe('mp3');
  });
});
