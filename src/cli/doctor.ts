/**
 * `mediaflow doctor`: what this machine and configuration give the service, one row per check, each
 * with what to do when it is not ok. Reads only: it generates no key and runs no migration (the fs
 * store's folder is created, as a start would). No row ever shows a password, a key or a token: URLs
 * are shown as host:port, keys by id.
 */
import { execFile } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type Config } from '../config/index.js';
import { migrationStatus } from '../db/migration-status.js';
import {
  address,
  configuredTools,
  findExecutable,
  installCommand,
  isUnreachable,
  postgresRemedy,
  reason,
  redisRemedy,
} from '../preflight.js';
import { connectOnce } from '../queue/connection.js';
import { createStore, fsStoreRoot } from '../storage/create-store.js';
import { DEV_KEY_FILE } from '../storage/keyring.js';
import { parseMasterKeys } from '../storage/sealed-format.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface DoctorRow {
  check: string;
  status: CheckStatus;
  detail: string;
  /** What to run or change; absent when the row is ok. */
  fix?: string;
}

const row = (check: string, status: CheckStatus, detail: string, fix?: string): DoctorRow => (fix ? { check, status, detail, fix } : { check, status, detail });

/** Runs the checks, prints them (a table, or a JSON array with `json`), and returns the exit code: 1 when a row failed. */
export async function doctor(opts: { json: boolean }, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const rows = await runChecks(env);
  process.stdout.write(opts.json ? `${JSON.stringify(rows)}\n` : formatRows(rows));
  return rows.some((r) => r.status === 'fail') ? 1 : 0;
}

export async function runChecks(env: NodeJS.ProcessEnv): Promise<DoctorRow[]> {
  let config: Config | undefined;
  let configRow: DoctorRow;
  try {
    config = loadConfig(env);
    configRow = row('configuration', 'ok', `NODE_ENV=${config.NODE_ENV}`);
  } catch (err) {
    configRow = row('configuration', 'fail', (err as Error).message, 'fix the variable it names');
  }
  const tools = configuredTools(config ?? { FFMPEG_PATH: env.FFMPEG_PATH, FFPROBE_PATH: env.FFPROBE_PATH, HEIF_CONVERT_PATH: env.HEIF_CONVERT_PATH });
  const groups = await Promise.all([
    checkNode().then((r) => [r]),
    Promise.resolve([configRow]),
    checkTool('ffmpeg', tools.ffmpeg, 'FFMPEG_PATH', 'fail').then((r) => [r]),
    checkTool('ffprobe', tools.ffprobe, 'FFPROBE_PATH', 'fail').then((r) => [r]),
    checkTool('heif-convert', tools.heifConvert, 'HEIF_CONVERT_PATH', 'warn').then((r) => [r]),
    ...(config ? [checkRedis(config), checkPostgres(config), checkStorage(config).then((r) => [r]), checkKeys(config).then((r) => [r])] : []),
  ]);
  return groups.flat();
}

/** package.json at the package root, from the sources (src/cli) or a build (dist/src/cli). */
function packageJsonPath(): string | undefined {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return [path.resolve(here, '../../package.json'), path.resolve(here, '../../../package.json')].find((p) => existsSync(p));
}

async function checkNode(): Promise<DoctorRow> {
  const file = packageJsonPath();
  const wanted = file ? ((JSON.parse(await readFile(file, 'utf8')) as { engines?: { node?: string } }).engines?.node ?? '') : '';
  const have = process.versions.node;
  const ok = nodeSatisfies(wanted, have);
  if (ok === null) return row('node', 'ok', `v${have}`);
  return ok ? row('node', 'ok', `v${have} (needs ${wanted})`) : row('node', 'fail', `v${have}, needs ${wanted}`, `install a supported Node (${wanted}), e.g. \`nvm install 24\``);
}

/**
 * Whether `version` (e.g. `24.21.0`) is in `range` as package.json's engines writes it: alternatives
 * joined by `||`, each `>=X.Y.Z` or `^X.Y.Z` (same major, at least X.Y.Z). Null for any other form.
 */
export function nodeSatisfies(range: string, version: string): boolean | null {
  const got = version.replace(/^v/, '').split('.').map(Number);
  const cmp = (need: number[]) => need.map((n, i) => (got[i] ?? 0) - n).find((d) => d !== 0) ?? 0;
  const parts = range.split('||').map((p) => p.trim());
  if (!range.trim() || parts.some((p) => !/^(>=|\^)\s*\d+(\.\d+){0,2}$/.test(p))) return null;
  return parts.some((p) => {
    const m = /^(>=|\^)\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(p)!;
    const need = [Number(m[2]), Number(m[3] ?? 0), Number(m[4] ?? 0)];
    return cmp(need) >= 0 && (m[1] === '>=' || got[0] === need[0]);
  });
}

/** The tool's version line, e.g. `ffmpeg version 5.1.6-0+deb12u1` → `5.1.6-0+deb12u1`. */
function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 5000, maxBuffer: 1 << 20 }, (_err, stdout, stderr) => resolve(`${stdout}\n${stderr}`));
  });
}

async function checkTool(check: string, bin: string, variable: string, whenMissing: CheckStatus): Promise<DoctorRow> {
  const pkg = check === 'heif-convert' ? ['libheif-examples', 'libheif'] : ['ffmpeg', 'ffmpeg'];
  const found = await findExecutable(bin);
  if (!found) {
    const detail = bin.includes('/') ? `${variable}=${bin} is not an executable file` : 'not found on PATH';
    const why = check === 'heif-convert' ? ' (without it HEIC photos are refused with 415)' : ' (the worker refuses to start without it)';
    return row(check, whenMissing, `${detail}${why}`, `run ${await installCommand(pkg[0]!, pkg[1]!)}, or set ${variable}`);
  }
  // heif-convert has no --version; it prints its libheif version with its usage.
  const out = await run(found, check === 'heif-convert' ? ['--version'] : ['-version']);
  const version = /version:?\s+(\S+)/.exec(out)?.[1];
  return row(check, 'ok', `${version ?? 'version unknown'} (${found})`);
}

async function checkRedis(config: Config): Promise<DoctorRow[]> {
  const at = address(config.REDIS_URL, 6379);
  let redis;
  try {
    redis = await connectOnce(config.REDIS_URL, 3000);
  } catch (err) {
    if (!isUnreachable(err)) return [row('redis', 'fail', `${at} refused the connection: ${reason(err)}`, 'check the credentials in REDIS_URL')];
    return [row('redis', 'fail', `not reachable at ${at} (${reason(err)})`, await redisRemedy(config.REDIS_URL))];
  }
  try {
    const info = String(await redis.info('server'));
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'version unknown';
    const rows = [row('redis', 'ok', `${version} at ${at}`)];
    let settings: Record<string, string>;
    try {
      const pairs = [
        ...((await redis.config('GET', 'maxmemory-policy')) as string[]),
        ...((await redis.config('GET', 'appendonly')) as string[]),
        ...((await redis.config('GET', 'appendfsync')) as string[]),
        ...((await redis.config('GET', 'save')) as string[]),
      ];
      settings = {};
      for (let i = 0; i + 1 < pairs.length; i += 2) settings[pairs[i]!] = pairs[i + 1]!;
    } catch {
      // Managed Redis often disables CONFIG: advice only, not a failure.
      const why = 'CONFIG is not allowed on this server (a managed Redis?)';
      return [...rows, row('redis eviction', 'warn', why, "check that the provider's maxmemory-policy is noeviction"), row('redis persistence', 'warn', why, "check that the provider's persistence (AOF) is on")];
    }
    const policy = settings['maxmemory-policy'] ?? 'unknown';
    rows.push(
      policy === 'noeviction'
        ? row('redis eviction', 'ok', 'maxmemory-policy noeviction')
        : row('redis eviction', 'warn', `maxmemory-policy ${policy}: queued jobs can be evicted`, 'run `redis-cli config set maxmemory-policy noeviction` and put it in redis.conf'),
    );
    const aofFix = 'run `redis-cli config set appendonly yes` and put `appendonly yes` in redis.conf';
    if (settings.appendonly === 'yes') rows.push(row('redis persistence', 'ok', `AOF (appendfsync ${settings.appendfsync ?? '?'})`));
    else if (settings.save) rows.push(row('redis persistence', 'warn', `RDB snapshots only (save ${settings.save}): a crash loses the jobs queued since the last one`, aofFix));
    else rows.push(row('redis persistence', 'warn', 'off: a Redis restart loses queued jobs (the reconciler re-enqueues them from PostgreSQL)', aofFix));
    return rows;
  } finally {
    redis.disconnect();
  }
}

async function checkPostgres(config: Config): Promise<DoctorRow[]> {
  const at = address(config.DATABASE_URL, 5432);
  let status;
  try {
    status = await migrationStatus(config.DATABASE_URL);
  } catch (err) {
    if (!isUnreachable(err)) return [row('postgres', 'fail', `${at} refused the connection: ${reason(err)}`, 'check the user, password and database in DATABASE_URL')];
    return [row('postgres', 'fail', `not reachable at ${at} (${reason(err)})`, await postgresRemedy(config.DATABASE_URL))];
  }
  const db = decodeURIComponent(new URL(config.DATABASE_URL).pathname.replace(/^\//, ''));
  const rows = [row('postgres', 'ok', `${status.serverVersion} at ${at}`)];
  if (status.unknown.length) {
    rows.push(row('migrations', 'fail', `applied to ${db} but not in migrations/: ${status.unknown.join(', ')}`, 'run the mediaflow version this database was migrated by'));
  } else if (!status.databaseExists) {
    rows.push(row('migrations', 'warn', `database ${db} does not exist yet`, '`npm start` (or `mediaflow migrate`) creates it and applies the migrations'));
  } else if (status.pending.length) {
    rows.push(row('migrations', 'warn', `${status.pending.length} pending in ${db}: ${status.pending.join(', ')}`, '`npm start` (or `mediaflow migrate`) applies them'));
  } else {
    rows.push(row('migrations', 'ok', `all applied in ${db}`));
  }
  return rows;
}

/** The fs store's folder is writable, or would be created: checked without creating it. */
async function checkFsStore(root: string): Promise<DoctorRow> {
  let dir = root;
  while (!(await stat(dir).catch(() => null))) {
    if (path.dirname(dir) === dir) break;
    dir = path.dirname(dir);
  }
  const fix = 'make DATA_DIR writable by this user, or point DATA_DIR elsewhere';
  const st = await stat(dir).catch(() => null);
  if (!st?.isDirectory()) return row('storage', 'fail', `fs ${root}: ${dir} is not a directory`, fix);
  try {
    await access(dir, constants.W_OK);
  } catch {
    return row('storage', 'fail', `fs ${root}: ${dir} is not writable by this user`, fix);
  }
  return row('storage', 'ok', dir === root ? `fs ${root} writable` : `fs ${root} (created at start; ${dir} is writable)`);
}

/** The s3 bucket answers HeadBucket with these credentials, within a few seconds. */
async function checkStorage(config: Config): Promise<DoctorRow> {
  if (config.STORAGE_DRIVER === 'fs') return checkFsStore(path.resolve(fsStoreRoot(config.DATA_DIR)));
  const store = createStore({
    driver: 's3',
    dataDir: config.DATA_DIR,
    s3: {
      endpoint: config.S3_ENDPOINT,
      region: config.S3_REGION,
      bucket: config.S3_BUCKET!,
      accessKeyId: config.S3_ACCESS_KEY_ID,
      secretAccessKey: config.S3_SECRET_ACCESS_KEY,
      forcePathStyle: config.S3_FORCE_PATH_STYLE,
    },
  });
  const what = `s3 bucket ${config.S3_BUCKET}${config.S3_ENDPOINT ? ` at ${new URL(config.S3_ENDPOINT).host}` : ''}`;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([store.ping(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000)))]);
    return row('storage', 'ok', `${what} reachable`);
  } catch (err) {
    return row('storage', 'fail', `${what}: ${(err as Error).message}`, 'check S3_ENDPOINT, S3_BUCKET and the S3 credentials');
  } finally {
    clearTimeout(timer);
    await store.close().catch(() => undefined);
  }
}

async function checkKeys(config: Config): Promise<DoctorRow> {
  if (config.MASTER_KEYS) {
    try {
      const ring = parseMasterKeys(config.MASTER_KEYS, config.ACTIVE_KEY_ID ?? '');
      return row('master keys', 'ok', `MASTER_KEYS: ${ring.keys.size} key(s), ${ring.activeKeyId} seals new objects`);
    } catch (err) {
      return row('master keys', 'fail', `MASTER_KEYS: ${(err as Error).message}`, 'set MASTER_KEYS=id:base64-of-32-bytes,… and ACTIVE_KEY_ID');
    }
  }
  const toProduction = 'set MASTER_KEYS and ACTIVE_KEY_ID before production';
  if (config.MASTER_KEY) {
    try {
      parseMasterKeys(`dev:${config.MASTER_KEY}`, 'dev');
      return row('master keys', 'ok', `development key from MASTER_KEY (${toProduction})`);
    } catch (err) {
      return row('master keys', 'fail', `MASTER_KEY: ${(err as Error).message}`, 'set MASTER_KEY to base64 of 32 random bytes (`openssl rand -base64 32`), or unset it');
    }
  }
  const file = path.resolve(config.DATA_DIR, DEV_KEY_FILE);
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return row('master keys', 'ok', `none yet: the first start generates a development key into ${file} (${toProduction})`);
    return row('master keys', 'fail', `${file}: ${(err as Error).message}`, 'make the development key readable by this user');
  }
  try {
    parseMasterKeys(`dev:${text}`, 'dev');
    return row('master keys', 'ok', `development key in ${file}: back it up, media sealed with it is lost without it (${toProduction})`);
  } catch (err) {
    return row('master keys', 'fail', `${file}: ${(err as Error).message}`, 'restore the file from a backup');
  }
}

function formatRows(rows: DoctorRow[]): string {
  const head: DoctorRow = { check: 'check', status: 'status' as CheckStatus, detail: 'detail', fix: 'fix' };
  const all = [head, ...rows];
  const w = (k: 'check' | 'status' | 'detail') => Math.max(...all.map((r) => r[k].length));
  const [wc, ws] = [w('check'), w('status')];
  const wd = Math.min(w('detail'), 70);
  return all.map((r) => `${r.check.padEnd(wc)}  ${r.status.padEnd(ws)}  ${r.fix ? `${r.detail.padEnd(wd)}  ${r.fix}` : r.detail}`.trimEnd()).join('\n') + '\n';
}
