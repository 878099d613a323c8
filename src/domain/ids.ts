import { randomBytes, randomUUID, createHash } from 'node:crypto';

const B32 = 'abcdefghijkmnpqrstuvwxyz23456789';

function token(bytes: number): string {
  const buf = randomBytes(bytes);
  let out = '';
  for (const b of buf) out += B32[b & 31];
  return out;
}

/** Media ids double as BullMQ job ids: no `:`, never all digits. */
export const newMediaId = (): string => `med_${token(20)}`;
export const newAppId = (): string => `app_${token(16)}`;
export const newDeviceId = (): string => `dev_${token(16)}`;
export const newFolderId = (): string => `fld_${token(16)}`;
export const newEventId = (): string => `evt_${token(20)}`;

/** Ids the client may choose (devices): a safe alphabet, so they can stand inside a media path. */
export const CLIENT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

/**
 * The `media_path` a webhook carries: `media/<deviceId or appId>/<uuid>-<HEX>.bin`. It is a name the
 * database looks up, never a file path: storage keys are built separately by `storageKey`.
 */
export function newMediaPath(owner: string): string {
  if (!CLIENT_ID_PATTERN.test(owner)) throw new Error('media path owner has unsafe characters');
  return `media/${owner}/${randomUUID()}-${randomBytes(8).toString('hex').toUpperCase()}.bin`;
}

export const MEDIA_PATH_PATTERN = /^media\/[A-Za-z0-9][A-Za-z0-9_-]{0,63}\/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-[0-9A-F]{16}\.bin$/;

/** Storage keys: only ever built from our own ids. */
export const storageKey = (appId: string, mediaId: string): string => `objects/${appId}/${mediaId}.bin`;
export const variantKey = (appId: string, mediaId: string, variant: string): string => `objects/${appId}/${mediaId}.${variant}.bin`;
export const stagingKey = (appId: string, mediaId: string): string => `staging/${appId}/${mediaId}.bin`;

/** API keys: `mf_<8 char prefix>_<secret>`; stored as SHA-256 with the visible prefix. */
export function newApiKey(): { key: string; prefix: string; hash: string } {
  const prefix = `mf_${token(8)}`;
  const key = `${prefix}_${randomBytes(24).toString('base64url')}`;
  return { key, prefix, hash: sha256Hex(key) };
}

export function newSecret(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

export function sha256Hex(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex');
}
