/**
 * An S3 server for the integration tier.
 *
 * By default: s3rver 3.7.1 started in this process on 127.0.0.1 and a random free port, over a fresh
 * temporary directory, with one bucket, logging nothing. With `S3_ENDPOINT` set (and `S3_BUCKET`,
 * `S3_REGION`, `S3_ACCESS_KEY_ID`/`S3_SECRET_ACCESS_KEY` or the AWS_* variables) that server is used
 * instead and nothing is started. Where a Docker engine exists, MinIO is the closer stand-in for S3:
 * run it from `docker-compose.yml` (or testcontainers' MinIO module, imported lazily as STACK.md
 * gotcha 9 says) and point `S3_ENDPOINT` at it.
 *
 * s3rver quirks met here (3.7.1), and what this helper does about them:
 * - ListObjectsV2 answers 500 as soon as a listing is truncated (more than 1000 keys): its continuation
 *   token is DES-encrypted and OpenSSL 3 (Node >= 17) has no DES without the legacy provider. This
 *   helper serves ListObjectsV2 itself over s3rver's store (`store.listObjects`), with a plain token.
 *   s3rver walks its directory tree in name order, which matches S3's key order for keys like ours but
 *   not in general (`a.x` vs `a/b`).
 * - AbortMultipartUpload (`DELETE ?uploadId`) answers 405 MethodNotAllowed and ListMultipartUploads
 *   (`GET ?uploads`) answers 501 NotImplemented, so pending uploads could neither be cleaned up nor
 *   seen. This helper serves those two operations itself, in front of s3rver, over s3rver's own upload
 *   directory (`<dir>/<bucket>/._S3rver_uploads/<uploadId>/{key,metadata,1,2,...}`): the SDK's real
 *   commands go over HTTP, and the driver's abort is exercised end to end. `setAbortSupported(false)`
 *   gives s3rver's own 405 back, to test a failing abort.
 * - `Range: bytes=0-0` returns the whole object (its parser reads end 0 as "no end"): the s3 driver
 *   trims what a server sends to the range it asked for.
 * - A range on an empty object answers 206 with an empty body instead of 416.
 * - SigV4 signatures are not verified; only the access key id must be `S3RVER`.
 * - DeleteObjects never reports per-key `<Error>`s; `failDeletesOf` injects them (below) so the
 *   driver's handling of a 200 carrying errors can be tested.
 * - Objects are written in place (not via a temp file) and a PUT resolves when the last byte has
 *   passed its hasher, not when the file is flushed; reads right after a write have not been seen
 *   to be short here, but S3 itself is the reference for read-after-write.
 * - DeleteObjects deletes its keys concurrently and prunes empty directories with unguarded
 *   readdirSync/rmdir (read in its code, not seen to fail here): a 500 from it would be retried by the
 *   SDK, and the retry would find the keys gone.
 * Every other request goes to s3rver unchanged.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface S3TestServer {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** True for the in-process s3rver; false for an external `S3_ENDPOINT`. */
  inProcess: boolean;
  /** Closes the listener and every open connection (a real outage); data is kept for `restart`. No-op for an external server. */
  stop(): Promise<void>;
  /** Listens again on the same port, over the same data. In-process only. */
  restart?(): Promise<void>;
  /** Stops and removes the data directory. */
  dispose(): Promise<void>;
  /**
   * Fault injection (in-process only): DeleteObjects answers 200 with an `<Error>` (AccessDenied) for
   * each key the predicate accepts, and leaves those objects in place. `null` turns it off.
   */
  failDeletesOf?(predicate: ((key: string) => boolean) | null): void;
  /** In-process only: `false` lets AbortMultipartUpload reach s3rver, which refuses it (405), as a failing abort. */
  setAbortSupported?(supported: boolean): void;
}

interface S3rverLike {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  configureBuckets(): Promise<unknown>;
  store: {
    deleteObject(bucket: string, key: string): Promise<void>;
    existsObject(bucket: string, key: string): Promise<boolean>;
    listObjects(
      bucket: string,
      opts: { prefix: string; delimiter: string; startAfter: string; maxKeys: number },
    ): Promise<{
      objects: Array<{ key: string; size: number; lastModifiedDate: Date; metadata: Record<string, unknown> }>;
      commonPrefixes: string[];
      isTruncated: boolean;
    }>;
  };
  logger: { close(): void };
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverLike;

const UPLOADS_DIR = '._S3rver_uploads';

export async function startS3Server(opts: { inProcess?: boolean } = {}): Promise<S3TestServer> {
  const external = process.env.S3_ENDPOINT;
  if (external && !opts.inProcess) {
    const noop = async (): Promise<void> => {};
    return {
      endpoint: external,
      bucket: process.env.S3_BUCKET ?? 'mediaflow-test',
      region: process.env.S3_REGION ?? 'us-east-1',
      accessKeyId: process.env.S3_ACCESS_KEY_ID ?? process.env.AWS_ACCESS_KEY_ID ?? 'minioadmin',
      secretAccessKey: process.env.S3_SECRET_ACCESS_KEY ?? process.env.AWS_SECRET_ACCESS_KEY ?? 'minioadmin',
      inProcess: false,
      stop: noop,
      dispose: noop,
    };
  }

  // s3rver ships no types; load it through require with the small shape used here
  const S3rver = createRequire(import.meta.url)('s3rver') as S3rverCtor;
  const directory = await mkdtemp(path.join(tmpdir(), 'mediaflow-s3rver-'));
  const bucket = `mf-test-${randomBytes(4).toString('hex')}`;
  const s3rver = new S3rver({ directory, silent: true, configureBuckets: [{ name: bucket }], vhostBuckets: false });
  await s3rver.configureBuckets();
  const s3rverHandler = s3rver.callback();
  const uploadsRoot = path.join(directory, bucket, UPLOADS_DIR);
  let failDeletes: ((key: string) => boolean) | null = null;
  let abortSupported = true;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const [, reqBucket = '', ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    if (reqBucket === bucket) {
      if (req.method === 'DELETE' && key && url.searchParams.has('uploadId') && abortSupported) {
        return abortMultipartUpload(res, key, url.searchParams.get('uploadId') ?? '');
      }
      if (req.method === 'GET' && !key && url.searchParams.has('uploads')) {
        return listMultipartUploads(res, url.searchParams.get('prefix') ?? '');
      }
      if (req.method === 'GET' && !key && url.searchParams.get('list-type') === '2') {
        return listObjectsV2(res, url.searchParams);
      }
      if (req.method === 'POST' && !key && url.searchParams.has('delete') && failDeletes) {
        return deleteObjectsWithFaults(req, res, failDeletes);
      }
    }
    s3rverHandler(req, res);
  }

  async function abortMultipartUpload(res: ServerResponse, key: string, uploadId: string): Promise<void> {
    const dir = path.join(uploadsRoot, path.basename(uploadId));
    const storedKey = await readFile(path.join(dir, 'key'), 'utf8').catch(() => null);
    if (!/^[0-9a-f]+$/.test(uploadId) || storedKey !== key) {
      return xml(res, 404, `<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message><UploadId>${esc(uploadId)}</UploadId></Error>`);
    }
    await rm(dir, { recursive: true, force: true });
    res.writeHead(204).end();
  }

  async function listMultipartUploads(res: ServerResponse, prefix: string): Promise<void> {
    const ids = await readdir(uploadsRoot).catch(() => [] as string[]);
    const uploads: string[] = [];
    for (const id of ids) {
      const dir = path.join(uploadsRoot, id);
      const key = await readFile(path.join(dir, 'key'), 'utf8').catch(() => null);
      if (key === null || !key.startsWith(prefix)) continue;
      const initiated = (await stat(dir)).birthtime.toISOString();
      uploads.push(`<Upload><Key>${esc(key)}</Key><UploadId>${id}</UploadId><Initiated>${initiated}</Initiated></Upload>`);
    }
    xml(
      res,
      200,
      `<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${bucket}</Bucket>` +
        `<Prefix>${esc(prefix)}</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${uploads.join('')}</ListMultipartUploadsResult>`,
    );
  }

  /** ListObjectsV2 over s3rver's own store, with a continuation token Node 17+ can make (see the header). */
  async function listObjectsV2(res: ServerResponse, q: URLSearchParams): Promise<void> {
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') ?? '';
    const token = q.get('continuation-token');
    const startAfter = token ? Buffer.from(token, 'base64url').toString('utf8') : (q.get('start-after') ?? '');
    const maxKeys = Math.min(1000, Number(q.get('max-keys') ?? 1000));
    const result = await s3rver.store.listObjects(bucket, { prefix, delimiter, startAfter, maxKeys });
    const last = result.objects[result.objects.length - 1];
    const contents = result.objects.map(
      (o) =>
        `<Contents><Key>${esc(o.key)}</Key><LastModified>${o.lastModifiedDate.toISOString()}</LastModified>` +
        `<ETag>${esc(String(o.metadata.etag ?? ''))}</ETag><Size>${o.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
    );
    const prefixes = result.commonPrefixes.map((p) => `<CommonPrefixes><Prefix>${esc(p)}</Prefix></CommonPrefixes>`);
    xml(
      res,
      200,
      `<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${bucket}</Name><Prefix>${esc(prefix)}</Prefix>` +
        `<KeyCount>${result.objects.length}</KeyCount><MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${result.isTruncated}</IsTruncated>` +
        (token ? `<ContinuationToken>${esc(token)}</ContinuationToken>` : '') +
        (result.isTruncated && last ? `<NextContinuationToken>${Buffer.from(last.key).toString('base64url')}</NextContinuationToken>` : '') +
        contents.join('') +
        prefixes.join('') +
        `</ListBucketResult>`,
    );
  }

  async function deleteObjectsWithFaults(req: IncomingMessage, res: ServerResponse, fail: (key: string) => boolean): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const keys = [...body.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => unesc(m[1] ?? ''));
    const quiet = /<Quiet>true<\/Quiet>/.test(body);
    const parts: string[] = [];
    for (const key of keys) {
      if (fail(key)) {
        parts.push(`<Error><Key>${esc(key)}</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`);
        continue;
      }
      if (await s3rver.store.existsObject(bucket, key)) await s3rver.store.deleteObject(bucket, key);
      if (!quiet) parts.push(`<Deleted><Key>${esc(key)}</Key></Deleted>`);
    }
    xml(res, 200, `<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${parts.join('')}</DeleteResult>`);
  }

  let server: Server | undefined;
  const sockets = new Set<Socket>();
  let port = 0;

  async function listen(): Promise<void> {
    const srv = createServer((req, res) => {
      handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) xml(res, 500, `<Error><Code>InternalError</Code><Message>${esc(String(err))}</Message></Error>`);
        else res.destroy();
      });
    });
    srv.on('connection', (socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => {
        srv.off('error', reject);
        resolve();
      });
    });
    port = (srv.address() as AddressInfo).port;
    server = srv;
  }

  async function stop(): Promise<void> {
    const srv = server;
    if (!srv) return;
    server = undefined;
    const closed = new Promise<void>((resolve) => srv.close(() => resolve()));
    srv.closeAllConnections();
    for (const s of sockets) s.destroy(); // also connections upgraded or mid-request
    await closed;
  }

  await listen();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    region: 'us-east-1',
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    inProcess: true,
    stop,
    restart: async () => {
      await stop();
      await listen();
    },
    async dispose() {
      await stop();
      s3rver.logger.close();
      await rm(directory, { recursive: true, force: true });
    },
    failDeletesOf(predicate) {
      failDeletes = predicate;
    },
    setAbortSupported(supported) {
      abortSupported = supported;
    },
  };
}

function xml(res: ServerResponse, status: number, body: string): void {
  const payload = `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(payload) }).end(payload);
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const unesc = (s: string): string =>
  s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
