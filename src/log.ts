import { pino, type Logger } from 'pino';

export type { Logger };

/** Paths redacted wherever they appear: no secrets or keys in any log line. */
const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'apiKey',
  'webhookSecret',
  'secret',
  'token',
  'password',
  '*.apiKey',
  '*.secret',
  '*.token',
];

/** `destination: 2` sends log lines to stderr, so a CLI command's stdout carries only its result. */
export function createLogger(opts: { level?: string; name?: string; destination?: 1 | 2 } = {}): Logger {
  return pino(
    {
      name: opts.name ?? 'mediaflow',
      level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
      redact: { paths: REDACT, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    pino.destination({ fd: opts.destination ?? 1, sync: true }),
  );
}

/** A logger that drops everything, for unit tests and tools. */
export const silentLogger: Logger = pino({ level: 'silent' });
