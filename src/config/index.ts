import { isIP } from 'node:net';
import { z } from 'zod';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const int = (def: number, min = 0) => z.coerce.number().int().min(min).default(def);

/** Operator credentials: long enough that guessing (rate-limited too) is hopeless. */
const operatorToken = z.string().min(32, 'must be at least 32 characters (e.g. `openssl rand -hex 24`)').optional();

/** `redis+cluster://[user:pass@]host:port,host:port…`; src/queue/connection.ts parses it (this schema imports nothing of ours). */
const CLUSTER_URL = /^rediss?\+cluster:\/\/(?:[^@/?#]*@)?(?:\[[0-9A-Fa-f:.]+\]|[^:[\]/?#@,]+)(?::\d{1,5})?(?:,(?:\[[0-9A-Fa-f:.]+\]|[^:[\]/?#@,]+)(?::\d{1,5})?)*\/?$/i;

/** A Redis Cluster hashes only a key's first non-empty `{…}`: the prefix must hold one so every key shares a slot. */
function hasHashTag(prefix: string): boolean {
  const open = prefix.indexOf('{');
  return open >= 0 && prefix.indexOf('}', open + 1) > open + 1;
}

const PROXY_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);
function isProxyEntry(e: string): boolean {
  if (PROXY_RANGES.has(e) || isIP(e)) return true;
  const m = /^([^/]+)\/(\d{1,3})$/.exec(e);
  if (!m) return false;
  const family = isIP(m[1]!);
  return family !== 0 && Number(m[2]) <= (family === 4 ? 32 : 128);
}

/** The one schema of the environment. Defaults let `npm start` serve on a machine with local Redis and PostgreSQL. */
export const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: int(8080).pipe(z.number().max(65535)),
  HOST: z.string().default('0.0.0.0'),
  PUBLIC_BASE_URL: z.url().optional(),
  /** Unset: `info` for the service, `warn` for one-off CLI commands (their stdout is the result). */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  /**
   * One server (`redis://`, `rediss://`), or a Redis Cluster as a seed list
   * (`redis+cluster://h1:7000,h2:7001`, `rediss+cluster://` for TLS): the rest of the nodes are learnt from the seeds.
   */
  REDIS_URL: z
    .string()
    .refine((v) => (CLUSTER_URL.test(v) ? true : URL.canParse(v) && !/^rediss?\+/i.test(v)), 'a redis:// URL, or redis+cluster://host1:port1,host2:port2 for a Redis Cluster')
    .default('redis://127.0.0.1:6379'),
  DATABASE_URL: z.url().default('postgres://postgres@127.0.0.1:5432/mediaflow'),
  /**
   * A direct (session-mode) PostgreSQL URL for migrations and `mediaflow orphans`, which hold a session
   * (an advisory lock, a temporary table); unset, DATABASE_URL is used. Set it when DATABASE_URL points
   * at PgBouncer in transaction mode.
   */
  DATABASE_MIGRATION_URL: z.url().optional(),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_{}-]+$/, 'letters, digits, _ - { } only')
    .default('mediaflow'),
  STORAGE_DRIVER: z.enum(['fs', 's3']).default('fs'),
  DATA_DIR: z.string().min(1).default('./data'),
  S3_ENDPOINT: z.url().optional(),
  S3_REGION: z.string().default('us-east-1'),
  S3_BUCKET: z.string().optional(),
  S3_ACCESS_KEY_ID: z.string().optional(),
  S3_SECRET_ACCESS_KEY: z.string().optional(),
  S3_FORCE_PATH_STYLE: bool.default(false),
  /** `id1:base64key,id2:base64key`; each key 32 bytes. */
  MASTER_KEYS: z.string().optional(),
  ACTIVE_KEY_ID: z.string().optional(),
  /** Development only: one base64 key; generated into DATA_DIR on first start when nothing is set. */
  MASTER_KEY: z.string().optional(),
  DEFAULT_TTL_SECONDS: int(30 * 24 * 3600, 1),
  MAX_RETENTION_SECONDS: int(90 * 24 * 3600, 1),
  /**
   * A scheduled send's reference stays live this long after its `sendAt` (a late send may still fetch the
   * media), and `extend` keeps the media until `sendAt` plus this. A day covers a send queue drained late
   * or a resend the next morning without keeping media much longer than the campaign needs.
   */
  REFERENCE_GRACE_SECONDS: int(24 * 3600, 0),
  /** How long before `expiresAt` the sweeper sends `media.expiring` for media a later send needs: a day leaves a working day to extend or re-upload. */
  EXPIRY_NOTICE_SECONDS: int(24 * 3600, 1),
  SWEEP_CRON: z.string().default('* * * * *'),
  /** Media per sweep batch: 1000 beat 500 in `npm run bench -- sweep` (fewer statements per media; two DeleteObjects in flight on s3). */
  SWEEP_BATCH_SIZE: int(1000, 1),
  /**
   * A sweep batch's lease (a row, renewed every third of this while the batch runs): rows a killed
   * sweeper left `deleting` are taken over once it lapses. 30 s, like JOB_LOCK_SECONDS: the next
   * minute's sweep finishes them, and a batch (74–109 ms of transaction in `npm run bench`) renews it with room to spare.
   */
  SWEEP_LEASE_SECONDS: int(30, 3),
  HARD_CAP_BYTES: int(100_000_000, 1),
  /** Media jobs in parallel per worker process; jobs wait on I/O often enough that 4 beats 2 on 2 cores. */
  WORKER_CONCURRENCY: int(4, 1),
  JOB_ATTEMPTS: int(5, 1),
  WEBHOOK_ATTEMPTS: int(8, 1),
  /** First retry delay of a webhook delivery; each next one doubles (with jitter). */
  WEBHOOK_BACKOFF_MS: int(5000, 1),
  /** Webhook deliveries in parallel per worker process: each mostly waits on a receiver. */
  WEBHOOK_CONCURRENCY: int(10, 1),
  JOB_TIMEOUT_SECONDS: int(600, 1),
  /** BullMQ lock; a killed worker's job is taken over after about this long. */
  JOB_LOCK_SECONDS: int(30, 1),
  FFMPEG_PATH: z.string().optional(),
  FFPROBE_PATH: z.string().optional(),
  /** HEIC/HEIF decoder (Debian's libheif-examples); without it HEIC uploads are refused with 415. */
  HEIF_CONVERT_PATH: z.string().optional(),
  ALLOW_PRIVATE_URLS: bool.default(false),
  /** Bounds a URL source's whole fetch (retries and body included); past it the media fails, never retried. */
  URL_FETCH_DEADLINE_SECONDS: int(60, 1),
  /** A URL body that moves under 1 KiB/s over this many seconds is cut, and the media fails. */
  URL_STALL_SECONDS: int(15, 1),
  /** Producers' `file` sources must lie under this directory when set (resolved, symlinks followed). */
  FILE_SOURCE_ROOT: z.string().optional(),
  FILE_URL_TTL_SECONDS: int(3600, 1),
  UPLOAD_SLOT_TTL_SECONDS: int(1800, 1),
  RECONCILE_AFTER_SECONDS: int(30, 1),
  /** Enables /admin/queues, read-only; at least 32 characters (e.g. `openssl rand -hex 24`). */
  ADMIN_TOKEN: operatorToken,
  /** Makes /admin/queues read-write, for requests that carry this token (reading takes either). */
  ADMIN_WRITE_TOKEN: operatorToken,
  /** Guards GET /metrics (API and METRICS_PORT) when set; /metrics is open without it. */
  METRICS_TOKEN: operatorToken,
  /** Proxies whose X-Forwarded-* headers are believed: IPs, CIDRs, or loopback/linklocal/uniquelocal; none by default. */
  TRUST_PROXY: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const list = (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
      const bad = list.find((e) => !isProxyEntry(e));
      if (bad !== undefined) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(bad)} is not an IP address, a CIDR, or loopback/linklocal/uniquelocal` });
      return list;
    }),
  /** A request's headers must all arrive within this. */
  HEADERS_TIMEOUT_SECONDS: int(15, 1),
  /** A request body slower than this, averaged over BODY_RATE_WINDOW_SECONDS of waiting on the client, is cut; 0 turns it off. */
  BODY_MIN_BYTES_PER_SECOND: int(1024),
  BODY_RATE_WINDOW_SECONDS: int(30, 1),
  /** Open sockets one client address may hold on one API process (trusted proxies exempt); 0 turns it off. */
  MAX_CONNECTIONS_PER_IP: int(64),
  METRICS_PORT: int(0).pipe(z.number().max(65535)),
  RATE_LIMIT_PER_MINUTE: int(6000, 1),
  /** Uploads (POST /v1/media) one API key may have in flight at once, across all API instances. */
  UPLOAD_CONCURRENCY_PER_KEY: int(16, 1),
  SHUTDOWN_TIMEOUT_SECONDS: int(25, 1),
  /**
   * Signs the web console's session tokens (JWT, HS256); at least 32 characters. Required in production;
   * elsewhere, unset, a key derived from the master key is used, so development needs no setting.
   */
  CONSOLE_SESSION_SECRET: operatorToken,
  /** A console session token's life: short, so a stolen cookie is short-lived; renewed while the console is in use. */
  CONSOLE_SESSION_TTL_SECONDS: int(900, 10),
  /** However much it is used, a console session ends this long after sign-in (a working day). */
  CONSOLE_SESSION_MAX_SECONDS: int(12 * 3600, 60),
});

export type Env = z.infer<typeof envSchema>;
export type Config = Env;

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Parses the environment once; a bad value is one clear line naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const cleaned: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && v !== '') cleaned[k] = v;
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? 'environment');
    const value = cleaned[name];
    throw new ConfigError(
      `invalid configuration: ${name}${value === undefined ? '' : `=${JSON.stringify(redactIfSecret(name, value))}`}: ${issue.message}`,
    );
  }
  const cfg = parsed.data;
  if (cfg.STORAGE_DRIVER === 's3' && !cfg.S3_BUCKET) {
    throw new ConfigError('invalid configuration: S3_BUCKET is required when STORAGE_DRIVER=s3');
  }
  if (CLUSTER_URL.test(cfg.REDIS_URL) && !hasHashTag(cfg.QUEUE_PREFIX)) {
    throw new ConfigError(
      `invalid configuration: QUEUE_PREFIX "${cfg.QUEUE_PREFIX}" has no hash tag: on a Redis Cluster every key must share one slot, so use a prefix like "{${cfg.QUEUE_PREFIX.replace(/[{}]/g, '') || 'mediaflow'}}"`,
    );
  }
  if (cfg.MASTER_KEYS && !cfg.ACTIVE_KEY_ID) {
    throw new ConfigError('invalid configuration: ACTIVE_KEY_ID is required when MASTER_KEYS is set');
  }
  if (cfg.DEFAULT_TTL_SECONDS > cfg.MAX_RETENTION_SECONDS) {
    throw new ConfigError('invalid configuration: DEFAULT_TTL_SECONDS must not exceed MAX_RETENTION_SECONDS');
  }
  if (cfg.ADMIN_WRITE_TOKEN && cfg.ADMIN_WRITE_TOKEN === cfg.ADMIN_TOKEN) {
    throw new ConfigError('invalid configuration: ADMIN_WRITE_TOKEN must differ from ADMIN_TOKEN (reading must not grant writing)');
  }
  if (cfg.NODE_ENV === 'production') checkProduction(cfg);
  return cfg;
}

/** Development conveniences that must not reach production: URLs from request headers, a key beside the data, private URLs. */
function checkProduction(cfg: Config): void {
  if (!cfg.PUBLIC_BASE_URL) {
    throw new ConfigError('invalid configuration: PUBLIC_BASE_URL is required when NODE_ENV=production (temporary and upload URLs must not come from request headers)');
  }
  if (cfg.MASTER_KEY) {
    throw new ConfigError('invalid configuration: MASTER_KEY is a development key and is refused when NODE_ENV=production; set MASTER_KEYS and ACTIVE_KEY_ID');
  }
  if (!cfg.MASTER_KEYS) {
    throw new ConfigError('invalid configuration: MASTER_KEYS is required when NODE_ENV=production (a development key generated into DATA_DIR is refused)');
  }
  if (!cfg.CONSOLE_SESSION_SECRET) {
    throw new ConfigError('invalid configuration: CONSOLE_SESSION_SECRET is required when NODE_ENV=production (at least 32 characters, e.g. `openssl rand -hex 24`; console sessions must not be signed with a key derived in development)');
  }
  if (cfg.ALLOW_PRIVATE_URLS) {
    throw new ConfigError('invalid configuration: ALLOW_PRIVATE_URLS is for tests and is refused when NODE_ENV=production (URL ingest and webhooks would reach internal addresses)');
  }
}

function redactIfSecret(name: string, value: string): string {
  // A URL's password (REDIS_URL, DATABASE_URL…) stays out of the message.
  if (/_URL$/.test(name)) return value.replace(/\/\/[^@/?#]*@/, '//[redacted]@');
  return /KEY|SECRET|TOKEN|PASSWORD/.test(name) ? '[redacted]' : value;
}
