/**
 * A real PgBouncer in front of the local PostgreSQL, for tests and the soak: Debian's `pgbouncer`
 * (1.18+) on a free local port, transaction pooling by default, trust auth (the local PostgreSQL
 * trusts 127.0.0.1), every database name passed through (`* = host=… port=…`), its ini, userlist
 * and log in a temp dir. Nothing is mocked.
 *
 *   import { startPgBouncer } from '../helpers/pgbouncer.js';
 *   const bouncer = await startPgBouncer();              // upstream: TEST_DATABASE_URL's server
 *   bouncer.via(directUrl);                              // the same database through PgBouncer (DATABASE_URL)
 *   await bouncer.stop();  await bouncer.start();        // an outage, then PgBouncer back on the same port
 *   await bouncer.close();                               // stopped, the temp dir removed
 *
 * Settings mediaflow needs from a PgBouncer in transaction mode, written here as an operator would:
 * `ignore_startup_parameters = extra_float_digits,statement_timeout` (node-postgres sends
 * statement_timeout at connect; PgBouncer 1.18 refuses unknown startup parameters) and nothing
 * else. Migrations must not run through it (they hold a session advisory lock): give mediaflow the
 * direct URL as DATABASE_MIGRATION_URL. As root, PgBouncer refuses to run, so it is started with
 * `-u postgres` (the temp dir is handed to that user). A test process that exits without `close()`
 * still kills it (an 'exit' hook).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './service-process.js';

export interface PgBouncer {
  port: number;
  /** The running PgBouncer's process id (for RSS readings), undefined while stopped. */
  pid(): number | undefined;
  /** `directUrl` (a postgres:// URL on the upstream server) rewritten to reach the same database through PgBouncer. */
  via(directUrl: string): string;
  /** Stops PgBouncer (SIGTERM: open client connections are cut at once). */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same settings. */
  start(): Promise<void>;
  /** Everything PgBouncer logged so far. */
  log(): Promise<string>;
  close(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHook = false;

async function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

export async function startPgBouncer(
  opts: { upstreamUrl?: string; poolMode?: 'transaction' | 'session' | 'statement'; defaultPoolSize?: number; maxClientConn?: number } = {},
): Promise<PgBouncer> {
  const upstream = new URL(opts.upstreamUrl ?? process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  const user = decodeURIComponent(upstream.username || 'postgres');
  const host = upstream.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const upstreamPort = upstream.port || '5432';
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mediaflow-pgbouncer-'));
  const ini = path.join(dir, 'pgbouncer.ini');
  const logfile = path.join(dir, 'pgbouncer.log');
  await writeFile(path.join(dir, 'userlist.txt'), `"${user}" ""\n`);
  await writeFile(
    ini,
    [
      '[databases]',
      `* = host=${host} port=${upstreamPort}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      `pool_mode = ${opts.poolMode ?? 'transaction'}`,
      `default_pool_size = ${opts.defaultPoolSize ?? 20}`,
      `max_client_conn = ${opts.maxClientConn ?? 500}`,
      'ignore_startup_parameters = extra_float_digits,statement_timeout',
      `logfile = ${logfile}`,
      `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
      '',
    ].join('\n'),
  );
  const root = process.getuid?.() === 0;
  if (root) {
    const { uid, gid } = await postgresIds();
    await chmod(dir, 0o755);
    for (const f of ['', 'pgbouncer.ini', 'userlist.txt']) await chown(path.join(dir, f), uid, gid);
  }

  let proc: ChildProcess | null = null;
  const bouncer: PgBouncer = {
    port,
    pid: () => (proc && proc.exitCode === null && proc.signalCode === null ? proc.pid : undefined),
    via(directUrl) {
      const u = new URL(directUrl);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    async start() {
      if (proc && proc.exitCode === null && proc.signalCode === null) return;
      let stderr = '';
      // Debian installs it in /usr/sbin, which a non-root PATH may lack.
      const bin = existsSync('/usr/sbin/pgbouncer') ? '/usr/sbin/pgbouncer' : 'pgbouncer';
      const p = spawn(bin, [...(root ? ['-u', 'postgres'] : []), ini], { stdio: ['ignore', 'ignore', 'pipe'] });
      p.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      // Not installed: the spawn fails, and the wait below reports it.
      let failed = false;
      p.once('error', (err) => {
        failed = true;
        stderr += `${err.message} (install Debian's pgbouncer)\n`;
      });
      proc = p;
      live.add(p);
      p.once('exit', () => live.delete(p));
      if (!exitHook) {
        exitHook = true;
        process.once('exit', () => {
          for (const x of live) x.kill('SIGKILL');
        });
      }
      const deadline = Date.now() + 10_000;
      while (!(await accepting(port))) {
        if (failed || p.exitCode !== null || Date.now() > deadline) {
          p.kill('SIGKILL');
          throw new Error(`pgbouncer did not start on port ${port}: ${stderr}${await bouncer.log()}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      const t = setTimeout(() => p.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
    log: () => readFile(logfile, 'utf8').catch(() => ''),
    async close() {
      await bouncer.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await bouncer.start();
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return bouncer;
}

/** The `postgres` system user's ids (Debian's PostgreSQL and PgBouncer packages both create it). */
async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8');
  const line = passwd.split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('pgbouncer refuses to run as root and there is no postgres user to run it as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
