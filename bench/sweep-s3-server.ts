/**
 * s3rver in a process of its own for bench/sweep.bench.ts, so the sweeper's peak RSS and CPU are its
 * own: prints `{"endpoint",...}` on one line, serves until stdin closes, then removes its data.
 */
import { startS3Server } from '../test/helpers/s3-server.js';

const s3 = await startS3Server({ inProcess: true });
process.stdout.write(`${JSON.stringify({ endpoint: s3.endpoint, bucket: s3.bucket, region: s3.region, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void s3.dispose().finally(() => process.exit(0));
});
