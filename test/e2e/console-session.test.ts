/**
 * The web console's back end over HTTP, against the running service (real Redis, PostgreSQL, fs
 * store, sharp), and the `users` CLI as its own process. Nothing is mocked: sign-in with scrypt
 * hashes, the JWT cookie, CSRF, the per-account and per-address sign-in limits, the dashboard
 * upload, the /v1 routes taking the session, and an API key refused where only the session goes.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUser } from '../../src/cli/admin.js';
import { verifyPassword } from '../../src/domain/password.js';
import { smallJpeg } from '../helpers/media.js';
import { BIN, processEnv, ROOT } from '../helpers/service-process.js';
import { startService, type TestService } from '../helpers/service.js';

let svc: TestService;
let app: { appId: string; apiKey: string };
const PASSWORD = 'correct horse battery staple';

/** `mediaflow users …` as an operator runs it, with stdin fed. */
function cli(args: string[], stdin = ''): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const proc = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: processEnv(svc.env), stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  proc.stdin.end(stdin);
  return new Promise((resolve) => proc.once('exit', (code) => resolve({ code, stdout, stderr })));
}

/** Signs in; returns the cookie header to send back and the CSRF token. */
async function signIn(email: string, password = PASSWORD, headers: Record<string, string> = {}) {
  const res = await fetch(`${svc.url}/api/session`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ email, password }) });
  const cookies = res.headers.getSetCookie();
  const cookie = cookies.map((c) => c.split(';')[0]).join('; ');
  return { res, cookies, cookie, csrf: res.headers.get('x-csrf-token') ?? '' };
}

async function newUser(email: string) {
  await createUser(svc.running.rt, { app: app.appId, email, password: PASSWORD });
  return email;
}

beforeAll(async () => {
  svc = await startService();
  app = await svc.newApp();
});

afterAll(async () => {
  await svc?.stop();
});

describe('users CLI', () => {
  it('creates a user from stdin (hash stored, password never printed), lists and disables it', async () => {
    const secret = 'a very private passphrase 42';
    const made = await cli(['users', 'create', '--app', app.appId, '--email', 'CLI@Example.com', '--password-stdin', '--json'], `${secret}\n`);
    expect(made.code, made.stderr).toBe(0);
    expect(made.stdout + made.stderr).not.toContain(secret);
    const user = JSON.parse(made.stdout).user;
    expect(user).toMatchObject({ email: 'cli@example.com', appId: app.appId, disabledAt: null });
    const { rows } = await svc.running.rt.pool.query<{ password_hash: string }>('SELECT password_hash FROM console_users WHERE id = $1', [user.id]);
    expect(rows[0]!.password_hash).toMatch(/^scrypt\$/);
    expect(rows[0]!.password_hash).not.toContain(secret);
    expect(await verifyPassword(secret, rows[0]!.password_hash)).toBe(true);

    const again = await cli(['users', 'create', '--app', app.appId, '--email', 'cli@example.com', '--password-stdin', '--json'], `${secret}\n`);
    expect(again.code).not.toBe(0);
    expect(JSON.parse(again.stdout).error.code).toBe('CONFLICT');
    const short = await cli(['users', 'create', '--app', app.appId, '--email', 'x@example.com', '--password-stdin', '--json'], 'short\n');
    expect(JSON.parse(short.stdout).error.message).toMatch(/at least 10/);

    const listed = await cli(['users', 'list', '--app', app.appId, '--json']);
    expect(JSON.parse(listed.stdout).users.map((u: any) => u.email)).toContain('cli@example.com');

    const s = await signIn('cli@example.com', secret);
    expect(s.res.status).toBe(204);
    const disabled = await cli(['users', 'disable', '--email', 'cli@example.com', '--json']);
    expect(JSON.parse(disabled.stdout)).toEqual({ disabled: true, email: 'cli@example.com' });
    // The open session ends at once, and signing in again is refused like a wrong password.
    expect((await fetch(`${svc.url}/api/session`, { headers: { cookie: s.cookie } })).status).toBe(401);
    expect((await signIn('cli@example.com', secret)).res.status).toBe(401);
  });
});

describe('sign-in and the session cookie', () => {
  it('answers 204 with an HttpOnly SameSite=Strict cookie (Secure over https) holding a JWT, and the CSRF token', async () => {
    const email = await newUser('alice@example.com');
    const s = await signIn(email);
    expect(s.res.status).toBe(204);
    const session = s.cookies.find((c) => c.startsWith('mf_session='))!;
    expect(session).toMatch(/HttpOnly/i);
    expect(session).toMatch(/SameSite=Strict/i);
    expect(session).not.toMatch(/Secure/i);
    expect(session.split(';')[0]!.split('=')[1]!.split('.')).toHaveLength(3);
    expect(s.csrf).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    const me = await fetch(`${svc.url}/api/session`, { headers: { cookie: s.cookie } });
    expect(me.status).toBe(200);
    expect((await me.json() as any).data).toMatchObject({ email, appId: app.appId, csrfToken: s.csrf });

    // Behind a trusted proxy that terminated https, the cookie is Secure.
    const other = await startService({ env: { TRUST_PROXY: 'loopback' } });
    try {
      await createUser(other.running.rt, { app: (await other.newApp()).appId, email: 'proxy@example.com', password: PASSWORD });
      const res = await fetch(`${other.url}/api/session`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https' }, body: JSON.stringify({ email: 'proxy@example.com', password: PASSWORD }) });
      expect(res.status).toBe(204);
      expect(res.headers.getSetCookie().find((c) => c.startsWith('mf_session='))).toMatch(/;\s*Secure/i);
    } finally {
      await other.stop();
    }
  });

  it('answers an unknown email exactly like a wrong password', async () => {
    const email = await newUser('bob@example.com');
    const wrong = await signIn(email, 'not the password at all');
    const unknown = await signIn('nobody-here@example.com', 'not the password at all');
    expect(wrong.res.status).toBe(401);
    expect(unknown.res.status).toBe(401);
    const strip = (b: any) => ({ ...b, error: { ...b.error, request_id: 'x' } });
    expect(strip(await unknown.res.json())).toEqual(strip(await wrong.res.json()));
    expect(wrong.cookies).toEqual([]);
    expect(unknown.cookies).toEqual([]);
  });

  it('lets /v1 take the session; a state-changing request without x-csrf-token is 403', async () => {
    const s = await signIn(await newUser('carol@example.com'));
    const list = await fetch(`${svc.url}/v1/media?limit=1`, { headers: { cookie: s.cookie } });
    expect(list.status).toBe(200);
    const noCsrf = await fetch(`${svc.url}/v1/folders`, { method: 'POST', headers: { cookie: s.cookie, 'content-type': 'application/json' }, body: '{"name":"x"}' });
    expect(noCsrf.status).toBe(403);
    expect((await noCsrf.json() as any).error.code).toBe('FORBIDDEN');
    const badCsrf = await fetch(`${svc.url}/v1/folders`, { method: 'POST', headers: { cookie: s.cookie, 'content-type': 'application/json', 'x-csrf-token': `${s.csrf}x` }, body: '{"name":"x"}' });
    expect(badCsrf.status).toBe(403);
    const made = await fetch(`${svc.url}/v1/folders`, { method: 'POST', headers: { cookie: s.cookie, 'content-type': 'application/json', 'x-csrf-token': s.csrf }, body: '{"name":"Campaign"}' });
    expect(made.status).toBe(201);
    // The folder is the app's: an API key of the same app sees it.
    const folders = await svc.call('/v1/folders', { key: app.apiKey });
    expect(((await folders.json()) as any).data.map((f: any) => f.name)).toContain('Campaign');
    // A forged or tampered cookie is 401, not a session.
    const forged = s.cookie.replace(/mf_session=([^.]+)\.([^.]+)\.([^;]+)/, (_m, a, b) => `mf_session=${a}.${b}.AAAA`);
    expect((await fetch(`${svc.url}/v1/media`, { headers: { cookie: forged } })).status).toBe(401);
  });

  it('DELETE /api/session ends the session: the same cookie no longer works', async () => {
    const s = await signIn(await newUser('dave@example.com'));
    expect((await fetch(`${svc.url}/api/session`, { method: 'DELETE', headers: { cookie: s.cookie } })).status).toBe(403);
    const out = await fetch(`${svc.url}/api/session`, { method: 'DELETE', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
    expect(out.status).toBe(204);
    expect(out.headers.getSetCookie().join('\n')).toMatch(/mf_session=;/);
    expect((await fetch(`${svc.url}/v1/media`, { headers: { cookie: s.cookie } })).status).toBe(401);
    expect((await fetch(`${svc.url}/api/session`, { headers: { cookie: s.cookie } })).status).toBe(401);
  });

  it('renews the token while in use (a token past half its life gets a new cookie)', async () => {
    const short = await startService({ env: { CONSOLE_SESSION_TTL_SECONDS: '10' } });
    try {
      await createUser(short.running.rt, { app: (await short.newApp()).appId, email: 'erin@example.com', password: PASSWORD });
      const res = await fetch(`${short.url}/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'erin@example.com', password: PASSWORD }) });
      const cookie = res.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
      const fresh = await fetch(`${short.url}/api/session`, { headers: { cookie } });
      expect(fresh.headers.getSetCookie()).toEqual([]);
      // Past half of 10 s the next request carries a new token with a later expiry (polled: no timing assertion).
      let next: string | undefined;
      const deadline = Date.now() + 30_000;
      while (!next && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        const renewed = await fetch(`${short.url}/api/session`, { headers: { cookie } });
        expect(renewed.status).toBe(200);
        next = renewed.headers.getSetCookie().find((c) => c.startsWith('mf_session='));
      }
      expect(next).toBeDefined();
      expect(next!.split(';')[0]).not.toBe(cookie.split('; ').find((c) => c.startsWith('mf_session=')));
    } finally {
      await short.stop();
    }
  }, 90_000);
});

describe('sign-in rate limits', () => {
  it('blocks an account after 5 failures (even with the right password) and an address after 20', async () => {
    const email = await newUser('frank@example.com');
    for (let i = 0; i < 5; i++) expect((await signIn(email, `wrong password ${i}`)).res.status).toBe(401);
    const blocked = await signIn(email);
    expect(blocked.res.status).toBe(429);
    expect((await blocked.res.json() as any).error.code).toBe('RATE_LIMITED');
    expect(Number(blocked.res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(blocked.cookies).toEqual([]);

    // Per address: failures spread over many accounts (all unknown) still add up.
    const other = await startService();
    try {
      await createUser(other.running.rt, { app: (await other.newApp()).appId, email: 'grace@example.com', password: PASSWORD });
      const at = (e: string, p: string) => fetch(`${other.url}/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: e, password: p }) });
      for (let i = 0; i < 20; i++) expect((await at(`guess${i}@example.com`, 'nope nope nope')).status).toBe(401);
      expect((await at('grace@example.com', PASSWORD)).status).toBe(429);
    } finally {
      await other.stop();
    }
  });
});

describe('POST /api/media/upload', () => {
  it('takes the console session only: an API key gets 401', async () => {
    const fd = new FormData();
    fd.append('file', new Blob([await smallJpeg()], { type: 'image/jpeg' }), 'a.jpg');
    const res = await fetch(`${svc.url}/api/media/upload`, { method: 'POST', headers: { authorization: `Bearer ${app.apiKey}` }, body: fd });
    expect(res.status).toBe(401);
    expect((await res.json() as any).error.code).toBe('UNAUTHORIZED');
    // Nothing was kept for the refused request.
    const list = await svc.call('/v1/media?limit=100', { key: app.apiKey });
    expect(((await list.json()) as any).page.total).toBe(0);
  });

  it('needs the CSRF header, then answers the dashboard shape with a working temporary URL', async () => {
    const s = await signIn(await newUser('heidi@example.com'));
    const jpeg = await smallJpeg(320, 240);
    const form = () => {
      const fd = new FormData();
      fd.append('type', 'image');
      fd.append('file', new Blob([jpeg], { type: 'image/jpeg' }), 'visuel.jpg');
      return fd;
    };
    expect((await fetch(`${svc.url}/api/media/upload`, { method: 'POST', headers: { cookie: s.cookie }, body: form() })).status).toBe(403);
    const res = await fetch(`${svc.url}/api/media/upload`, { method: 'POST', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf }, body: form() });
    expect(res.status).toBe(201);
    const data = (await res.json() as any).data;
    expect(data).toMatchObject({ type: 'image', mimeType: 'image/jpeg', originalName: 'visuel.jpg', suggestedMessageType: 'image' });
    expect(data.id).toMatch(/^med_/);
    expect(data.sizeBytes).toBeGreaterThan(0);
    expect(Date.parse(data.expiresAt)).toBeGreaterThan(Date.now());
    const file = await fetch(data.url);
    expect(file.status).toBe(200);
    expect(file.headers.get('content-type')).toBe('image/jpeg');
    // The media is the app's, visible to its API key like any other upload.
    expect((await svc.call(`/v1/media/${data.id}`, { key: app.apiKey })).status).toBe(200);
  });

  it('answers a refused type with its code', async () => {
    const s = await signIn(await newUser('ivan@example.com'));
    const fd = new FormData();
    fd.append('type', 'image');
    fd.append('file', new Blob([Buffer.from('just some text, not an image at all')], { type: 'image/jpeg' }), 'fake.jpg');
    const res = await fetch(`${svc.url}/api/media/upload`, { method: 'POST', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf }, body: fd });
    expect(res.status).toBe(415);
  });
});

describe('the console files', () => {
  it('serves /console/ with a CSP and no-cache, and hashed assets for a year', async () => {
    const index = await fetch(`${svc.url}/console/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('cache-control')).toBe('no-cache');
    expect(index.headers.get('content-security-policy')).toContain("default-src 'self'");
    const html = await index.text();
    const asset = /\/console\/assets\/[^"']+\.js/.exec(html)?.[0];
    expect(asset).toBeDefined();
    const js = await fetch(`${svc.url}${asset}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('cache-control')).toMatch(/max-age=31536000.*immutable/);
    // No other origin is named anywhere in the page.
    expect(html).not.toMatch(/https?:\/\//);
    expect((await fetch(`${svc.url}/console`, { redirect: 'manual' })).headers.get('location')).toBe('/console/');
    // A path out of console/dist is refused (403 or 404), never served.
    const escape = await fetch(`${svc.url}/console/assets/..%2f..%2f..%2fpackage.json`);
    expect([403, 404]).toContain(escape.status);
    expect(await escape.text()).not.toContain('"devDependencies"');
  });
});

describe('library routes the console uses (API key or session alike)', () => {
  it('moves media between folders (PATCH), searches by name (q), and has no poster for an image', async () => {
    const fd = new FormData();
    fd.append('file', new Blob([await smallJpeg()], { type: 'image/jpeg' }), 'Summer_50%_Sale.jpg');
    const up = await svc.call('/v1/media?wait=20', { method: 'POST', key: app.apiKey, body: fd });
    expect(up.status).toBeLessThan(300);
    const media = (await up.json() as any).data;
    const folder = (await (await svc.call('/v1/folders', { method: 'POST', key: app.apiKey, headers: { 'content-type': 'application/json' }, body: '{"name":"Promos"}' })).json() as any).data;
    const moved = await svc.call(`/v1/media/${media.id}`, { method: 'PATCH', key: app.apiKey, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ folderId: folder.id }) });
    expect(moved.status).toBe(200);
    expect((await moved.json() as any).data.folderId).toBe(folder.id);
    // Another app's folder (or none at all) is 404, and the media stays where it was.
    const other = await svc.newApp();
    const theirs = (await (await svc.call('/v1/folders', { method: 'POST', key: other.apiKey, headers: { 'content-type': 'application/json' }, body: '{"name":"Theirs"}' })).json() as any).data;
    expect((await svc.call(`/v1/media/${media.id}`, { method: 'PATCH', key: app.apiKey, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ folderId: theirs.id }) })).status).toBe(404);
    expect((await svc.call(`/v1/media/${media.id}`, { method: 'PATCH', key: other.apiKey, headers: { 'content-type': 'application/json' }, body: '{"folderId":null}' })).status).toBe(404);
    expect((await svc.call(`/v1/media/${media.id}`, { method: 'PATCH', key: app.apiKey, headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(400);
    expect(((await (await svc.call(`/v1/media?folderId=${folder.id}`, { key: app.apiKey })).json()) as any).data.map((m: any) => m.id)).toEqual([media.id]);
    // `q` matches part of the name, any case; % and _ are literal characters, not wildcards.
    const names = async (q: string) => ((await (await svc.call(`/v1/media?limit=100&q=${encodeURIComponent(q)}`, { key: app.apiKey })).json()) as any).data.map((m: any) => m.originalName);
    expect(await names('summer_50%')).toEqual(['Summer_50%_Sale.jpg']);
    expect(await names('50%_s')).toEqual(['Summer_50%_Sale.jpg']);
    expect(await names('5_%')).toEqual([]);
    expect((await svc.call(`/v1/media/${media.id}/poster`, { key: app.apiKey })).status).toBe(404);
  });

  it('documents the console routes in OpenAPI with the session as their security', async () => {
    const doc = (await (await svc.call('/docs/json')).json()) as any;
    expect(doc.components.securitySchemes.consoleSession).toMatchObject({ type: 'apiKey', in: 'cookie', name: 'mf_session' });
    expect(doc.paths['/api/session'].post.security).toEqual([]);
    expect(doc.paths['/api/media/upload'].post.security).toEqual([{ consoleSession: [] }]);
    expect(doc.paths['/api/session'].delete.responses['403']).toBeDefined();
    expect(doc.paths['/v1/media/{id}'].patch.summary).toMatch(/folder/);
  });
});
