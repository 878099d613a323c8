/**
 * What a role needs from the machine before it starts, checked once at start-up (`runRole`) and by
 * `mediaflow doctor`: Redis and PostgreSQL answering, and for the roles that process media, ffmpeg
 * and ffprobe. A start that lacks one stops at once with one line per missing piece saying how to get
 * it, instead of retrying a refused connection forever or failing every media later. Once running, an
 * outage is the service's to ride out (503s, the reconciler), not a reason to exit.
 */
import { constants } from 'node:fs';
import { access, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from './config/index.js';
import { probeDatabase } from './db/pool.js';
import { connectOnce, isClusterUrl, parseClusterUrl } from './queue/connection.js';

/** A start that cannot go on: each line names one missing piece and how to get it. */
export class PrerequisiteError extends Error {
  constructor(readonly lines: readonly string[]) {
    super(lines.join('\n'));
    this.name = 'PrerequisiteError';
  }

  get code(): string {
    return 'UNAVAILABLE';
  }
}

/** EX_UNAVAILABLE (sysexits.h): a service or program the start needs is not there. */
export const EXIT_UNAVAILABLE = 69;

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

interface Endpoint {
  host: string;
  port: number;
  local: boolean;
  /** The port the distribution's service listens on, the only one scripts/setup.sh starts. */
  defaultPort: boolean;
}

function endpoint(url: string, defaultPort: number): Endpoint {
  if (isClusterUrl(url)) {
    // A cluster is many servers: what to start is not one command, and no local default applies.
    const seed = parseClusterUrl(url).nodes[0]!;
    return { host: seed.host, port: seed.port, local: false, defaultPort: false };
  }
  const u = new URL(url);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  const port = u.port ? Number(u.port) : defaultPort;
  return { host, port, local: LOCAL_HOSTS.has(host), defaultPort: port === defaultPort };
}

const where = (e: Endpoint) => (e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`);

/** `host:port` of a service URL, never its credentials. */
export function address(url: string, defaultPort: number): string {
  if (isClusterUrl(url)) return `the cluster seeds ${parseClusterUrl(url).nodes.map((n) => where({ ...n, local: false, defaultPort: false })).join(',')}`;
  return where(endpoint(url, defaultPort));
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE', 'EADDRNOTAVAIL']);

function errorCode(err: unknown): string | undefined {
  const e = err as { code?: unknown; errors?: { code?: unknown }[] } | undefined;
  const code = e?.code ?? e?.errors?.[0]?.code;
  return typeof code === 'string' ? code : undefined;
}

/** True when the error says nothing answered (as opposed to a server that answered "no"). */
export function isUnreachable(err: unknown): boolean {
  const code = errorCode(err);
  if (code) return NETWORK_CODES.has(code);
  return /timeout|timed out|terminated unexpectedly/i.test((err as Error | undefined)?.message ?? '');
}

/** Why a connection failed, in words: what a person reads in a start-up line or a doctor row. */
export function reason(err: unknown): string {
  switch (errorCode(err)) {
    case 'ECONNREFUSED':
      return 'nothing listens there';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    case 'ETIMEDOUT':
      return 'no answer in time';
    default:
      return isUnreachable(err) ? 'no answer in time' : ((err as Error | undefined)?.message ?? String(err)).split('\n')[0]!;
  }
}

/** The command that installs Debian package `deb` or Homebrew formula `brew` on this machine. */
export async function installCommand(deb: string, brew: string): Promise<string> {
  if (process.platform === 'darwin') return `\`brew install ${brew}\``;
  const sudo = process.getuid?.() === 0 ? '' : 'sudo ';
  if (await findExecutable('apt-get')) return `\`${sudo}apt-get install -y ${deb}\``;
  return `your package manager (Debian: \`apt-get install -y ${deb}\`)`;
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** Where `bin` runs from: itself when it is a path, else the first match on PATH; null when nowhere. */
export async function findExecutable(bin: string, envPath = process.env.PATH ?? ''): Promise<string | null> {
  if (bin.includes('/')) return (await isExecutable(bin)) ? path.resolve(bin) : null;
  for (const dir of envPath.split(path.delimiter).filter(Boolean)) {
    const file = path.join(dir, bin);
    if (await isExecutable(file)) return file;
  }
  return null;
}

/** How to get a Redis at REDIS_URL on this machine, as a command where there is one. */
export async function redisRemedy(url: string): Promise<string> {
  const e = endpoint(url, 6379);
  if (!e.local) return 'check REDIS_URL and that the server is up';
  if (!e.defaultPort) return `start a Redis on port ${e.port}, or unset REDIS_URL to use the one on 127.0.0.1:6379`;
  if (await findExecutable('redis-server')) return 'it is installed but stopped: run `redis-server --daemonize yes`';
  const docker = '`docker run -d -p 127.0.0.1:6379:6379 redis:7.4-alpine`';
  if (process.platform === 'darwin') return `run \`brew install redis && brew services start redis\` or ${docker}`;
  return `run ${await installCommand('redis-server', 'redis')} and \`npm start\` again, or ${docker}`;
}

/** How to get a PostgreSQL at DATABASE_URL on this machine, as a command where there is one. */
export async function postgresRemedy(url: string): Promise<string> {
  const e = endpoint(url, 5432);
  if (!e.local) return 'check DATABASE_URL and that the server is up';
  if (!e.defaultPort) return `start a PostgreSQL on port ${e.port}, or unset DATABASE_URL to use the one on 127.0.0.1:5432`;
  const clusters = await readdir('/etc/postgresql').catch(() => [] as string[]);
  if (clusters.length > 0 && (await findExecutable('pg_ctlcluster'))) {
    return `it is installed but stopped: run \`sudo pg_ctlcluster ${clusters.sort()[0]} main start\``;
  }
  const docker = '`docker run -d -p 127.0.0.1:5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16-alpine`';
  if (process.platform === 'darwin') return `run \`brew install postgresql@16 && brew services start postgresql@16\` or ${docker}`;
  return `run ${await installCommand('postgresql', 'postgresql@16')} and \`npm start\` again, or ${docker}`;
}

/** One line for a Redis that did not answer at start, or answered with an error. */
export async function redisProblem(url: string, err: unknown): Promise<string> {
  const e = endpoint(url, 6379);
  const at = isClusterUrl(url) ? address(url, 6379) : where(e);
  if (!isUnreachable(err)) return `Redis at ${at} refused the connection (${reason(err)}): check the credentials in REDIS_URL`;
  return `Redis is not reachable at ${at} (${reason(err)}): ${await redisRemedy(url)}`;
}

/** One line for a PostgreSQL that did not answer at start, or answered with an error. */
export async function postgresProblem(url: string, err: unknown): Promise<string> {
  const e = endpoint(url, 5432);
  if (!isUnreachable(err)) return `PostgreSQL at ${where(e)} refused the connection (${reason(err)}): check the user, password and database in DATABASE_URL`;
  return `PostgreSQL is not reachable at ${where(e)} (${reason(err)}): ${await postgresRemedy(url)}`;
}

export interface MediaTools {
  ffmpeg: string;
  ffprobe: string;
  heifConvert: string;
}

/** The media tools as configured: FFMPEG_PATH etc. when set, else the names looked up on PATH. */
export function configuredTools(config: Pick<Config, 'FFMPEG_PATH' | 'FFPROBE_PATH' | 'HEIF_CONVERT_PATH'>): MediaTools {
  const pick = (v: string | undefined, name: string) => (v && v.trim() !== '' ? v : name);
  return { ffmpeg: pick(config.FFMPEG_PATH, 'ffmpeg'), ffprobe: pick(config.FFPROBE_PATH, 'ffprobe'), heifConvert: pick(config.HEIF_CONVERT_PATH, 'heif-convert') };
}

/** One line for ffmpeg/ffprobe missing, or null when both run. */
export async function ffmpegProblem(tools: MediaTools): Promise<string | null> {
  const [ffmpeg, ffprobe] = await Promise.all([findExecutable(tools.ffmpeg), findExecutable(tools.ffprobe)]);
  if (ffmpeg && ffprobe) return null;
  const named = [!ffmpeg && tools.ffmpeg.includes('/') && `FFMPEG_PATH=${tools.ffmpeg}`, !ffprobe && tools.ffprobe.includes('/') && `FFPROBE_PATH=${tools.ffprobe}`].filter(Boolean);
  if (named.length) return `${named.join(' and ')} ${named.length > 1 ? 'are not executable files' : 'is not an executable file'}: point it at the tool, or unset it to use the one on PATH`;
  const which = [!ffmpeg && 'ffmpeg', !ffprobe && 'ffprobe'].filter(Boolean).join(' and ');
  return `${which} not found on PATH (audio and video need them): run ${await installCommand('ffmpeg', 'ffmpeg')}, or set FFMPEG_PATH and FFPROBE_PATH; \`--role api\` runs without them`;
}

/** A warning for heif-convert missing (HEIC photos are then refused with 415), or null. */
export async function heifConvertProblem(tools: MediaTools): Promise<string | null> {
  if (await findExecutable(tools.heifConvert)) return null;
  return `heif-convert not found (HEIC photos are refused with 415 without it): run ${await installCommand('libheif-examples', 'libheif')}, or set HEIF_CONVERT_PATH`;
}

/**
 * Checks, in parallel and within a few seconds, what the role needs; throws a `PrerequisiteError`
 * with one line per missing piece. Returns warnings that do not stop the start.
 */
export async function checkPrerequisites(config: Config, opts: { mediaTools: boolean }): Promise<string[]> {
  const tools = configuredTools(config);
  const [redis, postgres, ffmpeg, heif] = await Promise.all([
    connectOnce(config.REDIS_URL).then(
      (r) => (r.disconnect(), null),
      (err: unknown) => redisProblem(config.REDIS_URL, err),
    ),
    probeDatabase(config.DATABASE_URL).then(
      () => null,
      (err: unknown) => postgresProblem(config.DATABASE_URL, err),
    ),
    opts.mediaTools ? ffmpegProblem(tools) : null,
    opts.mediaTools ? heifConvertProblem(tools) : null,
  ]);
  const lines = [redis, postgres, ffmpeg].filter((l): l is string => l !== null);
  if (lines.length) throw new PrerequisiteError(lines);
  return heif ? [heif] : [];
}
