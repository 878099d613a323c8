import { Readable } from 'node:stream';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startS3Server } from './test/helpers/s3-server.ts';
import { createS3Store } from './src/storage/s3-store.ts';
const server = await startS3Server();
const store = createS3Store({ endpoint: server.endpoint, region: 'us-east-1', bucket: server.bucket, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER', forcePathStyle: true });
const client = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, requestChecksumCalculation: 'WHEN_REQUIRED' });
async function bench(label: string, n: number, conc: number, fn: (i: number) => Promise<unknown>) {
  let next = 0; const t = performance.now(); const cpu = process.cpuUsage();
  await Promise.all(Array.from({ length: conc }, async () => { while (next < n) await fn(next++); }));
  const c = process.cpuUsage(cpu);
  console.log(label, (performance.now() - t).toFixed(0), 'ms', 'cpu', ((c.user + c.system) / 1000).toFixed(0), 'ms');
}
await bench('raw put x500 c16', 500, 16, (i) => client.send(new PutObjectCommand({ Bucket: server.bucket, Key: `raw/${i % 7}/k${i}`, Body: Buffer.from('x') })));
await bench('store put x500 c16', 500, 16, (i) => store.put(`st/${i % 7}/k${i}`, Readable.from([Buffer.from('x')])));
await bench('store put x500 c4', 500, 4, (i) => store.put(`st4/${i % 7}/k${i}`, Readable.from([Buffer.from('x')])));
await bench('raw put x500 c1', 500, 1, (i) => client.send(new PutObjectCommand({ Bucket: server.bucket, Key: `raw1/${i % 7}/k${i}`, Body: Buffer.from('x') })));
await store.close(); client.destroy(); await server.dispose();
