/**
 * What must work on a Node version before its test run means anything, checked in seconds:
 * the version itself, sharp's prebuilt binary (decode, resize, encode), our ffmpeg runner (spawn
 * under prlimit, progress, ffprobe's JSON), AES-256-GCM and SHA-256 from node:crypto, and the
 * ESM-only packages loaded through require(esm) by fastify's plugins. scripts/test-node24.sh runs it
 * before the suite; `node --import tsx scripts/node24-check.ts` runs it alone.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import sharp from 'sharp';
import { runFfmpeg, runFfprobe } from '../src/pipeline/ffmpeg/run.js';

const want = Number(process.env.EXPECT_NODE_MAJOR ?? 0);
const major = Number(process.versions.node.split('.')[0]);
const lines: string[] = [];
const check = async (what: string, fn: () => Promise<string> | string): Promise<void> => {
  try {
    lines.push(`ok   ${what}: ${await fn()}`);
  } catch (err) {
    lines.push(`FAIL ${what}: ${err instanceof Error ? err.message : String(err)}`);
  }
};

await check('node', () => {
  if (want && major !== want) throw new Error(`running ${process.version}, expected ${want}.x`);
  return `${process.version} (${process.execPath})`;
});
await check('sharp', async () => {
  const jpeg = await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 10, g: 120, b: 200 } } }).jpeg().toBuffer();
  const out = await sharp(jpeg).rotate().resize(320).webp().toBuffer({ resolveWithObject: true });
  return `libvips ${sharp.versions.vips}, 640x480 JPEG → ${out.info.width}x${out.info.height} WEBP`;
});
await check('ffmpeg runner', async () => {
  let progressed = 0;
  const wav: Buffer[] = [];
  await runFfmpeg({
    args: ['-nostdin', '-f', 'lavfi', '-i', 'sine=f=440:d=2', '-f', 'wav', 'pipe:1'],
    timeoutMs: 30_000,
    onStdout: (c) => wav.push(c),
    onProgressTime: () => progressed++,
    rlimits: { addressSpaceBytes: 2 * 2 ** 30, cpuSeconds: 30 },
  });
  const probe = await runFfprobe({ args: ['-v', 'error', '-print_format', 'json', '-show_format', '-f', 'lavfi', 'sine=f=440:d=1'], timeoutMs: 30_000, collectStdoutBytes: 1 << 20 });
  const format = (JSON.parse(probe.stdout.toString('utf8')) as { format?: { format_name?: string } }).format?.format_name;
  return `ffmpeg under prlimit wrote ${Buffer.concat(wav).length} bytes of WAV (${progressed} progress reports); ffprobe said ${format}`;
});
await check('crypto', () => {
  const c = createCipheriv('aes-256-gcm', randomBytes(32), randomBytes(12));
  const sealed = Buffer.concat([c.update(randomBytes(1 << 20)), c.final()]);
  return `AES-256-GCM sealed ${sealed.length} bytes (tag ${c.getAuthTag().length}), SHA-256 ${createHash('sha256').update(sealed).digest('hex').slice(0, 12)}…`;
});
await check('require(esm)', () => {
  const req = createRequire(import.meta.url);
  req('fastify');
  req('@fastify/swagger');
  return 'fastify and @fastify/swagger load';
});

process.stdout.write(`${lines.join('\n')}\n`);
process.exitCode = lines.some((l) => l.startsWith('FAIL')) ? 1 : 0;
