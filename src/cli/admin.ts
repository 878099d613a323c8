import * as appsRepo from '../db/repos/apps.js';
import * as consoleUsers from '../db/repos/console-users.js';
import { countByStatusAndKind } from '../db/repos/media.js';
import { AppError } from '../domain/errors.js';
import { newApiKey, newAppId, newConsoleUserId, newSecret } from '../domain/ids.js';
import { hashPassword, normalizeEmail, passwordProblem } from '../domain/password.js';
import { MEDIA_KINDS, SCOPES, type MediaKind, type Scope } from '../domain/kinds.js';
import type { KindLimits } from '../domain/policies.js';
import { assertUrlAllowedSyntax } from '../net/url-check.js';
import { JOBS, type JobName } from '../queue/registry.js';
import type { Runtime } from '../runtime.js';

/**
 * `--max-bytes document=100000000,video=32000000`: per-app delivered limits (capped by the hard cap);
 * a kind that is made to fit (image, video, audio, voice note) still takes inputs up to its own input cap.
 */
export function parseLimits(spec: string | undefined): KindLimits {
  const out: KindLimits = {};
  if (!spec) return out;
  for (const part of spec.split(',').filter(Boolean)) {
    const [k, v] = part.split('=');
    const n = Number(v);
    if (!k || !(MEDIA_KINDS as readonly string[]).includes(k) || !Number.isInteger(n) || n <= 0) {
      throw new AppError('VALIDATION_FAILED', `bad limit ${part}: use kind=bytes with kind one of ${MEDIA_KINDS.join(',')}`);
    }
    out[k as MediaKind] = n;
  }
  return out;
}

export async function createApp(rt: Runtime, o: { name: string; webhookUrl?: string; maxBytes?: string }) {
  if (o.webhookUrl) assertUrlAllowedSyntax(o.webhookUrl, { allowPrivateNetworks: rt.config.ALLOW_PRIVATE_URLS });
  const limits = parseLimits(o.maxBytes);
  const app = await appsRepo.insertApp(rt.pool, { id: newAppId(), name: o.name, webhookUrl: o.webhookUrl ?? null, webhookSecret: `whsec_${newSecret()}`, limits });
  const key = newApiKey();
  await appsRepo.insertApiKey(rt.pool, { appId: app.id, prefix: key.prefix, hash: key.hash, scopes: SCOPES });
  return {
    app: { id: app.id, name: app.name, webhookUrl: app.webhook_url, limits: app.limits, createdAt: app.created_at.toISOString() },
    apiKey: key.key,
    keyPrefix: key.prefix,
    scopes: [...SCOPES],
    webhookSecret: app.webhook_secret,
  };
}

export function parseScopes(list: string): Scope[] {
  const scopes = [...new Set(list.split(',').map((s) => s.trim()).filter(Boolean))];
  const bad = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (bad.length || scopes.length === 0) throw new AppError('VALIDATION_FAILED', `unknown scopes: ${bad.join(',') || '(none given)'}; allowed: ${SCOPES.join(',')}`);
  return scopes as Scope[];
}

export async function createKey(rt: Runtime, appId: string, scopeList: string) {
  const scopes = parseScopes(scopeList);
  if (!(await appsRepo.getApp(rt.pool, appId))) throw new AppError('NOT_FOUND', `no app ${appId}`);
  const key = newApiKey();
  await appsRepo.insertApiKey(rt.pool, { appId, prefix: key.prefix, hash: key.hash, scopes });
  return { apiKey: key.key, keyPrefix: key.prefix, scopes };
}

export async function revokeKey(rt: Runtime, prefix: string) {
  return { revoked: await appsRepo.revokeApiKey(rt.pool, prefix), keyPrefix: prefix };
}

export async function stats(rt: Runtime) {
  const queues: Record<string, Record<string, number>> = {};
  for (const name of Object.keys(JOBS) as JobName[]) {
    queues[JOBS[name].queue] = await rt.queues.get(name).getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized');
  }
  const byStatus = await countByStatusAndKind(rt.pool);
  const media: Record<string, number> = {};
  const kinds: Record<string, number> = {};
  let bytesStored = 0;
  for (const r of byStatus) {
    media[r.status] = (media[r.status] ?? 0) + r.n;
    if (r.kind && r.status !== 'deleted') kinds[r.kind] = (kinds[r.kind] ?? 0) + r.n;
    if (r.status === 'ready') bytesStored += Number(r.bytes);
  }
  return { queues, media: { byStatus: media, byKind: kinds }, bytesStored };
}

/** `users create`: a console user of an app; the password is hashed (scrypt) and never printed. */
export async function createUser(rt: Runtime, o: { app: string; email: string; password: string }) {
  const email = normalizeEmail(o.email);
  if (!email) throw new AppError('VALIDATION_FAILED', `not an email address: ${o.email}`, { fields: { email: 'invalid' } });
  const problem = passwordProblem(o.password);
  if (problem) throw new AppError('VALIDATION_FAILED', problem, { fields: { password: 'invalid' } });
  if (!(await appsRepo.getApp(rt.pool, o.app))) throw new AppError('NOT_FOUND', `no app ${o.app}`);
  const row = await consoleUsers.insertConsoleUser(rt.pool, { id: newConsoleUserId(), appId: o.app, email, passwordHash: await hashPassword(o.password) });
  if (!row) throw new AppError('CONFLICT', `a console user ${email} exists already`);
  return { user: presentUser(row) };
}

export async function listUsers(rt: Runtime, o: { app?: string }) {
  return { users: (await consoleUsers.listConsoleUsers(rt.pool, o.app)).map(presentUser) };
}

/** `users disable`: the user can no longer sign in, and their open sessions stop working at once. */
export async function disableUser(rt: Runtime, o: { email: string }) {
  const email = normalizeEmail(o.email) ?? o.email.trim().toLowerCase();
  return { disabled: await consoleUsers.disableConsoleUser(rt.pool, email), email };
}

function presentUser(u: consoleUsers.ConsoleUserRow) {
  return {
    id: u.id, appId: u.app_id, email: u.email, createdAt: u.created_at.toISOString(),
    disabledAt: u.disabled_at?.toISOString() ?? null, lastSignedInAt: u.last_signed_in_at?.toISOString() ?? null,
  };
}
