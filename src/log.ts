import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths redacted wherever they appear: no secrets or keys in any log line. */
const REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-api-key"]',
  'authorization',
  'apiKey',
  'api_key',
  'webhookSecret',
  'secret',
  'token',
  'password',
  '*.apiKey',
  '*.api_key',
  '*.webhookSecret',
  '*.secret',
  '*.token',
  '*.password',
];

/**
 * Query (or fragment) parameters whose name says credential: ours (`api_key`, `token`), OAuth's
 * (`access_token`, `code`), and pre-signed URLs' (`X-Amz-Signature`, `X-Amz-Credential`, `sig`).
 */
const CREDENTIAL_PARAM_NAME = /key|token|secret|sig|pass|pwd|auth|credential|session|jwt|cookie|^code$/i;
// A parameter inside JSON text: the value stops at a separator, whitespace or the closing quote, and
// consumes JSON escapes whole so a replacement never leaves a dangling backslash.
const PARAM = /([?&;#])([^=&#?;\s"\\/]{1,64})=((?:\\.|[^&#;\s"\\])*)/g;
/** Our API keys (`mf_<8>_<secret>`): the visible prefix is kept, it names the key without opening anything. */
const API_KEY = /(mf_[A-Za-z0-9]{8})_[A-Za-z0-9_-]{8,}/g;
const WEBHOOK_SECRET = /whsec_[A-Za-z0-9_-]{8,}/g;
/** Bearer tokens in paths: the temporary file URL and the upload slot URL. */
const TOKEN_IN_PATH = /(\/v1\/(?:files|uploads)\/)[^/?#\s"\\]+/g;
const AUTH_SCHEME = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi;
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^/\s:@"\\]*):[^/\s@"\\]+@/gi;

/**
 * Scrubs credentials from text: runs on every serialized log line (so messages, error stacks,
 * bindings such as a client-chosen request id, and every serializer's output are covered alike)
 * and keeps JSON text valid. Each pattern is skipped by a substring check when it cannot match.
 */
export function redactSecrets(text: string): string {
  let s = text;
  if (s.includes('=')) s = s.replace(PARAM, (all, sep: string, name: string) => (CREDENTIAL_PARAM_NAME.test(name) ? `${sep}${name}=[redacted]` : all));
  if (s.includes('mf_')) s = s.replace(API_KEY, '$1_[redacted]');
  if (s.includes('whsec_')) s = s.replace(WEBHOOK_SECRET, 'whsec_[redacted]');
  if (s.includes('/v1/')) s = s.replace(TOKEN_IN_PATH, '$1[redacted]');
  if (/bearer|basic/i.test(s)) s = s.replace(AUTH_SCHEME, '$1 [redacted]');
  if (s.includes('@')) s = s.replace(URL_PASSWORD, '$1:[redacted]@');
  return s;
}

/**
 * `level` comes from the configuration (LOG_LEVEL), `info` when unset. `destination: 2` sends log
 * lines to stderr, so a CLI command's stdout carries only its result.
 */
export function createLogger(opts: { level?: string; name?: string; destination?: 1 | 2 } = {}): Logger {
  return pino(
    {
      name: opts.name ?? 'mediaflow',
      level: opts.level ?? 'info',
      redact: { paths: REDACT, censor: '[redacted]' },
      base: { pid: process.pid },
      hooks: { streamWrite: redactSecrets },
    },
    pino.destination({ fd: opts.destination ?? 1, sync: true }),
  );
}

/** A logger that drops everything, for unit tests and tools. */
export const silentLogger: Logger = pino({ level: 'silent' });
