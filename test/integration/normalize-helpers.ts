/**
 * Shared by the normalize integration tests (real sharp, ffmpeg, ffprobe; no network, no services):
 * a scratch directory per test, an ffprobe reader, MP4 box order, EXIF GPS detection.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, expect } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import type { MediaKind } from '../../src/domain/kinds.js';
import { silentLogger } from '../../src/log.js';
import { configureTools } from '../../src/pipeline/ffmpeg/run.js';
import type { NormalizeInput } from '../../src/pipeline/normalize-types.js';

const run = promisify(execFile);

const dirs: string[] = [];
/** Registers cleanup of the scratch directories made by `scratch()` in this file. */
export function useScratch(): void {
  afterEach(async () => {
    await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
}

export async function scratch(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'mediaflow-normalize-test-'));
  dirs.push(d);
  return d;
}

export async function input(inputPath: string, sniffedMime: string, kind: MediaKind, extra: Partial<NormalizeInput> = {}): Promise<NormalizeInput> {
  return { inputPath, sniffedMime, kind, scratchDir: await scratch(), log: silentLogger, ...extra };
}

export interface ProbeJson {
  format: { format_name: string; duration?: string; tags?: Record<string, string> };
  streams: Array<Record<string, unknown> & { codec_type: string; codec_name: string }>;
}

export async function ffprobe(path: string): Promise<ProbeJson> {
  const { stdout } = await run(process.env.FFPROBE_PATH || 'ffprobe', ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', path]);
  return JSON.parse(stdout) as ProbeJson;
}

/** MD5 of one stream's packets: equal for input and output only if the stream was copied, not re-encoded. */
export async function packetMd5(path: string, stream: 'v' | 'a'): Promise<string> {
  const { stdout } = await run(process.env.FFMPEG_PATH || 'ffmpeg', ['-nostdin', '-v', 'error', '-i', path, '-map', `0:${stream}:0`, '-c', 'copy', '-f', 'md5', '-']);
  return stdout.trim();
}

/** Top-level ISO BMFF box types in file order (ftyp, moov, mdat…). */
export async function topLevelBoxes(path: string): Promise<string[]> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    const types: string[] = [];
    const head = Buffer.alloc(16);
    let pos = 0;
    while (pos + 8 <= size) {
      await fh.read(head, 0, 16, pos);
      let len = head.readUInt32BE(0);
      types.push(head.toString('latin1', 4, 8));
      if (len === 1) len = Number(head.readBigUInt64BE(8));
      if (len === 0) break;
      if (len < 8) throw new Error(`bad box size at ${pos}`);
      pos += len;
    }
    return types;
  } finally {
    await fh.close();
  }
}

/** Whether a raw EXIF block (TIFF header first) has a GPS IFD pointer (tag 0x8825) in IFD0. */
export function exifHasGps(exif: Buffer): boolean {
  const tiff = exif.subarray(0, 4).toString('latin1') === 'Exif' ? exif.subarray(6) : exif;
  const le = tiff.toString('latin1', 0, 2) === 'II';
  const u16 = (o: number): number => (le ? tiff.readUInt16LE(o) : tiff.readUInt16BE(o));
  const u32 = (o: number): number => (le ? tiff.readUInt32LE(o) : tiff.readUInt32BE(o));
  const ifd0 = u32(4);
  const n = u16(ifd0);
  for (let i = 0; i < n; i++) if (u16(ifd0 + 2 + i * 12) === 0x8825) return true;
  return false;
}

/** Processes whose command line mentions `needle` (to prove ffmpeg did not outlive an abort). */
export async function processesMentioning(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = await readFile(`/proc/${entry}/cmdline`, 'latin1');
      if (cmd.includes(needle)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

/** A process as /proc tells it: state letter (R, S, Z…), parent, process group. */
export interface ProcInfo {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  pgid: number;
}

export async function processTable(): Promise<ProcInfo[]> {
  const out: ProcInfo[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'latin1');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.push({ pid: Number(entry), comm, state: f[0]!, ppid: Number(f[1]), pgid: Number(f[2]) });
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** Children of this process that are media tools, in any state (a zombie included). */
export async function toolChildren(): Promise<ProcInfo[]> {
  return (await processTable()).filter((p) => p.ppid === process.pid && /^(ffmpeg|ffprobe|heif-convert|prlimit|strace)$/.test(p.comm));
}

/**
 * Runs every ffmpeg/ffprobe this process starts under `strace -f -e trace=%file` (each run writes
 * its own trace), by pointing FFMPEG_PATH/FFPROBE_PATH at wrappers: what the tools open, stat or
 * exec is then on record, children included (the runner is configured with the wrappers; the
 * environment carries them for the test's own runs). `restore()` puts both back.
 */
export async function traceMediaTools(): Promise<{ dir: string; traces(): Promise<string[]>; restore(): void }> {
  const dir = await mkdtemp(join(tmpdir(), 'mediaflow-strace-'));
  const saved = { FFMPEG_PATH: process.env.FFMPEG_PATH, FFPROBE_PATH: process.env.FFPROBE_PATH };
  for (const [tool, envName] of [['ffmpeg', 'FFMPEG_PATH'], ['ffprobe', 'FFPROBE_PATH']] as const) {
    const real = saved[envName] || (await run('sh', ['-c', 'command -v "$1"', 'sh', tool])).stdout.trim();
    const wrapper = join(dir, `${tool}-traced`);
    await writeFile(wrapper, `#!/bin/sh\nexec strace -f -qq -e trace=%file -o '${dir}/${tool}.'$$'.trace' '${real}' "$@"\n`);
    await chmod(wrapper, 0o755);
    process.env[envName] = wrapper;
  }
  const savedTools = configureTools({});
  configureTools({ ...savedTools, ffmpeg: process.env.FFMPEG_PATH, ffprobe: process.env.FFPROBE_PATH });
  dirs.push(dir);
  return {
    dir,
    async traces() {
      const names = (await readdir(dir)).filter((n) => n.endsWith('.trace')).sort();
      return Promise.all(names.map((n) => readFile(join(dir, n), 'utf8')));
    },
    restore() {
      configureTools(savedTools);
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    },
  };
}

/** The PermanentError a step rejects with (fails the test when it resolves or rejects otherwise). */
export async function rejection(p: Promise<unknown>): Promise<PermanentError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PermanentError);
  return err as PermanentError;
}
