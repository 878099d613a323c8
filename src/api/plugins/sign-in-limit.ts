import { createHash } from 'node:crypto';
import { AppError } from '../../domain/errors.js';
import type { Runtime } from '../../runtime.js';

/** Failed console sign-ins one account may take in a window before it must wait (whoever tries). */
export const SIGN_IN_FAILURES_PER_ACCOUNT = 5;
/** Failed console sign-ins one client address may make in a window, whatever accounts it tries. */
export const SIGN_IN_FAILURES_PER_ADDRESS = 20;
/** The window starts at the first failure; 15 minutes, as OWASP's lockout guidance suggests. */
export const SIGN_IN_WINDOW_MS = 15 * 60_000;

const COUNT = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
`;

export interface SignInLimiter {
  /** Seconds to wait before this account or address may try again; 0 when it may try now. */
  retryAfter(email: string, address: string): Promise<number>;
  recordFailure(email: string, address: string): Promise<void>;
  /** A good sign-in clears the account's count (not the address's: one good account must not reset a guesser). */
  reset(email: string): Promise<void>;
}

/**
 * Guessing console passwords: failures counted per account and per client address, in Redis so
 * every API instance shares the counts. Unlike the operator-token limiter this fails closed: a
 * sign-in while Redis does not answer is refused (503), because the password alone is the guard.
 * Accounts are keyed by a hash of the email, so no address book sits in Redis.
 */
export function signInLimiter(rt: Pick<Runtime, 'redis' | 'config'>): SignInLimiter {
  const base = `${rt.config.QUEUE_PREFIX}:ratelimit:console-sign-in:`;
  const accountKey = (email: string) => `${base}account:${createHash('sha256').update(email).digest('hex')}`;
  const addressKey = (address: string) => `${base}address:${address}`;
  const unavailable = () => new AppError('QUEUE_UNAVAILABLE', 'sign-in is unavailable for a moment (Redis does not answer); retry shortly');
  return {
    async retryAfter(email, address) {
      const a = accountKey(email);
      const b = addressKey(address);
      let res: [Error | null, unknown][] | null;
      try {
        res = await rt.redis.multi().get(a).pttl(a).get(b).pttl(b).exec();
      } catch {
        throw unavailable();
      }
      const n = (i: number) => Number(res?.[i]?.[1] ?? 0);
      const wait = (count: number, ttl: number, max: number) => (count >= max ? Math.max(1, Math.ceil(ttl / 1000)) : 0);
      return Math.max(wait(n(0), n(1), SIGN_IN_FAILURES_PER_ACCOUNT), wait(n(2), n(3), SIGN_IN_FAILURES_PER_ADDRESS));
    },
    async recordFailure(email, address) {
      try {
        await Promise.all([rt.redis.eval(COUNT, 1, accountKey(email), SIGN_IN_WINDOW_MS), rt.redis.eval(COUNT, 1, addressKey(address), SIGN_IN_WINDOW_MS)]);
      } catch {
        throw unavailable();
      }
    },
    async reset(email) {
      await rt.redis.del(accountKey(email)).catch(() => undefined);
    },
  };
}
