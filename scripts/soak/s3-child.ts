/**
 * The soak's object store: s3rver (test/helpers/s3-server.ts) in a process of its own, so its CPU and
 * peak RSS are its own and the orchestrator can take it down and bring it back. Prints
 * `{"endpoint",…}` on one line, then reads commands on stdin, one a line, answering each with a line:
 * `stop` (closes the listener and every connection: an outage), `start` (listens again on the same
 * port, over the same data), `stats` (requests served so far by S3 operation, as JSON). Stdin
 * closing disposes of the server and its data.
 */
import http, { type IncomingMessage } from 'node:http';
import { createInterface } from 'node:readline';
import { startS3Server } from '../../test/helpers/s3-server.js';

// Requests by S3 operation, for the report's "S3 requests per media": counted as each request
// arrives at the (only) HTTP server of this process.
const counts: Record<string, number> = {};
const operation = (req: IncomingMessage): string => {
  const u = new URL(req.url ?? '/', 'http://x');
  const q = u.searchParams;
  const object = u.pathname.split('/').filter(Boolean).length > 1;
  switch (req.method) {
    case 'PUT':
      return q.has('uploadId') ? 'UploadPart' : 'PutObject';
    case 'POST':
      return q.has('delete') ? 'DeleteObjects' : q.has('uploads') ? 'CreateMultipartUpload' : q.has('uploadId') ? 'CompleteMultipartUpload' : 'POST';
    case 'GET':
      return object ? 'GetObject' : q.has('uploads') ? 'ListMultipartUploads' : 'ListObjects';
    case 'HEAD':
      return object ? 'HeadObject' : 'HeadBucket';
    case 'DELETE':
      return q.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    default:
      return String(req.method);
  }
};
const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (this: http.Server, event: string, ...args: unknown[]) {
  if (event === 'request') {
    const op = operation(args[0] as IncomingMessage);
    counts[op] = (counts[op] ?? 0) + 1;
  }
  return (emit as (this: http.Server, event: string, ...a: unknown[]) => boolean).call(this, event, ...args);
} as typeof emit;

// s3rver 3.7.1 can throw from a file stream when a write races a DeleteObjects that prunes the
// now-empty directory (ENOENT on `<key>._S3rver_object`): seen once in a full soak, it killed the
// process and with it the store. S3 itself does not die of that: count it, log it, keep serving
// (the request in question fails and its client retries).
process.on('uncaughtException', (err) => {
  counts.internalErrors = (counts.internalErrors ?? 0) + 1;
  process.stderr.write(`s3 test server: ${String(err)}\n`);
});

const s3 = await startS3Server({ inProcess: true });
process.stdout.write(`${JSON.stringify({ endpoint: s3.endpoint, bucket: s3.bucket, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey })}\n`);
const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const cmd = line.trim();
  if (cmd === 'stats') {
    process.stdout.write(`${JSON.stringify(counts)}\n`);
    return;
  }
  const op = cmd === 'stop' ? s3.stop() : cmd === 'start' ? s3.restart!() : Promise.reject(new Error(`unknown command ${cmd}`));
  op.then(
    () => process.stdout.write(`ok ${cmd}\n`),
    (err: unknown) => process.stdout.write(`error ${String(err)}\n`),
  );
});
lines.on('close', () => {
  void s3.dispose().finally(() => process.exit(0));
});
