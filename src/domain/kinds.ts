export const MEDIA_KINDS = ['image', 'video', 'audio', 'voice_note', 'document', 'sticker'] as const;
export type MediaKind = (typeof MEDIA_KINDS)[number];

export const MEDIA_STATUSES = ['queued', 'processing', 'ready', 'failed', 'deleting', 'deleted'] as const;
export type MediaStatus = (typeof MEDIA_STATUSES)[number];

export const MEDIA_SOURCES = ['upload', 'url', 'base64', 'slot', 'queue', 'tus'] as const;
export type MediaSource = (typeof MEDIA_SOURCES)[number];

/** Why a media was deleted: by its app, at its expiry, with its device, or at the retention cap. */
export type DeleteReason = 'deleted' | 'expired' | 'device_destroyed' | 'retention';

/** The events a webhook announces. */
export type MediaEvent = 'media.ready' | 'media.failed' | 'media.deleted' | 'media.expiring';

export const SCOPES = ['media:read', 'media:write', 'media:delete', 'devices:write'] as const;
export type Scope = (typeof SCOPES)[number];
