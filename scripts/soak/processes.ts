/**
 * The soak's processes: every `mediaflow start --role R` it runs, and the services beside them
 * (Redis, PgBouncer, the S3 server), each with a name, its peak RSS sampled from /proc while it
 * lives (VmHWM, so a process SIGKILLed between two samples keeps what it had reached), and the
 * kills and restarts done to it.
 */
import { readFileSync } from 'node:fs';
import { startServiceProcess, type ServiceProcess } from '../../test/helpers/service-process.js';

export interface Tracked {
  name: string;
  /** Live pids of this component. */
  pids(): number[];
  /** Several processes under their own names (a Redis cluster's nodes), instead of `pids`. */
  members?(): Array<{ name: string; pid: number }>;
}

/**
 * Peak RSS per component name, from /proc/<pid>/status VmHWM, and CPU seconds (user + system, from
 * /proc/<pid>/stat, summed over every process that bore the name: restarted ones too), sampled on a timer.
 */
export class RssSampler {
  private readonly peaks = new Map<string, number>();
  /** Last CPU ticks seen per pid, and the name it belongs to. */
  private readonly cpu = new Map<number, { name: string; ticks: number }>();
  private readonly tracked: Tracked[] = [];
  private timer: NodeJS.Timeout | undefined;

  track(t: Tracked): void {
    this.tracked.push(t);
  }

  start(intervalMs = 500): void {
    this.timer = setInterval(() => this.sample(), intervalMs);
    this.timer.unref();
  }

  sample(): void {
    for (const t of this.tracked) {
      const members = t.members ? t.members() : t.pids().map((pid) => ({ name: t.name, pid }));
      for (const { name, pid } of members) {
        const kb = vmHwmKb(pid);
        if (kb !== null) this.peaks.set(name, Math.max(this.peaks.get(name) ?? 0, kb * 1024));
        const ticks = cpuTicks(pid);
        if (ticks !== null) this.cpu.set(pid, { name, ticks });
      }
    }
  }

  stop(): void {
    this.sample();
    clearInterval(this.timer);
  }

  /** Peak bytes by name, sorted by name. */
  result(): Array<{ name: string; peakBytes: number }> {
    return [...this.peaks.entries()].sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true })).map(([name, peakBytes]) => ({ name, peakBytes }));
  }

  /** CPU seconds by name (a process's last sample before it died counts; the rest of its life is lost, at most one interval). */
  cpuSeconds(): Map<string, number> {
    const out = new Map<string, number>();
    for (const { name, ticks } of this.cpu.values()) out.set(name, (out.get(name) ?? 0) + ticks / CLOCK_TICKS);
    return out;
  }
}

/** USER_HZ: 100 on Linux x86-64. */
const CLOCK_TICKS = 100;

function cpuTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) in parentheses: utime and stime are 14 and 15.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return null;
  }
}

function vmHwmKb(pid: number): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** One mediaflow role process, restartable; `current` is undefined while it is down. */
export class RoleProcess implements Tracked {
  current: ServiceProcess | undefined;
  kills = 0;
  restarts = 0;
  /** Starts that failed during a restart (and were tried again). */
  failedStarts = 0;
  /** Output of every incarnation that ended, for a failure report. */
  private pastOutput = '';

  constructor(
    readonly name: string,
    readonly role: 'api' | 'worker' | 'sweeper',
    readonly env: Record<string, string>,
  ) {}

  async start(): Promise<void> {
    this.current = await startServiceProcess(this.env, { role: this.role, readyTimeoutMs: 60_000 });
    const sp = this.current;
    void sp.exited.then(() => {
      if (this.current === sp) this.current = undefined;
      this.pastOutput += sp.output().slice(-20_000);
    });
  }

  pids(): number[] {
    const pid = this.current?.proc.pid;
    return pid && this.current?.proc.exitCode === null && this.current.proc.signalCode === null ? [pid] : [];
  }

  get url(): string | undefined {
    return this.current?.url;
  }

  /** SIGKILL now; resolves once the process is gone. */
  async kill(): Promise<void> {
    const sp = this.current;
    if (!sp) return;
    this.kills++;
    this.current = undefined;
    sp.proc.kill('SIGKILL');
    await sp.exited;
  }

  /**
   * Starts it again the way a supervisor would: a start that fails (PostgreSQL or S3 down at that
   * moment: the service refuses to start, exit 69) is tried again every 2 s, for up to `forMs`.
   */
  async restart(forMs = 120_000): Promise<void> {
    this.restarts++;
    const deadline = Date.now() + forMs;
    for (;;) {
      try {
        await this.start();
        return;
      } catch (err) {
        this.failedStarts++;
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  }

  /** Graceful stop (SIGTERM, then the service's own shutdown bound). */
  async stop(): Promise<void> {
    const sp = this.current;
    if (!sp) return;
    await sp.stop('SIGTERM', 60_000).catch(() => undefined);
  }

  output(): string {
    return this.pastOutput + (this.current?.output().slice(-20_000) ?? '');
  }
}
