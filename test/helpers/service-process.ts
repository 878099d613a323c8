/**
 * The service as an operator runs it: `node bin/mediaflow.js start --role R` in its own process,
 * with its stdout/stderr (pino JSON lines) collected, stopped by a real signal.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin/mediaflow.js');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface ServiceProcess {
  proc: ChildProcess;
  /** The API's base URL (roles with the API). */
  url: string;
  port: number;
  /** Everything the process wrote so far, stdout and stderr. */
  output(): string;
  /** The JSON log lines so far, parsed (other lines skipped). */
  logLines(): Array<Record<string, any>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal and resolves with the exit, or rejects after `timeoutMs` (and SIGKILLs). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
}

export function processEnv(env: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env };
}

/**
 * Starts `mediaflow start` and resolves once it answers: /readyz on the API port, or /healthz on
 * METRICS_PORT for roles without the API.
 */
export async function startServiceProcess(env: Record<string, string>, opts: { role?: string; readyTimeoutMs?: number } = {}): Promise<ServiceProcess> {
  const role = opts.role ?? 'all';
  const port = env.PORT && env.PORT !== '0' ? Number(env.PORT) : await freePort();
  const proc = spawn(process.execPath, [BIN, 'start', '--role', role], {
    cwd: ROOT,
    env: processEnv({ ...env, PORT: String(port) }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  proc.stderr!.on('data', (c: Buffer) => (out += c.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  let exitedEarly = false;
  void exited.then(() => (exitedEarly = true));

  const hasApi = role === 'api' || role === 'all';
  const probe = hasApi ? `http://127.0.0.1:${port}/readyz` : `http://127.0.0.1:${env.METRICS_PORT}/healthz`;
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (exitedEarly) throw new Error(`mediaflow start exited before it was ready:\n${out.slice(-4000)}`);
    const ok = await fetch(probe).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`mediaflow start was not ready within ${opts.readyTimeoutMs ?? 30_000} ms:\n${out.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    proc,
    url: `http://127.0.0.1:${port}`,
    port,
    output: () => out,
    logLines: () =>
      out.split('\n').flatMap((l) => {
        if (!l.startsWith('{')) return [];
        try {
          return [JSON.parse(l) as Record<string, any>];
        } catch {
          return [];
        }
      }),
    exited,
    async stop(signal = 'SIGTERM', timeoutMs = 40_000) {
      const t0 = Date.now();
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const res = await Promise.race([
        exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            proc.kill('SIGKILL');
            reject(new Error(`mediaflow did not exit within ${timeoutMs} ms of ${signal}:\n${out.slice(-4000)}`));
          }, timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
      return { ...res, ms: Date.now() - t0 };
    },
  };
}

/** Runs a `mediaflow` command to its end; stdout and stderr kept apart. */
export async function runCli(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: processEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
  proc.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
  const code = await new Promise<number | null>((resolve) => proc.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/**
 * A multipart/form-data upload whose body the caller feeds: `send(bytes)` writes, `end()` writes
 * the closing boundary. The request is in flight (headers sent, body open) from the start, which
 * is what a shutdown test needs to hit.
 */
export function streamingUpload(url: string, init: { key: string; filename: string; type: string; fields?: Record<string, string> }) {
  const boundary = `----mediaflow-test-${Math.random().toString(16).slice(2)}`;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  let head = '';
  for (const [k, v] of Object.entries(init.fields ?? {})) head += `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`;
  head += `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${init.filename}"\r\nContent-Type: ${init.type}\r\n\r\n`;
  controller.enqueue(new TextEncoder().encode(head));
  const response = fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${init.key}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
    body,
    duplex: 'half',
  } as RequestInit);
  // The caller may never await `response` (e.g. it expects the connection to be cut).
  response.catch(() => undefined);
  return {
    response,
    send(bytes: Uint8Array) {
      controller.enqueue(bytes);
    },
    end() {
      controller.enqueue(new TextEncoder().encode(`\r\n--${boundary}--\r\n`));
      controller.close();
    },
    abort(err: Error = new Error('client gave up')) {
      controller.error(err);
    },
  };
}
