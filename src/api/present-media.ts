import type { FastifyRequest } from 'fastify';
import type { MediaRow } from '../db/repos/media.js';
import { signFileToken } from '../domain/file-token.js';
import { toMediaObject } from '../ingest/media-object.js';
import type { Runtime } from '../runtime.js';

export function publicBaseUrl(rt: Runtime, req: FastifyRequest): string {
  return rt.config.PUBLIC_BASE_URL?.replace(/\/$/, '') ?? `${req.protocol}://${req.host}`;
}

/** The media object with its temporary URL (ready media only) for this request's host, and its progress when known. */
export function presentMedia(rt: Runtime, req: FastifyRequest, row: MediaRow, warnings?: string[], progress?: number) {
  let url: { url: string; expiresAt: Date } | null = null;
  if (row.status === 'ready') {
    const expiresAt = new Date(Math.min(Date.now() + rt.config.FILE_URL_TTL_SECONDS * 1000, row.expires_at.getTime()));
    url = { url: `${publicBaseUrl(rt, req)}/v1/files/${signFileToken(rt.fileUrlSecret, row.id, expiresAt)}`, expiresAt };
  }
  return toMediaObject(row, { url, warnings, progress });
}
