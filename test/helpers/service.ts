import { createLogger } from '../../src/log.js';
import { startRoles, type Role, type Running } from '../../src/roles.js';
import { createApp, createKey } from '../../src/cli/admin.js';
import { isolatedEnv } from './env.js';
import type { Config } from '../../src/config/index.js';

export interface TestService {
  url: string;
  running: Running;
  config: Config;
  env: Record<string, string>;
  /** A new app with an all-scopes key. */
  newApp(opts?: { webhookUrl?: string }): Promise<{ appId: string; apiKey: string; webhookSecret: string }>;
  newKey(appId: string, scopes: string): Promise<string>;
  /** fetch relative to the service, with the given API key. */
  call(path: string, init?: RequestInit & { key?: string }): Promise<Response>;
  stop(): Promise<void>;
}

/**
 * The service as one process would run it (`--role all` by default), in this test process, on a
 * real port, against real Redis and PostgreSQL and a real store. Its database, queue prefix and
 * data dir are the test file's own.
 */
export async function startService(opts: { role?: Role; env?: Record<string, string> } = {}): Promise<TestService> {
  const iso = await isolatedEnv(opts.env);
  const log = createLogger({ level: iso.config.LOG_LEVEL });
  const running = await startRoles(iso.config, log, opts.role ?? 'all');
  const url = running.url ?? '';
  return {
    url,
    running,
    config: iso.config,
    env: iso.env,
    async newApp(o = {}) {
      const res = await createApp(running.rt, { name: 'test', webhookUrl: o.webhookUrl });
      return { appId: res.app.id, apiKey: res.apiKey, webhookSecret: res.webhookSecret };
    },
    async newKey(appId, scopes) {
      return (await createKey(running.rt, appId, scopes)).apiKey;
    },
    call(path, init = {}) {
      const headers = new Headers(init.headers);
      if (init.key) headers.set('authorization', `Bearer ${init.key}`);
      return fetch(`${url}${path}`, { ...init, headers });
    },
    async stop() {
      await running.stop();
      await iso.cleanup();
    },
  };
}

export async function waitFor<T>(fn: () => Promise<T | undefined | null | false>, timeoutMs = 20_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`waitFor timed out after ${timeoutMs} ms${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Polls a media until it leaves queued/processing. */
export async function waitSettled(svc: TestService, key: string, id: string, timeoutMs = 30_000): Promise<Record<string, any>> {
  return waitFor(async () => {
    const res = await svc.call(`/v1/media/${id}`, { key });
    if (res.status !== 200) return null;
    const body = (await res.json()) as { data: Record<string, any> };
    return body.data.status === 'ready' || body.data.status === 'failed' ? body.data : null;
  }, timeoutMs);
}

export function multipart(fields: Record<string, string>, file?: { name?: string; type?: string; bytes: Uint8Array; field?: string }): FormData {
  const fd = new FormData();
  for (const [k, v] of Object.entries(fields)) fd.append(k, v);
  if (file) fd.append(file.field ?? 'file', new Blob([file.bytes], { type: file.type ?? 'application/octet-stream' }), file.name ?? 'upload.bin');
  return fd;
}
