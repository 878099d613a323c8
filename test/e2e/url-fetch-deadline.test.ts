/**
 * Issue 9 item 12 through the running service: a URL whose server sends headers and then one byte a
 * second fails the media within the fetch deadline, with one job attempt, instead of holding a
 * worker through five retries. Real Redis, PostgreSQL and fs store; the origin is a local raw TCP server.
 */
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startService, waitFor, waitSettled, type TestService } from '../helpers/service.js';

let svc: TestService;
let origin: net.Server;
let originPort = 0;
let connections = 0;
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  origin = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('data', () => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: 100000\r\n\r\n');
      const drip = setInterval(() => socket.write('x'), 1000);
      socket.on('close', () => {
        clearInterval(drip);
        sockets.delete(socket);
      });
    });
  });
  await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
  originPort = (origin.address() as AddressInfo).port;
  svc = await startService({ env: { ALLOW_PRIVATE_URLS: 'true', URL_FETCH_DEADLINE_SECONDS: '3' } });
});

afterAll(async () => {
  await svc?.stop();
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => origin?.close(() => resolve()));
});

it('a stalling origin fails the media at the fetch deadline with a clear message, on the first and only job attempt', async () => {
  const app = await svc.newApp();
  const res = await svc.call('/v1/media', {
    method: 'POST',
    key: app.apiKey,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ url: `http://127.0.0.1:${originPort}/slow.png`, kind: 'image' }),
  });
  expect(res.status).toBe(202);
  const id = ((await res.json()) as { data: { id: string } }).data.id;

  const m = await waitSettled(svc, app.apiKey, id, 20_000);
  expect(m.status).toBe('failed');
  expect(m.error).toEqual({ code: 'VALIDATION_FAILED', message: 'URL fetch did not finish within the 3 s deadline' });

  const job = await waitFor(async () => {
    const j = await svc.running.rt.queues.get('ingest').getJob(id);
    return j && (await j.getState()) === 'failed' ? j : null;
  });
  expect(job.attemptsStarted).toBe(1);
  expect(job.attemptsMade).toBe(1);
  expect(connections).toBe(1);
});
