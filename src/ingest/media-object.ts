import type { MediaRow } from '../db/repos/media.js';
import { suggestedMessageType } from '../domain/policies.js';

export interface MediaObjectOptions {
  /** Temporary public URL for ready media. */
  url?: { url: string; expiresAt: Date } | null;
  warnings?: string[];
  /** 0–100 while `processing`, as the worker last reported it; left out when unknown. */
  progress?: number | undefined;
}

const iso = (d: Date | null | undefined): string | null => (d ? d.toISOString() : null);

/** The media object of API.md, from a row. */
export function toMediaObject(row: MediaRow, opts: MediaObjectOptions = {}): Record<string, unknown> {
  const status = row.status === 'deleting' ? 'deleted' : row.status;
  const out: Record<string, unknown> = {
    id: row.id,
    status,
    kind: row.kind,
    mimeType: row.mime_type ?? row.detected_mime ?? row.declared_mime,
    declaredMimeType: row.declared_mime,
    detectedMimeType: row.detected_mime,
    sizeBytes: row.size_bytes ?? row.input_bytes,
    originalName: row.original_name,
    name: row.name,
    description: row.description,
    folderId: row.folder_id,
    deviceId: row.device_id,
    checksum: row.checksum ? { algorithm: 'sha256', value: row.checksum } : null,
    width: row.width,
    height: row.height,
    durationMs: row.duration_ms,
    pages: row.pages,
    waveform: row.waveform,
    transform: row.transform,
    mediaPath: row.media_path,
    url: opts.url?.url ?? null,
    urlExpiresAt: iso(opts.url?.expiresAt),
    expiresAt: iso(row.expires_at),
    suggestedMessageType: row.kind ? suggestedMessageType(row.kind) : null,
    source: row.source,
    // Live scheduled sends; a row read without the figures (a media just created) has none yet.
    references: { count: row.ref_count ?? 0, nextSendAt: iso(row.next_send_at) },
    correlationId: row.correlation_id,
    variants: row.variants.map((v) => ({ name: v.name, mimeType: v.mimeType, sizeBytes: v.bytes })),
    createdAt: iso(row.created_at),
    readyAt: iso(row.ready_at),
    error: row.error_code ? { code: row.error_code, message: row.error_message } : null,
  };
  if (opts.warnings) out.warnings = opts.warnings;
  if (opts.progress !== undefined && status === 'processing') out.progress = opts.progress;
  return out;
}
