/**
 * The one module that starts the media tools: ffmpeg, ffprobe and heif-convert (libheif's decoder,
 * for HEIC photos). Everything else builds argument lists with pure functions and hands them here.
 *
 * Why plain `spawn` and not fluent-ffmpeg: its repository is archived, it probes ffmpeg's
 * capabilities once per process (0.1–0.2 s), and its command builder would duplicate the pure
 * builders we test with exact equality. What we need from it — a process, a timeout, progress and
 * an error with stderr — is this file.
 *
 * - No shell: arguments go to execve as they are, so a file name can never become syntax.
 * - `detached: true` makes the child a process-group leader, so a timeout or an abort kills the
 *   whole group (ffmpeg plus anything it may start) with one `kill(-pid)`.
 * - `-progress pipe:3` uses a dedicated fd, which leaves stdout free for data (raw PCM for the
 *   waveform) and stderr for diagnostics, of which only a tail is kept for the error message.
 * - `-timelimit` (ffmpeg's RLIMIT_CPU) is a backstop for a child that outlives us: if this
 *   process dies, nothing here can kill the group any more, but the kernel still will.
 * - Tools without such an option (heif-convert) are started through util-linux's `prlimit`, which
 *   sets RLIMIT_CPU and RLIMIT_AS and then execs the tool in place (same pid, same group): the
 *   address-space cap bounds a decoder whose input lies about its size in ways no header check sees.
 */
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import type { Logger } from '../../log.js';
import { createProgressParser } from './progress.js';

export type Tool = 'ffmpeg' | 'ffprobe' | 'heif-convert';

/** Kernel limits for one run, set by `prlimit` before the tool starts. */
export interface ToolRlimits {
  /** RLIMIT_AS: allocations past it fail inside the tool, which then exits with an error. */
  addressSpaceBytes: number;
  /** RLIMIT_CPU: the kernel kills the tool (SIGXCPU, then SIGKILL) past this many CPU seconds. */
  cpuSeconds: number;
}

export interface RunToolOptions {
  args: readonly string[];
  /** Wall-clock limit; past it the process group is killed and a transient error thrown. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Receives what the tool writes to stdout, chunk by chunk (ffmpeg outputs to `pipe:1`). */
  onStdout?: ((chunk: Buffer) => void) | undefined;
  /** Media time processed, from `-progress`; only for ffmpeg. */
  onProgressTime?: ((outTimeMs: number) => void) | undefined;
  /** Collect stdout into the result (ffprobe's JSON), up to this many bytes. */
  collectStdoutBytes?: number | undefined;
  /** Told the child's pid (= its process group id) once it is started: for logs and for tests of the kill. */
  onSpawn?: ((pid: number) => void) | undefined;
  /** When set, the tool runs under `prlimit` with these limits. */
  rlimits?: ToolRlimits | undefined;
  log?: Logger | undefined;
}

export interface RunToolResult {
  stdout: Buffer;
  stderrTail: string;
  wallMs: number;
}

/** A tool that ran and failed: the exit status and the end of what it said. */
export class ToolExitError extends Error {
  readonly tool: Tool;
  readonly exitCode: number | null;
  readonly exitSignal: NodeJS.Signals | null;
  readonly stderrTail: string;
  readonly timedOut: boolean;
  /** The wall-clock limit of the run (what it hit, when `timedOut`). */
  readonly timeoutMs: number | null;
  constructor(tool: Tool, exitCode: number | null, exitSignal: NodeJS.Signals | null, stderrTail: string, timedOut: boolean, timeoutMs: number | null = null) {
    const why = timedOut ? 'timed out' : exitSignal ? `was killed by ${exitSignal}` : `exited with code ${exitCode}`;
    super(`${tool} ${why}${stderrTail ? `: ${lastLines(stderrTail, 3)}` : ''}`);
    this.name = 'ToolExitError';
    this.tool = tool;
    this.exitCode = exitCode;
    this.exitSignal = exitSignal;
    this.stderrTail = stderrTail;
    this.timedOut = timedOut;
    this.timeoutMs = timeoutMs;
  }
}

const STDERR_TAIL_BYTES = 4096;

/** Where the tools are: FFMPEG_PATH, FFPROBE_PATH and HEIF_CONVERT_PATH from the configuration. */
export interface ToolPaths {
  ffmpeg?: string | undefined;
  ffprobe?: string | undefined;
  heifConvert?: string | undefined;
}

let toolPaths: ToolPaths = {};

/**
 * Set once at role start-up from the configuration, rather than threaded through every normalize
 * call down to here. Returns the paths set before, so a test that points a tool elsewhere can put
 * them back.
 */
export function configureTools(paths: ToolPaths): ToolPaths {
  const before = toolPaths;
  toolPaths = { ...paths };
  return before;
}

/** The binary to run: the configured path when set, else the tool's name, looked up on PATH. */
export function toolBinary(tool: Tool): string {
  const configured = tool === 'heif-convert' ? toolPaths.heifConvert : toolPaths[tool];
  return configured && configured.trim() !== '' ? configured : tool;
}

/**
 * What is executed for one run (pure): the tool itself, or `prlimit` with the limits and then the
 * tool. `--` ends prlimit's options, so nothing in the tool's arguments can be read as one of them.
 */
export function spawnCommand(binary: string, args: readonly string[], rlimits?: ToolRlimits): { file: string; args: string[] } {
  if (!rlimits) return { file: binary, args: [...args] };
  return {
    file: 'prlimit',
    args: [`--as=${Math.floor(rlimits.addressSpaceBytes)}`, `--cpu=${Math.ceil(rlimits.cpuSeconds)}`, '--', binary, ...args],
  };
}

/** Process groups still running, killed if this process exits first (a crash, `process.exit`). */
const live = new Set<number>();
let exitHookInstalled = false;
function trackGroup(pid: number): void {
  live.add(pid);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const p of live) killGroup(p);
    });
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: the group is already gone.
  }
}

/** Runs ffmpeg or ffprobe to completion; rejects with ToolExitError, the abort reason, or a spawn error. */
export function runTool(tool: Tool, opts: RunToolOptions): Promise<RunToolResult> {
  const started = Date.now();
  const signal = opts.signal;
  if (signal?.aborted) return Promise.reject(abortReason(signal));

  const args: string[] = [];
  if (tool === 'ffmpeg') {
    // CPU-seconds backstop: wall timeout × 2 cores, plus slack.
    args.push('-timelimit', String(Math.ceil((opts.timeoutMs / 1000) * 2) + 10));
    if (opts.onProgressTime) args.push('-progress', 'pipe:3', '-nostats');
  }
  args.push(...opts.args);

  const command = spawnCommand(toolBinary(tool), args, opts.rlimits);
  return new Promise<RunToolResult>((resolve, reject) => {
    const child = spawn(command.file, command.args, {
      detached: true,
      shell: false,
      stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    const pid = child.pid;
    let timedOut = false;
    let aborted = false;
    let settled = false;
    let stderrTail = '';
    const stdoutParts: Buffer[] = [];
    let stdoutBytes = 0;
    let stdoutOverflow = false;

    const finish = (err: unknown, result?: RunToolResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (pid !== undefined) live.delete(pid);
      if (err) reject(err);
      else resolve(result!);
    };

    const stop = (): void => {
      if (pid !== undefined) killGroup(pid);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, opts.timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      stop();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (pid !== undefined) {
      trackGroup(pid);
      opts.onSpawn?.(pid);
    }

    child.stdout!.on('data', (chunk: Buffer) => {
      if (opts.onStdout) {
        try {
          opts.onStdout(chunk);
        } catch (e) {
          stop();
          finish(e);
          return;
        }
      }
      if (opts.collectStdoutBytes !== undefined) {
        stdoutBytes += chunk.length;
        if (stdoutBytes > opts.collectStdoutBytes) {
          if (!stdoutOverflow) {
            stdoutOverflow = true;
            stop();
          }
        } else {
          stdoutParts.push(chunk);
        }
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => {
      stderrTail = (stderrTail + s).slice(-STDERR_TAIL_BYTES);
    });
    const progressStream = child.stdio[3] as Readable | null | undefined;
    if (progressStream && opts.onProgressTime) {
      const parser = createProgressParser(opts.onProgressTime);
      progressStream.setEncoding('utf8');
      progressStream.on('data', (s: string) => parser.push(s));
    } else {
      progressStream?.resume();
    }

    child.once('error', (err) => finish(err));
    child.once('close', (code, sig) => {
      const wallMs = Date.now() - started;
      if (aborted && signal) return finish(abortReason(signal));
      if (stdoutOverflow) return finish(new Error(`${tool} wrote more than ${opts.collectStdoutBytes} bytes to stdout`));
      if (timedOut) {
        opts.log?.warn({ tool, timeoutMs: opts.timeoutMs }, 'media tool timed out; process group killed');
        return finish(new ToolExitError(tool, code, sig, stderrTail, true, opts.timeoutMs));
      }
      if (code !== 0) return finish(new ToolExitError(tool, code, sig, stderrTail, false, opts.timeoutMs));
      finish(null, { stdout: Buffer.concat(stdoutParts), stderrTail, wallMs });
    });
  });
}

/** ffmpeg with the runner's progress fd and CPU backstop. */
export function runFfmpeg(opts: RunToolOptions): Promise<RunToolResult> {
  return runTool('ffmpeg', opts);
}

/** ffprobe, its JSON collected from stdout (bounded: a probe answer is a few KB). */
export function runFfprobe(opts: Omit<RunToolOptions, 'onProgressTime' | 'onStdout'>): Promise<RunToolResult> {
  return runTool('ffprobe', { collectStdoutBytes: 4 * 1024 * 1024, ...opts });
}

/** heif-convert (libheif's example decoder) under `prlimit`: it has no resource options of its own. */
export function runHeifConvert(opts: Omit<RunToolOptions, 'onProgressTime' | 'onStdout' | 'collectStdoutBytes' | 'rlimits'> & { rlimits: ToolRlimits }): Promise<RunToolResult> {
  return runTool('heif-convert', opts);
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join(' | ');
}
