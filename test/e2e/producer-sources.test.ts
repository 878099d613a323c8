/**
 * What a producer's job may read (issue 9, item 1): a `storage` source only under its own app's
 * inbox, a `file` source only under FILE_SOURCE_ROOT (symlinks followed, then checked), and the
 * development master key never inside the store. Real Redis, PostgreSQL, fs store and sharp; the
 * jobs go through the producer module exactly as a message pipeline would enqueue them.
 */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueMedia, type EnqueueInput } from '../../src/queue/producer.js';
import { fsStoreRoot } from '../../src/storage/create-store.js';
import { minimalPdf, sha256, smallJpeg } from '../helpers/media.js';
import { startService, waitSettled, type TestService } from '../helpers/service.js';

let locked: TestService; // no FILE_SOURCE_ROOT, and a generated development key
let rooted: TestService; // FILE_SOURCE_ROOT set
let lockedApp: { appId: string; apiKey: string };
let rootedApp: { appId: string; apiKey: string };
let otherApp: { appId: string; apiKey: string };
let root = '';
let outside = '';

async function enqueueTo(svc: TestService, input: EnqueueInput): Promise<Record<string, any>> {
  const { mediaId } = await enqueueMedia(input, { redisUrl: svc.config.REDIS_URL, prefix: svc.config.QUEUE_PREFIX });
  const key = svc === locked ? lockedApp.apiKey : input.appId === otherApp?.appId ? otherApp.apiKey : rootedApp.apiKey;
  return waitSettled(svc, key, mediaId);
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'mf-file-root-'));
  outside = await mkdtemp(path.join(os.tmpdir(), 'mf-file-outside-'));
  // Without MASTER_KEY the service generates its development key into DATA_DIR, as `npm start` does.
  locked = await startService({ env: { MASTER_KEY: '' } });
  rooted = await startService({ env: { FILE_SOURCE_ROOT: root } });
  lockedApp = await locked.newApp();
  rootedApp = await rooted.newApp();
  otherApp = await rooted.newApp();
});

afterAll(async () => {
  await locked?.stop();
  await rooted?.stop();
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

describe('storage sources', () => {
  it('keeps the development master key outside the store root, and no job can name it', async () => {
    const keyFile = path.join(locked.config.DATA_DIR, 'master.key');
    expect((await readFile(keyFile, 'utf8')).trim()).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(path.relative(fsStoreRoot(locked.config.DATA_DIR), keyFile).startsWith('..')).toBe(true);
    for (const key of ['master.key', '../master.key', 'inbox/../master.key', `inbox/${lockedApp.appId}/../../master.key`]) {
      const m = await enqueueTo(locked, { appId: lockedApp.appId, kind: 'document', source: { type: 'storage', key } });
      expect(m.status, key).toBe('failed');
      expect(m.error.code, key).toBe('VALIDATION_FAILED');
      expect(m.error.message, key).toContain(`inbox/${lockedApp.appId}/`);
    }
  });

  it("reads its own app's inbox, never another app's, nor stored media", async () => {
    const jpeg = await smallJpeg(80, 60, 11);
    await rooted.running.rt.store.put(`inbox/${rootedApp.appId}/campaign/photo.jpg`, Readable.from([jpeg]));
    await rooted.running.rt.store.put(`inbox/${otherApp.appId}/secret.pdf`, Readable.from([minimalPdf('other app')]));

    const own = await enqueueTo(rooted, { appId: rootedApp.appId, kind: 'image', source: { type: 'storage', key: `inbox/${rootedApp.appId}/campaign/photo.jpg` } });
    expect(own.status).toBe('ready');
    expect(own.originalName).toBe('photo.jpg');

    const theirs = await enqueueTo(rooted, { appId: rootedApp.appId, kind: 'document', source: { type: 'storage', key: `inbox/${otherApp.appId}/secret.pdf` } });
    expect(theirs.status).toBe('failed');
    expect(theirs.error.code).toBe('VALIDATION_FAILED');

    // A stored (sealed) object of another media, and a staging object that is not this job's own.
    const { rows } = await rooted.running.rt.pool.query<{ storage_key: string }>('SELECT storage_key FROM media WHERE id = $1', [own.id]);
    for (const key of [rows[0]!.storage_key, `staging/${rootedApp.appId}/med_someoneelse.bin`]) {
      const m = await enqueueTo(rooted, { appId: rootedApp.appId, kind: 'image', source: { type: 'storage', key } });
      expect(m.status, key).toBe('failed');
      expect(m.error.code, key).toBe('VALIDATION_FAILED');
    }
  });
});

describe('file sources', () => {
  it('are refused while FILE_SOURCE_ROOT is unset, even for a readable file', async () => {
    const m = await enqueueTo(locked, { appId: lockedApp.appId, kind: 'document', source: { type: 'file', path: '/etc/passwd' } });
    expect(m.status).toBe('failed');
    expect(m.error.code).toBe('VALIDATION_FAILED');
    expect(m.error.message).toContain('FILE_SOURCE_ROOT');
  });

  it('read a file under the root, and nothing that resolves outside it', async () => {
    const jpeg = await smallJpeg(64, 48, 3);
    await writeFile(path.join(root, 'ok.jpg'), jpeg);
    const ok = await enqueueTo(rooted, { appId: rootedApp.appId, kind: 'image', source: { type: 'file', path: path.join(root, 'ok.jpg') } });
    expect(ok.status).toBe('ready');
    const dl = await rooted.call(`/v1/media/${ok.id}/content`, { key: rootedApp.apiKey });
    expect(sha256(Buffer.from(await dl.arrayBuffer()))).toBe(ok.checksum.value);

    // A text file outside the root would be accepted as a document if it were read.
    await writeFile(path.join(outside, 'secret.txt'), 'the contents of a file outside the root\n');
    await symlink(path.join(outside, 'secret.txt'), path.join(root, 'link.txt'));
    await symlink(outside, path.join(root, 'dir-link'));
    await mkdir(path.join(root, 'sub'));
    const refused = [
      '/etc/passwd',
      path.join(root, '..', path.basename(outside), 'secret.txt'),
      path.join(root, 'link.txt'),
      path.join(root, 'dir-link', 'secret.txt'),
      path.join(root, 'sub'),
      'relative/path.txt',
    ];
    for (const p of refused) {
      const m = await enqueueTo(rooted, { appId: rootedApp.appId, kind: 'document', source: { type: 'file', path: p } });
      expect(m.status, p).toBe('failed');
      expect(m.error.code, p).toBe('VALIDATION_FAILED');
    }
    // A symlink that stays inside the root is followed.
    await symlink(path.join(root, 'ok.jpg'), path.join(root, 'alias.jpg'));
    const alias = await enqueueTo(rooted, { appId: rootedApp.appId, kind: 'image', source: { type: 'file', path: path.join(root, 'alias.jpg') } });
    expect(alias.status).toBe('ready');
  });
});
