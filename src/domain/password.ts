import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Console passwords, hashed with Node's scrypt: `scrypt$<logN>$<r>$<p>$<salt b64url>$<hash b64url>`.
 * The parameters travel with the hash, so raising them later leaves old hashes verifiable.
 * N = 2^15, r = 8 (32 MiB, ~60-100 ms here): OWASP's floor for scrypt is N = 2^17 with r = 8 and
 * p = 1 at 128 MiB; on a 2-core API host that memory per sign-in is too much, so we take the
 * variant with the same cost in work per guess at a quarter of the memory.
 */
const LOG_N = 15;
const R = 8;
const P = 1;
const KEY_LEN = 32;
const MIN_LENGTH = 10;
const MAX_LENGTH = 1024;

function derive(password: string, salt: Buffer, logN: number, r: number, p: number): Promise<Buffer> {
  const N = 2 ** logN;
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, KEY_LEN, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** Why a password is refused, or null when it may be used. */
export function passwordProblem(password: string): string | null {
  if (password.length < MIN_LENGTH) return `the password must be at least ${MIN_LENGTH} characters`;
  if (password.length > MAX_LENGTH) return `the password must be at most ${MAX_LENGTH} characters`;
  return null;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, LOG_N, R, P);
  return `scrypt$${LOG_N}$${R}$${P}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/** A hash of a password nobody knows, checked when the email is unknown so that answer takes as long. */
let dummy: Promise<string> | null = null;
export function dummyHash(): Promise<string> {
  dummy ??= hashPassword(randomBytes(24).toString('base64url'));
  return dummy;
}

/** Constant-time comparison; a malformed stored hash (or an over-long password) is simply no match. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = /^scrypt\$(\d{1,2})\$(\d{1,2})\$(\d{1,2})\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(stored);
  if (!m || password.length > MAX_LENGTH) return false;
  const [logN, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (logN < 10 || logN > 20 || r < 1 || r > 32 || p < 1 || p > 16) return false;
  const want = Buffer.from(m[5]!, 'base64url');
  const got = await derive(password, Buffer.from(m[4]!, 'base64url'), logN, r, p);
  return want.length === got.length && timingSafeEqual(want, got);
}

/** A lower-cased, trimmed email, or null when it does not look like one. */
export function normalizeEmail(email: string): string | null {
  const e = email.trim().toLowerCase();
  return e.length <= 254 && /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(e) ? e : null;
}
