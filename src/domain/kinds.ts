export const MEDIA_KINDS = ['image', 'video', 'audio', 'voice_note', 'document', 'sticker'] as const;
export type MediaKind = (typeof MEDIA_KINDS)[number];

export const MEDIA_STATUSES = ['queued', 'processing', 'ready', 'failed', 'deleting', 'deleted'] as const;
export type MediaStatus = (typeof MEDIA_STATUSES)[number];

export const MEDIA_SOURCES = ['upload', 'url', 'base64', 'slot', 'queue'] as const;
export type MediaSource = (typeof MEDIA_SOURCES)[number];

export const SCOPES = ['media:read', 'media:write', 'media:delete', 'devices:write'] as const;
export type Scope = (typeof SCOPES)[number];
