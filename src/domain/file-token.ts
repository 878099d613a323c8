import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Temporary public URLs: `<mediaId>.<expiresAtUnix>.<sig>`, signed with a key derived from the
 * master key. The route still loads the row, so deleting the media kills its URLs at once.
 */
export function signFileToken(secret: Buffer, mediaId: string, expiresAt: Date): string {
  const exp = Math.floor(expiresAt.getTime() / 1000);
  return `${mediaId}.${exp}.${sig(secret, mediaId, exp)}`;
}

export type FileTokenCheck = { ok: true; mediaId: string; expiresAt: Date } | { ok: false; reason: 'malformed' | 'bad_signature' | 'expired'; mediaId?: string };

export function verifyFileToken(secret: Buffer, token: string, now: Date = new Date()): FileTokenCheck {
  // Media ids from producers may be any job-id-safe string (no `.`), not only ours (`med_…`).
  const m = /^([A-Za-z0-9_-]{1,128})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) return { ok: false, reason: 'malformed' };
  const [, mediaId, expStr, given] = m as unknown as [string, string, string, string];
  const exp = Number(expStr);
  const want = Buffer.from(sig(secret, mediaId, exp));
  const got = Buffer.from(given);
  if (want.length !== got.length || !timingSafeEqual(want, got)) return { ok: false, reason: 'bad_signature' };
  if (exp * 1000 <= now.getTime()) return { ok: false, reason: 'expired', mediaId };
  return { ok: true, mediaId, expiresAt: new Date(exp * 1000) };
}

function sig(secret: Buffer, mediaId: string, exp: number): string {
  return createHmac('sha256', secret).update(`file-url:v1:${mediaId}:${exp}`).digest('base64url');
}

/** Derives a purpose-bound secret so the master key itself never signs anything. */
export function deriveSecret(masterKey: Buffer, purpose: string): Buffer {
  return createHmac('sha256', masterKey).update(`mediaflow:${purpose}`).digest();
}
