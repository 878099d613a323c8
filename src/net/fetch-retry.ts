/**
 * Which faults openUrl retries inside its deadline, and how long it waits in between. Only faults of
 * a live host that commonly clear within seconds qualify: a refused or reset connection (a restart,
 * a load balancer shuffling), a temporary resolver failure, and the HTTP answers that mean "not now".
 * A name that does not exist, a host that never answers, and a transfer that stalls are final.
 */

const RETRYABLE_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'EAI_AGAIN']);

/** 5xx that say "overloaded or restarting", and the 4xx that say "try later". 501/505 never change. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 425, 429, 500, 502, 503, 504]);

const BASE_DELAY_MS = 250;
const MAX_DELAY_MS = 4000;

export function isRetryableFault(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && RETRYABLE_CODES.has(code);
}

/** Retry-After as milliseconds from `now` (delta-seconds or an HTTP date); null when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * Exponential backoff with jitter (half fixed, half random) so that many workers retrying one origin
 * do not knock in step; a server's Retry-After is honoured when it asks for longer.
 */
export function retryDelayMs(failedTries: number, retryAfterMs: number | null = null, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.max(0, failedTries - 1));
  const backoff = Math.round(ceiling / 2 + (ceiling / 2) * random());
  return retryAfterMs === null ? backoff : Math.max(backoff, retryAfterMs);
}
