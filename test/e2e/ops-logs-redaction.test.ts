/**
 * Keys in logs (issue 9 item 5): clients put credentials where they do not belong (query strings,
 * paths, headers, the request id, the URL of a URL ingest, a webhook URL); whatever they do, no API
 * key, webhook secret or credential-named parameter reaches a log line. The whole output of the
 * service and of every CLI run is searched for every secret the test created.
 * Real: the `mediaflow` processes, Redis, PostgreSQL, the fs store, sharp, local HTTP servers.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { isolatedEnv } from '../helpers/env.js';
import { smallPng } from '../helpers/media.js';
import { startReceiver } from '../helpers/receiver.js';
import { waitFor } from '../helpers/service.js';
import { runCli, startServiceProcess } from '../helpers/service-process.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

/** Serves one PNG at any path whatever the query, and remembers the query strings it was sent. */
async function pngServer(png: Buffer): Promise<{ url: string; queries: string[]; close(): Promise<void> }> {
  const queries: string[] = [];
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    queries.push(u.search);
    if (!u.pathname.endsWith('.png')) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'image/png', 'content-length': png.length }).end(png);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, queries, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const secret = () => randomBytes(18).toString('base64url');

describe('credentials a client puts anywhere', () => {
  it('never reach a log line, in any process', async () => {
    const iso = await isolatedEnv({ LOG_LEVEL: 'debug', ALLOW_PRIVATE_URLS: 'true', WEBHOOK_BACKOFF_MS: '200' });
    cleanups.push(() => iso.cleanup());
    const png = await smallPng(48, 48, 21);
    const origin = await pngServer(png);
    cleanups.push(() => origin.close());
    const hooks = await startReceiver([500, 200]); // the first delivery fails, so a failure is logged
    cleanups.push(() => hooks.close());
    const hookToken = secret();
    const [amzSignature, amzCredential, password] = [secret(), secret(), secret()];

    // Logs of CLI runs: everything but the one result line on stdout, which is meant to carry a key.
    let cliLogs = '';
    const cli = async (args: string[]) => {
      const r = await runCli(args, iso.env);
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stdout.trim().split('\n');
      cliLogs += lines.slice(0, -1).join('\n') + r.stderr;
      return JSON.parse(lines.at(-1)!) as Record<string, any>;
    };
    const [a, b] = await Promise.all([
      cli(['apps', 'create', '--name', 'a', '--webhook-url', `${hooks.url}/in?token=${hookToken}`, '--json']),
      cli(['apps', 'create', '--name', 'b', '--json']),
    ]);
    const readKey = (await cli(['keys', 'create', '--app', a.app.id, '--scopes', 'media:read', '--json'])).apiKey as string;
    const [keyA, keyB] = [a.apiKey as string, b.apiKey as string];

    const svc = await startServiceProcess(iso.env);
    cleanups.push(async () => svc.proc.kill('SIGKILL'));
    const get = (p: string, headers: Record<string, string> = {}) => fetch(`${svc.url}${p}`, { headers });
    const auth = { authorization: `Bearer ${keyA}` };

    // Query strings: refused without a header, and accepted requests carrying one anyway.
    expect((await get(`/v1/media?api_key=${keyA}`)).status).toBe(401);
    expect((await get(`/v1/media?token=${keyB}`)).status).toBe(401);
    expect((await get(`/v1/media?page=0&access_token=${readKey}&limit=5`, auth)).status).toBe(200);
    expect((await get(`/v1/media?secret=${b.webhookSecret}`, auth)).status).toBe(200);
    expect((await get(`/v1/media?X-Amz-Signature=${amzSignature}&X-Amz-Credential=${amzCredential}&password=${password}`, auth)).status).toBe(200);
    // Paths, headers, the request id.
    expect((await get(`/v1/media/${keyB}`, auth)).status).toBe(404);
    expect((await get(`/v1/${readKey}/content`, auth)).status).toBe(404);
    expect((await get('/v1/media', { 'x-api-key': keyB, cookie: `session=${readKey}` })).status).toBe(401);
    const withId = await get('/v1/media', { ...auth, 'x-request-id': keyB });
    expect(withId.status).toBe(200);
    expect((await get('/v1/media', { ...auth, 'x-request-id': a.webhookSecret })).status).toBe(200);

    // URL ingest by API and by CLI, with a key in the URL's query; one of them a 404 that fails.
    const ingest = async (url: string) => {
      const res = await fetch(`${svc.url}/v1/media`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ url }) });
      expect(res.status).toBe(202);
      return ((await res.json()) as any).data.id as string;
    };
    const settled = (id: string) =>
      waitFor(async () => {
        const m = ((await (await get(`/v1/media/${id}`, auth)).json()) as any).data;
        return m.status === 'ready' || m.status === 'failed' ? m : null;
      }, 30_000, 200);
    const okId = await ingest(`${origin.url}/a.png?token=${keyA}`);
    const missingId = await ingest(`${origin.url}/gone.jpg?access_token=${keyB}&sig=${amzSignature}`);
    const viaCli = await cli(['ingest', `${origin.url}/c.png?api_key=${readKey}`, '--app', a.app.id, '--json']);
    expect((await settled(okId)).status).toBe('ready');
    expect((await settled(missingId)).status).toBe('failed');
    expect((await settled(viaCli.id)).status).toBe('ready');
    expect(origin.queries).toContain(`?token=${keyA}`); // the credential-bearing URLs were really fetched
    // The webhook (its URL holds a token) failed once, then went through.
    await waitFor(async () => (hooks.received.length >= 2 ? true : null), 30_000, 200);

    expect((await svc.stop('SIGTERM')).code).toBe(0);
    const everything = svc.output() + cliLogs;
    const secrets: Array<[string, string]> = [
      ['API key of app a', keyA],
      ['API key of app b', keyB],
      ['read-only API key', readKey],
      ...[keyA, keyB, readKey].map((k, i): [string, string] => [`secret part of key ${i}`, k.split('_').slice(2).join('_')]),
      ['webhook secret of app a', a.webhookSecret],
      ['webhook secret of app b', b.webhookSecret],
      ['webhook secret body', String(b.webhookSecret).replace(/^whsec_/, '')],
      ['webhook URL token', hookToken],
      ['X-Amz-Signature', amzSignature],
      ['X-Amz-Credential', amzCredential],
      ['password parameter', password],
    ];
    for (const [label, s] of secrets) {
      expect(s.length, label).toBeGreaterThanOrEqual(16);
      expect(everything.includes(s), `${label} appears in the logs`).toBe(false);
    }

    // The requests were logged, with the credentials blanked rather than the lines dropped.
    const lines = svc.logLines();
    const urls = lines.map((l) => String(l.req?.url ?? ''));
    expect(urls).toContain('/v1/media?api_key=[redacted]');
    expect(urls).toContain('/v1/media?page=0&access_token=[redacted]&limit=5');
    expect(urls).toContain(`/v1/media/${keyB.split('_').slice(0, 2).join('_')}_[redacted]`);
    expect(lines.some((l) => l.reqId === `${keyB.split('_').slice(0, 2).join('_')}_[redacted]`)).toBe(true);
    expect(withId.headers.get('x-request-id')).toBe(keyB); // the client still gets its own id back
  });
});
