/**
 * The console talks to the same HTTP API as every client, with the session cookie (sent by the
 * browser, never readable here) and the CSRF token on anything that changes state.
 */

export interface Media {
  id: string;
  status: 'queued' | 'processing' | 'ready' | 'failed' | 'deleted';
  kind: Kind | null;
  mimeType: string | null;
  sizeBytes: number | null;
  originalName: string | null;
  name: string | null;
  folderId: string | null;
  width: number | null;
  height: number | null;
  durationMs: number | null;
  waveform: number[] | null;
  url: string | null;
  urlExpiresAt: string | null;
  expiresAt: string;
  createdAt: string;
  variants?: Array<{ name: string; mimeType: string }>;
  references?: { count: number; nextSendAt: string | null };
  error: { code: string; message: string } | null;
  warnings?: string[];
  progress?: number;
}

export interface Folder {
  id: string;
  name: string;
  mediaCount?: number;
}

export type Kind = 'image' | 'video' | 'audio' | 'voice_note' | 'document' | 'sticker';
export const KINDS: Kind[] = ['image', 'video', 'audio', 'voice_note', 'document', 'sticker'];
export const KIND_LABELS: Record<Kind, string> = {
  image: 'Image', video: 'Video', audio: 'Audio', voice_note: 'Voice note', document: 'Document', sticker: 'Sticker',
};

export interface Session {
  email: string;
  appId: string;
  csrfToken: string;
  expiresAt: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

let csrfToken = '';
let onSignedOut: () => void = () => undefined;

export function setCsrfToken(token: string): void {
  csrfToken = token;
}
export function csrf(): string {
  return csrfToken;
}
export function whenSignedOut(fn: () => void): void {
  onSignedOut = fn;
}

const SAFE = new Set(['GET', 'HEAD']);

export async function call<T = unknown>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<{ data: T; page?: { page: number; limit: number; total: number } }> {
  const method = (init.method ?? 'GET').toUpperCase();
  const headers = new Headers(init.headers);
  if (!SAFE.has(method) && csrfToken) headers.set('x-csrf-token', csrfToken);
  let body = init.body;
  if (init.json !== undefined) {
    headers.set('content-type', 'application/json');
    body = JSON.stringify(init.json);
  }
  const res = await fetch(path, { ...init, method, headers, body, credentials: 'same-origin' });
  if (res.status === 204) return { data: undefined as T };
  const payload = (await res.json().catch(() => null)) as { data?: T; page?: { page: number; limit: number; total: number }; error?: { code: string; message: string; details?: unknown } } | null;
  if (!res.ok) {
    const err = payload?.error;
    if (res.status === 401 && path !== '/api/session') onSignedOut();
    throw new ApiError(res.status, err?.code ?? 'HTTP_' + res.status, err?.message ?? `the service answered ${res.status}`, err?.details);
  }
  return { data: payload?.data as T, page: payload?.page };
}

export async function signIn(email: string, password: string): Promise<void> {
  await call('/api/session', { method: 'POST', json: { email, password } });
}

export async function currentSession(): Promise<Session | null> {
  try {
    return (await call<Session>('/api/session')).data;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

export async function signOut(): Promise<void> {
  await call('/api/session', { method: 'DELETE' });
}

export async function getMedia(id: string, scheduledAt?: string): Promise<Media> {
  const q = scheduledAt ? `?scheduledAt=${encodeURIComponent(scheduledAt)}` : '';
  return (await call<Media>(`/v1/media/${encodeURIComponent(id)}${q}`)).data;
}

export interface ListParams {
  page: number;
  limit: number;
  sortBy: 'createdAt' | 'name' | 'sizeBytes';
  sortOrder: 'asc' | 'desc';
  kind?: string;
  status?: string;
  folderId?: string;
  q?: string;
}

export async function listMedia(p: ListParams) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) if (v !== undefined && v !== '') qs.set(k, String(v));
  const res = await call<Media[]>(`/v1/media?${qs}`);
  return { items: res.data, total: res.page?.total ?? res.data.length };
}

export async function listFolders(): Promise<Folder[]> {
  return (await call<Folder[]>('/v1/folders?limit=1000')).data;
}

export async function createFolder(name: string): Promise<Folder> {
  return (await call<Folder>('/v1/folders', { method: 'POST', json: { name } })).data;
}

export async function moveToFolder(id: string, folderId: string | null): Promise<Media> {
  return (await call<Media>(`/v1/media/${encodeURIComponent(id)}`, { method: 'PATCH', json: { folderId } })).data;
}

export async function deleteMedia(id: string, force = false): Promise<void> {
  await call(`/v1/media/${encodeURIComponent(id)}${force ? '?force=true' : ''}`, { method: 'DELETE' });
}

export async function extendMedia(id: string, ttlSeconds: number): Promise<Media> {
  return (await call<Media>(`/v1/media/${encodeURIComponent(id)}/extend`, { method: 'POST', json: { ttlSeconds } })).data;
}

export interface ReferenceResult {
  reference: { ref: string; sendAt: string; createdAt: string };
  media: Media;
  warnings: string[];
}

export async function addReference(id: string, ref: string, sendAt: string, extend: boolean): Promise<ReferenceResult> {
  return (await call<ReferenceResult>(`/v1/media/${encodeURIComponent(id)}/references`, { method: 'POST', json: { ref, sendAt, extend } })).data;
}

export interface DashboardUpload {
  id: string;
  url: string;
  type: Kind;
  mimeType: string;
  sizeBytes: number;
  originalName: string | null;
  expiresAt: string;
  suggestedMessageType: string | null;
  status?: string;
}

export async function dashboardUpload(file: Blob, name: string, type: Kind): Promise<DashboardUpload> {
  const fd = new FormData();
  fd.append('type', type);
  fd.append('file', file, name);
  return (await call<DashboardUpload>('/api/media/upload', { method: 'POST', body: fd })).data;
}

/** Whether the resumable upload endpoint (tus, issue 16) is served here. */
export async function tusAvailable(): Promise<boolean> {
  try {
    const res = await fetch('/v1/uploads/tus', { method: 'OPTIONS', credentials: 'same-origin' });
    return res.ok && res.headers.has('tus-version');
  } catch {
    return false;
  }
}

/** Polls a media until it is ready or failed (or the deadline passes). */
export async function waitSettled(id: string, onUpdate?: (m: Media) => void, timeoutMs = 10 * 60_000): Promise<Media> {
  const deadline = Date.now() + timeoutMs;
  let pause = 500;
  for (;;) {
    const m = await getMedia(id);
    onUpdate?.(m);
    if (m.status === 'ready' || m.status === 'failed' || m.status === 'deleted' || Date.now() > deadline) return m;
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(2000, pause * 1.3);
  }
}
