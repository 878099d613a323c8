/**
 * BlobStore drivers against real backends.
 * Real here: the local filesystem (a fresh temp directory) and an S3 server over HTTP — s3rver started
 * in this process (test/helpers/s3-server.ts), or the server at S3_ENDPOINT when set. The s3 outage and
 * DeleteObjects-error tests always use an in-process s3rver, which they stop and fault on purpose.
 */
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StorageError } from '../../src/domain/errors.js';
import { BlobDeleteError, BlobNotFoundError, type BlobStore } from '../../src/storage/blob-store.js';
import { createStore, fsStoreRoot } from '../../src/storage/create-store.js';
import { createFsStore } from '../../src/storage/fs-store.js';
import { createS3Store } from '../../src/storage/s3-store.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';
import { blobStoreContract, patternBytes, patternStream, readAll } from './blob-store.contract.js';

const MiB = 1024 * 1024;

async function tempDir(): Promise<string> {
  return mkdtemp(path.join(tmpdir(), 'mediaflow-fs-store-'));
}

/** Temp files a put leaves beside `key` (there must be none once it has settled). */
async function fsTempFiles(root: string, key: string): Promise<string[]> {
  const dir = path.join(root, path.dirname(key));
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith('.') && n.endsWith('.tmp'));
}

async function listKeys(store: BlobStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const o of store.list(prefix)) keys.push(o.key);
  return keys;
}

function s3StoreFor(server: S3TestServer, extra: { partSizeBytes?: number } = {}): BlobStore {
  return createS3Store({
    endpoint: server.endpoint,
    region: server.region,
    bucket: server.bucket,
    accessKeyId: server.accessKeyId,
    secretAccessKey: server.secretAccessKey,
    forcePathStyle: true,
    ...extra,
  });
}

/** Pending multipart uploads for `key`, asked of the server with the SDK's ListMultipartUploads. */
async function pendingUploads(server: S3TestServer, key: string): Promise<string[]> {
  const client = new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    const res = await client.send(new ListMultipartUploadsCommand({ Bucket: server.bucket, Prefix: key }));
    return (res.Uploads ?? []).filter((u) => u.Key === key).map((u) => `${u.Key ?? ''} (upload ${u.UploadId ?? ''})`);
  } finally {
    client.destroy();
  }
}

blobStoreContract('fs', async () => {
  const root = await tempDir();
  return {
    store: createStore({ driver: 'fs', dataDir: root }),
    leftovers: (key) => fsTempFiles(fsStoreRoot(root), key),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
});

blobStoreContract('s3', async () => {
  const server = await startS3Server();
  const partSizeBytes = 5 * MiB; // S3's minimum: cheaper part-boundary cases
  const store = s3StoreFor(server, { partSizeBytes });
  return {
    store,
    partSizeBytes,
    leftovers: (key) => pendingUploads(server, key),
    cleanup: async () => {
      await store.close();
      await server.dispose();
    },
  };
});

describe('fs driver specifics', () => {
  let root: string;
  let store: BlobStore;
  beforeAll(async () => {
    root = await tempDir();
    store = createFsStore({ root });
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('writes through a temp file beside the key: the key appears only when the put completes', async () => {
    const key = 'objects/app_1/med_atomic.bin';
    const body = new Readable({ read() {} });
    const done = store.put(key, body);
    body.push(patternBytes(0, 1 * MiB));
    // wait until the temp file holds the first bytes, then look while the body is stalled
    for (let i = 0; i < 200 && (await fsTempFiles(root, key)).length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    expect(await fsTempFiles(root, key)).toHaveLength(1);
    expect(await store.exists(key)).toBe(false);
    expect(await listKeys(store, 'objects/')).toEqual([]); // temp files are not listed
    body.push(null);
    await expect(done).resolves.toEqual({ bytes: 1 * MiB });
    expect(await fsTempFiles(root, key)).toEqual([]);
    expect((await stat(path.join(root, key))).size).toBe(1 * MiB);
  });

  it('prunes empty parent directories on delete, never a top-level folder or the root', async () => {
    const key = 'staging/app_prune/med_1.bin';
    await store.put(key, Readable.from([Buffer.from('x')]));
    await store.put('staging/app_keep/med_2.bin', Readable.from([Buffer.from('y')]));
    await store.delete([key]);
    await expect(stat(path.join(root, 'staging/app_prune'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await stat(path.join(root, 'staging/app_keep'))).isDirectory()).toBe(true);
    await store.delete(['staging/app_keep/med_2.bin']);
    await expect(stat(path.join(root, 'staging/app_keep'))).rejects.toMatchObject({ code: 'ENOENT' });
    // `staging/` stays: removing it made concurrent puts race to recreate it (a recursive mkdir then fails).
    expect((await stat(path.join(root, 'staging'))).isDirectory()).toBe(true);
    expect((await stat(root)).isDirectory()).toBe(true);
  });

  it('puts safely while deletes prune the same folders', async () => {
    // Three lanes each put then delete in their own app folder, over and over: every delete may
    // empty the folders a put in another lane is creating at that moment.
    const lane = async (n: number) => {
      for (let i = 0; i < 150; i++) {
        const key = `staging/app_race${n}_${i}/med.bin`;
        await store.put(key, Readable.from([Buffer.from('z')]));
        await store.delete([key]);
      }
    };
    const results = await Promise.allSettled([lane(1), lane(2), lane(3)]);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
  });

  it('maps an I/O fault to StorageError: a key whose parent path is a file', async () => {
    await store.put('objects/app_f/file.bin', Readable.from([Buffer.from('x')]));
    const err = await store.put('objects/app_f/file.bin/child.bin', Readable.from([Buffer.from('y')])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).code).toBe('STORAGE_UNAVAILABLE');
    expect(((err as StorageError).cause as NodeJS.ErrnoException).code).toMatch(/^(ENOTDIR|EEXIST)$/);
    // reading through a file is "not there", not a fault
    await expect(store.get('objects/app_f/file.bin/child.bin')).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.stat('objects/app_f/file.bin/child.bin')).toBeNull();
  });

  it('fails ping with StorageError when the root is not a writable directory', async () => {
    const file = path.join(root, 'not-a-dir');
    await writeFile(file, 'x');
    const bad = createFsStore({ root: file });
    await expect(bad.ping()).rejects.toBeInstanceOf(StorageError);
    await expect(bad.put('objects/a/b.bin', Readable.from([Buffer.from('x')]))).rejects.toBeInstanceOf(StorageError);
  });
});

describe('s3 driver specifics (in-process s3rver)', () => {
  let server: S3TestServer;
  let store: BlobStore;
  beforeAll(async () => {
    server = await startS3Server({ inProcess: true });
    store = s3StoreFor(server);
  });
  afterAll(async () => {
    await store?.close();
    await server?.dispose();
  });

  it('throws a StorageError naming the keys a 200 DeleteObjects reports as errors', async () => {
    const keys = ['objects/app_d/ok1.bin', 'objects/app_d/deny1.bin', 'objects/app_d/ok2.bin', 'objects/app_d/deny2.bin'];
    for (const k of keys) await store.put(k, Readable.from([Buffer.from(k)]));
    server.failDeletesOf?.((k) => k.includes('deny'));
    try {
      const err = await store.delete(keys).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BlobDeleteError);
      expect(err).toBeInstanceOf(StorageError);
      expect([...(err as BlobDeleteError).failedKeys].sort()).toEqual(['objects/app_d/deny1.bin', 'objects/app_d/deny2.bin']);
      expect((err as Error).message).toContain('AccessDenied');
    } finally {
      server.failDeletesOf?.(null);
    }
    expect(await store.exists('objects/app_d/ok1.bin')).toBe(false);
    expect(await store.exists('objects/app_d/deny1.bin')).toBe(true);
    await store.delete(keys);
    expect(await store.exists('objects/app_d/deny1.bin')).toBe(false);
  });

  it('names exactly the failed keys when they fall in different DeleteObjects calls sent together', async () => {
    // 3,500 keys: four calls of up to 1000, in flight at once; the denied keys sit in the first,
    // third and last. Absent keys cost a server nothing to "delete", so only the denied ones exist.
    const keys = Array.from({ length: 3500 }, (_, i) => `objects/app_p/k${String(i).padStart(5, '0')}.bin`);
    const denied = [keys[5]!, keys[2100]!, keys[3499]!];
    const spared = [keys[6]!, keys[2101]!];
    for (const k of [...denied, ...spared]) await store.put(k, Readable.from([Buffer.from(k)]));
    server.failDeletesOf?.((k) => denied.includes(k));
    try {
      const err = await store.delete(keys).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BlobDeleteError);
      expect([...(err as BlobDeleteError).failedKeys].sort()).toEqual([...denied].sort());
    } finally {
      server.failDeletesOf?.(null);
    }
    for (const k of denied) expect(await store.exists(k)).toBe(true);
    for (const k of spared) expect(await store.exists(k)).toBe(false);
    await store.delete(denied);
  });

  it('still rejects with the body’s own error when aborting the multipart upload fails too', async () => {
    const key = 'objects/app_a/abort-refused.bin';
    const bodyError = new Error('client went away');
    server.setAbortSupported?.(false); // s3rver itself answers AbortMultipartUpload with 405
    try {
      const body = patternStream(20 * MiB, { failAt: 9 * MiB, error: bodyError });
      await expect(store.put(key, body)).rejects.toBe(bodyError);
    } finally {
      server.setAbortSupported?.(true);
    }
    expect(await store.exists(key)).toBe(false);
    // the parts stay behind: on S3, a lifecycle rule (AbortIncompleteMultipartUpload) is the backstop
    expect(await pendingUploads(server, key)).toHaveLength(1);
  });

  it('fails a read whose connection drops midway with StorageError on the stream', async () => {
    const key = 'objects/app_r/cut.bin';
    await store.put(key, patternStream(24 * MiB));
    const stream = await store.get(key);
    const first = await new Promise<Buffer>((resolve, reject) => {
      stream.once('data', resolve);
      stream.once('error', reject);
    });
    stream.pause();
    expect(first.equals(patternBytes(0, first.length))).toBe(true);
    await server.stop(); // closes every connection, this response's included
    try {
      const err = await readAll(stream).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StorageError);
    } finally {
      await server.restart?.();
    }
  });

  it('fails fast with StorageError while the server is down, and recovers when it is back', async () => {
    const key = 'objects/app_o/before-outage.bin';
    await store.put(key, Readable.from([Buffer.from('still here')]));
    await server.stop();
    try {
      const attempts: Array<[string, () => Promise<unknown>]> = [
        ['ping', () => store.ping()],
        ['put', () => store.put('objects/app_o/during.bin', Readable.from([Buffer.from('x')]))],
        ['put multipart', () => store.put('objects/app_o/during-big.bin', Readable.from([patternBytes(0, 12 * MiB)]))],
        ['get', () => store.get(key)],
        ['stat', () => store.stat(key)],
        ['delete', () => store.delete([key])],
        ['list', () => listKeys(store, 'objects/')],
      ];
      for (const [op, call] of attempts) {
        const started = Date.now();
        const err = await call().catch((e: unknown) => e);
        const ms = Date.now() - started;
        expect(err, op).toBeInstanceOf(StorageError);
        expect(ms, op).toBeLessThan(5_000);
        console.info(`[s3 outage] ${op} rejected in ${ms} ms: ${(err as Error).message.slice(0, 120)}`);
      }
    } finally {
      await server.restart?.();
    }
    await expect(store.ping()).resolves.toBeUndefined();
    expect((await readAll(await store.get(key))).toString()).toBe('still here');
  });
});
