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
export const newConsoleUserId = (): string => `usr_${token(16)}`;
/** A console session's id (the JWT's `sid`): 160 random bits. */
export const newConsoleSessionId = (): string => `ses_${token(32)}`;

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

/**
 * Storage keys: only ever built from our own ids. `storageKey` is what a new row names until a run
 * commits its own key (`runStorageKey`); media stored before runs had keys of their own keep theirs.
 */
export const storageKey = (appId: string, mediaId: string): string => `objects/${appId}/${mediaId}.bin`;
export const variantKey = (appId: string, mediaId: string, variant: string): string => `objects/${appId}/${mediaId}.${variant}.bin`;
export const stagingKey = (appId: string, mediaId: string): string => `staging/${appId}/${mediaId}.bin`;

/**
 * One processing run of a media job: its claim on the row and the name of what it writes. Two runs
 * of one job (a stalled job taken over while its first run still works) never write the same key,
 * so neither can overwrite or delete what the other committed; the row points at the winner's keys.
 */
export const newRunId = (): string => token(16);
export const runStorageKey = (appId: string, mediaId: string, runId: string): string => `objects/${appId}/${mediaId}.${runId}.bin`;
export const runVariantKey = (appId: string, mediaId: string, runId: string, variant: string): string =>
  `objects/${appId}/${mediaId}.${runId}.${variant}.bin`;

/** A resumable (tus) upload's id: it stands in the upload URL, so it is unguessable (130 bits). */
export const newTusUploadId = (): string => `tus_${token(26)}`;
export const TUS_UPLOAD_ID_PATTERN = /^tus_[a-z2-9]{26}$/;

/**
 * Where a resumable upload's sealed parts wait until it completes: `tus/<appId>/<uploadId>/…`. Each
 * part's name says its first segment and carries a random tail, so two writers can never collide.
 */
export const tusUploadPrefix = (appId: string, uploadId: string): string => `tus/${appId}/${uploadId}/`;
export const tusPartKey = (appId: string, uploadId: string, firstSegment: number): string =>
  `${tusUploadPrefix(appId, uploadId)}${String(firstSegment).padStart(10, '0')}-${token(8)}.part`;

/**
 * The drop box where a producer may leave objects for a `storage` source: `inbox/<appId>/…`. It is
 * the only part of the store a job may name, and only its own app's part of it; every other key
 * (another app's inbox, `objects/`, `staging/` of another media, anything else) is refused.
 */
export const inboxPrefix = (appId: string): string => `inbox/${appId}/`;

/** Segments of safe characters, no empty, `.` or `..` segment, at most 512 characters in all. */
const INBOX_REST = /^(?!.*(?:^|\/)\.{1,2}(?:\/|$))[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;

export function isInboxKeyOf(appId: string, key: string): boolean {
  const prefix = inboxPrefix(appId);
  if (!CLIENT_ID_PATTERN.test(appId) || key.length > 512 || !key.startsWith(prefix)) return false;
  return INBOX_REST.test(key.slice(prefix.length));
}

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
