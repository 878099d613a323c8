/**
 * Normalization benchmarks, each against its baseline in the same run (the machine is shared and
 * noisy: read the ratios, not the absolute figures):
 *   1. image normalization vs raw sharp doing the same operations on the same generated corpus;
 *   2. normalize() of a compliant clip (probe, remux + poster) vs a transcode of the same clip; a
 *      5 s AAC voice note → Opus + waveform vs the ffmpeg CLI with the same arguments; fitting a
 *      phone's 50 MB clip into 16 MB vs a plain x264 veryfast encode of it;
 *   3. the ffmpeg wrapper (runFfmpeg) vs the ffmpeg CLI with the same arguments;
 *   4. peak RSS per kind, each in a fresh process;
 *   5. image normalization in-process vs the same call in a persistent child process (the price of
 *      isolating libvips from the worker; see the doc comment of src/pipeline/normalize-image.ts).
 * Prints markdown tables. Run: node --import tsx bench/normalize.bench.ts [images|video|voice|fit|rss|child …]
 */
import { execFile, fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import sharp from 'sharp';
import type { MediaKind } from '../src/domain/kinds.js';
import { silentLogger } from '../src/log.js';
import { buildVideoArgs, buildVoiceNoteRunArgs } from '../src/pipeline/ffmpeg/args.js';
import { VIDEO_LIMITS, VOICE_NOTE_LIMITS } from '../src/pipeline/ffmpeg/av-limits.js';
import { decideVoiceNote } from '../src/pipeline/ffmpeg/decide-audio.js';
import { decideVideo } from '../src/pipeline/ffmpeg/decide-video.js';
import { probeMedia } from '../src/pipeline/ffmpeg/probe-media.js';
import { runFfmpeg } from '../src/pipeline/ffmpeg/run.js';
import { normalize } from '../src/pipeline/normalize.js';
import type { NormalizeOutput } from '../src/pipeline/normalize-types.js';
import { fixture } from '../test/fixtures/generate.js';
import { grainyPhoto24mp, noisyAlphaPng, phonePhoto24mp } from '../test/fixtures/noisy-images.js';

const exec = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const FFMPEG = process.env.FFMPEG_PATH || 'ffmpeg';

function table(title: string, head: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>): string => `| ${cells.join(' | ')} |`;
  return [`### ${title}`, '', line(head), line(head.map(() => '---')), ...rows.map(line), ''].join('\n');
}

const f1 = (n: number): string => n.toFixed(1);
const f2 = (n: number): string => n.toFixed(2);

async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const r = await fn();
  return [performance.now() - t, r];
}

async function ffmpegCli(args: string[]): Promise<void> {
  await exec(FFMPEG, ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args], { maxBuffer: 1 << 24 });
}

// ------------------------------------------------------------------------------------------------
// 1. Images

interface CorpusItem {
  name: string;
  path: string;
  mime: string;
}

async function imageCorpus(dir: string): Promise<CorpusItem[]> {
  const png12 = await fixture('png12mp');
  const jpeg12 = join(dir, 'photo-12mp.jpg');
  await sharp(png12).jpeg({ quality: 90 }).toFile(jpeg12);
  const jpeg12p3 = join(dir, 'photo-12mp-p3.jpg');
  await sharp(png12).withIccProfile('p3').jpeg({ quality: 90 }).toFile(jpeg12p3);
  const webp1080 = join(dir, 'frame-1080p.webp');
  await sharp(png12).resize(1920, 1080).webp({ quality: 85 }).toFile(webp1080);
  const jpegSmall = join(dir, 'photo-640x480.jpg');
  await sharp(png12).resize(640, 480).jpeg({ quality: 85 }).toFile(jpegSmall);
  return [
    { name: '12 MP JPEG', path: jpeg12, mime: 'image/jpeg' },
    { name: '12 MP JPEG, Display P3 ICC', path: jpeg12p3, mime: 'image/jpeg' },
    { name: '12 MP PNG (opaque)', path: png12, mime: 'image/png' },
    { name: '5000x2500 JPEG (resized)', path: await fixture('jpegWide'), mime: 'image/jpeg' },
    { name: '1080p WEBP', path: webp1080, mime: 'image/webp' },
    { name: '640x480 JPEG', path: jpegSmall, mime: 'image/jpeg' },
    { name: '300x200 PNG with alpha', path: await fixture('pngAlpha'), mime: 'image/png' },
    { name: '320x240 GIF, 20 frames', path: await fixture('gifAnimated'), mime: 'image/gif' },
  ];
}

/** What raw sharp would do for the same output: orient, fit 4096, sRGB, same encoder and quality. */
async function rawSharp(item: CorpusItem, outMime: string, out: string): Promise<void> {
  const animated = outMime === 'image/gif' || (outMime === 'image/webp' && item.mime === 'image/webp' && item.name.includes('frames'));
  let img = sharp(item.path, { animated }).autoOrient().resize({ width: 4096, height: 4096, fit: 'inside', withoutEnlargement: true }).toColourspace('srgb');
  if (outMime === 'image/jpeg') img = img.jpeg({ quality: 82, mozjpeg: false });
  else if (outMime === 'image/png') img = img.png({ compressionLevel: 6, adaptiveFiltering: false });
  else if (outMime === 'image/gif') img = img.gif({ effort: 4 });
  else img = img.webp({ quality: 80, effort: 4 });
  await img.toFile(out);
}

async function benchImages(dir: string): Promise<string> {
  const corpus = await imageCorpus(dir);
  const rows: Array<Array<string | number>> = [];
  let oursTotal = 0;
  let rawTotal = 0;
  let runsTotal = 0;
  for (const item of corpus) {
    const scratchDir = await mkdtemp(join(dir, 'img-'));
    const ours = (): Promise<unknown> => normalize({ inputPath: item.path, sniffedMime: item.mime, kind: 'image', scratchDir, log: silentLogger });
    const first = await normalize({ inputPath: item.path, sniffedMime: item.mime, kind: 'image', scratchDir, log: silentLogger });
    const outBytes = (await stat(first.outputPath)).size;
    const raw = (): Promise<void> => rawSharp(item, first.mimeType, join(scratchDir, `raw.${first.mimeType.split('/')[1]}`));
    await raw(); // warm-up, as `first` was for ours
    let oursMs = 0;
    let rawMs = 0;
    let runs = 0;
    // Interleaved, so drift in machine load hits both sides alike; at least 3 runs and 1.5 s each.
    while (runs < 3 || oursMs + rawMs < 1500) {
      oursMs += (await time(ours))[0];
      rawMs += (await time(raw))[0];
      runs += 1;
    }
    oursTotal += oursMs / runs;
    rawTotal += rawMs / runs;
    runsTotal += runs;
    rows.push([item.name, first.mimeType.replace('image/', ''), `${(outBytes / 1e3).toFixed(0)} KB`, runs, f1((runs * 1000) / oursMs), f1((runs * 1000) / rawMs), f2(rawMs / oursMs)]);
  }
  // Corpus throughput: each image once, at its mean time.
  rows.push(['**corpus, each image once**', '', '', runsTotal, f1((corpus.length * 1000) / oursTotal), f1((corpus.length * 1000) / rawTotal), f2(rawTotal / oursTotal)]);
  return table(
    `Images: normalize() vs raw sharp doing the same ops (orient, fit 4096, sRGB, same encoder), 1 job at a time, images/s (sharp.concurrency()=${sharp.concurrency()})`,
    ['input', 'stored as', 'size', 'runs', 'ours img/s', 'raw sharp img/s', 'ours / raw'],
    rows,
  );
}

// ------------------------------------------------------------------------------------------------
// 2 and 3. Video

async function loadAverage(): Promise<string> {
  return (await readFile('/proc/loadavg', 'latin1')).split(' ').slice(0, 3).join(' ');
}

/**
 * CPU used so far, ms: this process plus every child it has reaped (ffmpeg, ffprobe), from
 * /proc/self/stat's cutime and cstime, in USER_HZ ticks (100 per second on Linux: 10 ms steps, so
 * the rows below sum several runs). On a loaded machine wall time mostly measures the queue for a
 * core; CPU is what the work costs.
 */
function cpuMs(): number {
  const self = process.cpuUsage();
  const stat = readFileSync('/proc/self/stat', 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (self.user + self.system) / 1000 + ((Number(fields[13]) + Number(fields[14])) * 1000) / 100;
}

/** Sums of wall and CPU time over repeated runs of one operation. */
class Tally {
  wallMs = 0;
  cpuMs = 0;
  runs = 0;
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const c = cpuMs();
    const t = performance.now();
    const r = await fn();
    this.wallMs += performance.now() - t;
    this.cpuMs += cpuMs() - c;
    this.runs += 1;
    return r;
  }
  get wall(): number {
    return this.wallMs / this.runs;
  }
  get cpu(): number {
    return this.cpuMs / this.runs;
  }
}

/**
 * Issue 12's compliant-clip row: normalize() of a compliant 10 s 720p clip (everything it runs)
 * against a transcode of the same clip, interleaved so load drift hits both sides alike. Goal:
 * normalize / transcode ≤ 0.05.
 */
async function benchVideo(dir: string): Promise<string> {
  // A compliant 720p H.264/AAC clip, so the same file can be remuxed or transcoded.
  const clip = join(dir, 'clip-720p-10s.mp4');
  await ffmpegCli([
    '-f', 'lavfi', '-i', 'testsrc2=s=1280x720:r=30:d=10', '-f', 'lavfi', '-i', 'sine=f=440:r=48000:d=10',
    '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '23', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '128k', '-f', 'mp4', clip,
  ]);
  const clipSeconds = 10;
  const probe = await probeMedia({ path: clip, demuxer: 'mov' });
  const sizeBytes = (await stat(clip)).size;
  const source = { path: clip, demuxer: 'mov', threads: VIDEO_LIMITS.threads };
  const remux = decideVideo(probe, { durationMs: probe.durationMs, sizeBytes }, VIDEO_LIMITS);
  const encode = decideVideo(probe, { durationMs: probe.durationMs, sizeBytes, forceEncode: true }, VIDEO_LIMITS);
  if (remux.action === 'reject' || encode.action === 'reject') throw new Error('bench clip was rejected');

  const s = await mkdtemp(join(dir, 'vid-'));
  const ours = async (): Promise<NormalizeOutput> =>
    normalize({ inputPath: clip, sniffedMime: 'video/mp4', kind: 'video', scratchDir: await mkdtemp(join(s, 'n-')), log: silentLogger });
  const remuxArgs = buildVideoArgs(source, remux, VIDEO_LIMITS.maxDurationMs, join(s, 'remux.mp4'));
  const encodeArgs = buildVideoArgs(source, encode, VIDEO_LIMITS.maxDurationMs, join(s, 'encode.mp4'));

  const load = await loadAverage();
  const normOut = await ours(); // warm-up: page cache, lazy imports
  const norm = new Tally();
  const wrapRemux = new Tally();
  const cliRemux = new Tally();
  const wrapEncode = new Tally();
  const reps = 6;
  for (let i = 0; i < reps; i++) {
    // Three transcodes spread over the loop (first, middle, last), the cheap runs between them.
    if (i % 3 === 0 || i === reps - 1) await wrapEncode.run(() => runFfmpeg({ args: encodeArgs, timeoutMs: 600_000, onProgressTime: () => undefined }));
    await norm.run(ours);
    await wrapRemux.run(() => runFfmpeg({ args: remuxArgs, timeoutMs: 60_000, onProgressTime: () => undefined }));
    await cliRemux.run(() => exec(FFMPEG, ['-y', ...remuxArgs]));
  }
  const encodedBytes = (await stat(join(s, 'encode.mp4'))).size;
  const cliEncode = new Tally();
  await cliEncode.run(() => exec(FFMPEG, ['-y', ...encodeArgs]));
  const loadAfter = await loadAverage();
  const enc = wrapEncode;

  const a = table(
    `Video: normalize() of a compliant ${clipSeconds} s 1280x720 H.264/AAC clip (${(sizeBytes / 1e6).toFixed(1)} MB) vs a transcode of it; means of ${norm.runs} normalize() and ${enc.runs} transcodes, interleaved; CPU = this process + the tools; load average ${load} → ${loadAfter}`,
    ['operation', 'wall ms', 'CPU ms', 'x realtime', 'output', 'wall / transcode', 'CPU / transcode'],
    [
      [
        `normalize(): ${normOut.transform}, with ${normOut.variants.map((v) => v.name).join(', ') || 'no variant'} (everything it runs)`,
        f1(norm.wall),
        f1(norm.cpu),
        f1((clipSeconds * 1000) / norm.wall),
        `${((await stat(normOut.outputPath)).size / 1e6).toFixed(1)} MB`,
        `**${f2(norm.wall / enc.wall)}** (goal ≤ 0.05)`,
        f2(norm.cpu / enc.cpu),
      ],
      ['remux alone (runFfmpeg)', f1(wrapRemux.wall), f1(wrapRemux.cpu), f1((clipSeconds * 1000) / wrapRemux.wall), 'copy', f2(wrapRemux.wall / enc.wall), f2(wrapRemux.cpu / enc.cpu)],
      [`transcode (x264 ${VIDEO_LIMITS.preset} crf ${VIDEO_LIMITS.crf} + AAC, runFfmpeg)`, f1(enc.wall), f1(enc.cpu), f1((clipSeconds * 1000) / enc.wall), `${(encodedBytes / 1e6).toFixed(1)} MB`, '1.00', '1.00'],
    ],
  );
  const b = table(
    'Wrapper overhead: runFfmpeg (spawn, -progress on fd 3, -timelimit, stderr tail) vs the ffmpeg CLI, same arguments',
    ['run', 'runFfmpeg ms', 'CLI ms', 'wrapper / CLI'],
    [
      [`remux, mean of ${wrapRemux.runs}`, f1(wrapRemux.wall), f1(cliRemux.wall), f2(wrapRemux.wall / cliRemux.wall)],
      [`transcode, mean of ${enc.runs} vs 1 CLI run`, f1(enc.wall), f1(cliEncode.wall), f2(enc.wall / cliEncode.wall)],
    ],
  );
  return `${a}\n${b}`;
}

// ------------------------------------------------------------------------------------------------
// 2a. Voice note

/**
 * normalize() of a 5 s AAC voice note (mono M4A, as phones record them) → Opus with its waveform,
 * against the ffmpeg CLI running the very arguments normalize() runs (Opus out, PCM tap on
 * stdout), interleaved: the pipeline's share of issue 12's voice-note row (CLI / normalize ≥ 0.8).
 */
async function benchVoiceNote(dir: string): Promise<string> {
  const note = join(dir, 'voice-5s.m4a');
  // A syllable-like envelope over a voice-range tone: AAC-LC mono 64k at 48 kHz in M4A.
  await ffmpegCli(['-f', 'lavfi', '-i', 'aevalsrc=0.6*sin(2*PI*180*t)*(0.5+0.5*sin(2*PI*3*t)):s=48000:d=5', '-c:a', 'aac', '-b:a', '64k', '-ac', '1', '-f', 'ipod', note]);
  const noteSeconds = 5;
  const probe = await probeMedia({ path: note, demuxer: 'mov' });
  const decision = decideVoiceNote(probe, 'audio/mp4', (await stat(note)).size, VOICE_NOTE_LIMITS);
  if (decision.action !== 'encode') throw new Error(`bench voice note was not encoded: ${decision.action}`);
  const s = await mkdtemp(join(dir, 'voice-'));
  const cliArgs = buildVoiceNoteRunArgs({ path: note, demuxer: 'mov', threads: VOICE_NOTE_LIMITS.threads }, decision, VOICE_NOTE_LIMITS, join(s, 'cli.ogg'));
  const ours = async (): Promise<NormalizeOutput> =>
    normalize({ inputPath: note, sniffedMime: 'audio/mp4', kind: 'voice_note', scratchDir: await mkdtemp(join(s, 'n-')), log: silentLogger });
  const cliRun = (): Promise<unknown> => exec(FFMPEG, cliArgs, { encoding: 'buffer', maxBuffer: 1 << 24 });

  const load = await loadAverage();
  const first = await ours();
  await cliRun();
  const norm = new Tally();
  const cli = new Tally();
  while (norm.runs < 10 || norm.wallMs + cli.wallMs < 4000) {
    await norm.run(ours);
    await cli.run(cliRun);
  }
  const loadAfter = await loadAverage();
  return table(
    `Voice note: normalize() of a ${noteSeconds} s AAC M4A → Opus ${decision.kbps}k + ${first.waveform?.length ?? 0}-bar waveform vs the ffmpeg CLI with the same arguments, mean of ${norm.runs} interleaved; CPU = this process + the tools; load average ${load} → ${loadAfter}`,
    ['operation', 'wall ms', 'CPU ms', 'x realtime', 'CLI / this, wall', 'CLI / this, CPU'],
    [
      ['normalize() (everything it runs)', f1(norm.wall), f1(norm.cpu), f1((noteSeconds * 1000) / norm.wall), `**${f2(cli.wall / norm.wall)}** (goal ≥ 0.8)`, f2(cli.cpu / norm.cpu)],
      ['ffmpeg CLI, same arguments (Opus out, PCM tap on stdout)', f1(cli.wall), f1(cli.cpu), f1((noteSeconds * 1000) / cli.wall), '1.00', '1.00'],
      ['normalize() overhead per note', f1(norm.wall - cli.wall), f1(norm.cpu - cli.cpu), '', '', ''],
    ],
  );
}

// ------------------------------------------------------------------------------------------------
// 2b. Fit to the delivered limit

/**
 * normalize() fitting a phone's 40 s 1080p clip (~50 MB, H.264 High ~10 Mbit/s) into 16 MB, beside
 * a plain `x264 -preset veryfast` encode of the same clip at its own size (crf 23, the command
 * anyone would write) and at the fit's output size, same threads, in the same run.
 */
async function benchFit(dir: string): Promise<string> {
  const clip = await fixture('mp4Phone1080p40s');
  const clipSeconds = 40;
  const inBytes = (await stat(clip)).size;
  const threads = String(VIDEO_LIMITS.threads);
  const plain = async (name: string, scale: string[]): Promise<[number, number]> => {
    const out = join(dir, `plain-${name}.mp4`);
    const [ms] = await time(() =>
      ffmpegCli(['-threads', threads, '-i', clip, '-map', '0:v:0', '-map', '0:a:0', ...scale, '-c:v', 'libx264', '-preset', 'veryfast', '-c:a', 'aac', '-b:a', '128k', '-threads', threads, '-movflags', '+faststart', out]),
    );
    return [ms, (await stat(out)).size];
  };
  const s = await mkdtemp(join(dir, 'fit-'));
  let progressReports = 0;
  const load = (await readFile('/proc/loadavg', 'latin1')).split(' ').slice(0, 3).join(' ');
  const [plainMs, plainBytes] = await plain('1080p', []);
  const [fitMs, fitOut] = await time(() =>
    normalize({ inputPath: clip, sniffedMime: 'video/mp4', kind: 'video', scratchDir: s, log: silentLogger, onProgress: () => void (progressReports += 1) }),
  );
  const fitBytes = (await stat(fitOut.outputPath)).size;
  const [plain720Ms, plain720Bytes] = await plain('720p', ['-vf', `scale=${fitOut.width}:${fitOut.height}`]);
  const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
  return table(
    `Fit to 16 MB: a phone's ${clipSeconds} s 1920x1080 H.264 High clip (${mb(inBytes)}), one run each, ${threads} threads; load average at start ${load}`,
    ['operation', 'wall s', 'x realtime', 'output', 'fit / this'],
    [
      [
        `**fit-to-16 MB encode** (normalize(): probe, x264 ${VIDEO_LIMITS.preset} capped crf at ${fitOut.width}x${fitOut.height}, output probe, poster; ${progressReports} progress reports)`,
        f1(fitMs / 1000),
        f2((clipSeconds * 1000) / fitMs),
        mb(fitBytes),
        '1.00',
      ],
      ['plain x264 veryfast (crf 23) + AAC, source size', f1(plainMs / 1000), f2((clipSeconds * 1000) / plainMs), mb(plainBytes), f2(fitMs / plainMs)],
      [`plain x264 veryfast (crf 23) + AAC, scaled to ${fitOut.width}x${fitOut.height}`, f1(plain720Ms / 1000), f2((clipSeconds * 1000) / plain720Ms), mb(plain720Bytes), f2(fitMs / plain720Ms)],
    ],
  );
}

// ------------------------------------------------------------------------------------------------
// 4. Peak RSS

interface RssResult {
  nodePeakKb: number;
  childPeakKb: number;
  ms: number;
  outcome: string;
}

async function rssOf(kind: MediaKind | 'baseline', mime: string, file: string): Promise<RssResult> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(here, 'normalize-rss-child.ts'), kind, mime, file], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (s: string) => (out += s));
  const code = await new Promise<number | null>((r) => child.once('close', r));
  if (code !== 0) throw new Error(`rss child for ${kind} exited with ${code}`);
  return JSON.parse(out.trim().split('\n').pop()!) as RssResult;
}

async function benchRss(): Promise<string> {
  const cases: Array<[string, MediaKind | 'baseline', string, string]> = [
    ['baseline (imports only)', 'baseline', 'text/plain', await fixture('text')],
    ['image: 12 MP PNG → JPEG', 'image', 'image/png', await fixture('png12mp')],
    ['image: 5000x2500 JPEG → 4096', 'image', 'image/jpeg', await fixture('jpegWide')],
    ['image: 8 MB 24 MP JPEG, fit to 5 MB', 'image', 'image/jpeg', await phonePhoto24mp()],
    ['image: 22 MB 24 MP grainy JPEG, fit to 5 MB', 'image', 'image/jpeg', await grainyPhoto24mp()],
    ['image: 24 MB PNG with alpha → WEBP, fit to 5 MB', 'image', 'image/png', await noisyAlphaPng()],
    ['image: animated GIF kept', 'image', 'image/gif', await fixture('gifAnimated')],
    ['sticker: animated GIF → WEBP', 'sticker', 'image/gif', await fixture('gifAnimated')],
    ['video: 30 s WebM VP9 → H.264', 'video', 'video/webm', await fixture('webmVp9Opus30s')],
    ['video: 60 s 1080p → 720p (16 MB fit)', 'video', 'video/mp4', await fixture('mp4HighBitrate1080p60s')],
    ["video: phone's 40 s 1080p, 50 MB → 16 MB fit", 'video', 'video/mp4', await fixture('mp4Phone1080p40s')],
    ['audio: WAV → AAC', 'audio', 'audio/wav', await fixture('wav')],
    ['voice_note: MP3 → Opus + waveform', 'voice_note', 'audio/mpeg', await fixture('mp3')],
    ['document: zip bomb refused', 'document', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', await fixture('zipBombLying')],
    ['document: DOCX checked', 'document', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document', await fixture('docx')],
  ];
  const rows: Array<Array<string | number>> = [];
  for (const [label, kind, mime, file] of cases) {
    const r = await rssOf(kind, mime, file).catch((e: unknown) => ({ error: e instanceof Error ? e.message : String(e) }));
    if ('error' in r) rows.push([label, 'error', r.error, '', '']);
    else rows.push([label, r.outcome, (r.nodePeakKb / 1024).toFixed(0), r.childPeakKb ? (r.childPeakKb / 1024).toFixed(0) : '–', f1(r.ms)]);
  }
  return table('Peak RSS per kind, one normalization in a fresh process (VmHWM)', ['case', 'outcome', 'node peak MiB', 'ffmpeg/ffprobe peak MiB', 'ms'], rows);
}

// ------------------------------------------------------------------------------------------------
// 5. Images in a persistent child process

interface ImageChild {
  call(path: string, mime: string, scratchDir: string): Promise<void>;
  rssKb(): Promise<number>;
  stop(): void;
}

async function startImageChild(): Promise<[number, ImageChild]> {
  const started = performance.now();
  const child: ChildProcess = fork(join(here, 'normalize-image-child.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pending = new Map<number, { resolve(): void; reject(e: Error): void }>();
  let nextId = 0;
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`image child exited with ${code} before it was ready`)));
  });
  const startMs = performance.now() - started;
  child.on('message', (m: { id: number; ok: boolean; error?: string }) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.ok) p?.resolve();
    else p?.reject(new Error(m.error));
  });
  return [
    startMs,
    {
      call: (path, mime, scratchDir) =>
        new Promise<void>((resolve, reject) => {
          const id = nextId++;
          pending.set(id, { resolve, reject });
          child.send({ id, path, mime, scratchDir });
        }),
      async rssKb() {
        const status = await readFile(`/proc/${child.pid}/status`, 'latin1');
        return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? 0);
      },
      stop: () => child.kill('SIGKILL'),
    },
  ];
}

async function benchImageChild(dir: string): Promise<string> {
  const corpus = await imageCorpus(dir);
  const [startMs, child] = await startImageChild();
  const idleRssKb = await child.rssKb();
  const rows: Array<Array<string | number>> = [];
  try {
    let inTotal = 0;
    let childTotal = 0;
    let runsTotal = 0;
    for (const item of corpus) {
      const scratchDir = await mkdtemp(join(dir, 'child-'));
      const inProcess = (): Promise<unknown> => normalize({ inputPath: item.path, sniffedMime: item.mime, kind: 'image', scratchDir, log: silentLogger });
      const inChild = (): Promise<void> => child.call(item.path, item.mime, scratchDir);
      await inProcess();
      await inChild();
      let inMs = 0;
      let childMs = 0;
      let runs = 0;
      // Interleaved, as in section 1, so load drift hits both sides alike.
      while (runs < 5 || inMs + childMs < 2000) {
        inMs += (await time(inProcess))[0];
        childMs += (await time(inChild))[0];
        runs += 1;
      }
      inTotal += inMs / runs;
      childTotal += childMs / runs;
      runsTotal += runs;
      rows.push([item.name, runs, f1((runs * 1000) / inMs), f1((runs * 1000) / childMs), f2((childMs - inMs) / runs), `${f1(((childMs - inMs) / inMs) * 100)} %`]);
    }
    rows.push([
      '**corpus, each image once**',
      runsTotal,
      f1((corpus.length * 1000) / inTotal),
      f1((corpus.length * 1000) / childTotal),
      f2((childTotal - inTotal) / corpus.length),
      `${f1(((childTotal - inTotal) / inTotal) * 100)} %`,
    ]);

    // Four in flight (the default WORKER_CONCURRENCY), small JPEGs: one child serving all four slots.
    const small = corpus.find((c) => c.name === '640x480 JPEG')!;
    const scratchDir = await mkdtemp(join(dir, 'child4-'));
    const batch = 4;
    let inMs = 0;
    let childMs = 0;
    let rounds = 0;
    while (rounds < 5 || inMs + childMs < 3000) {
      inMs += (await time(() => Promise.all(Array.from({ length: batch }, () => normalize({ inputPath: small.path, sniffedMime: small.mime, kind: 'image', scratchDir, log: silentLogger })))))[0];
      childMs += (await time(() => Promise.all(Array.from({ length: batch }, () => child.call(small.path, small.mime, scratchDir)))))[0];
      rounds += 1;
    }
    rows.push([
      `640x480 JPEG, ${batch} in flight`,
      rounds * batch,
      f1((rounds * batch * 1000) / inMs),
      f1((rounds * batch * 1000) / childMs),
      f2((childMs - inMs) / (rounds * batch)),
      `${f1(((childMs - inMs) / inMs) * 100)} %`,
    ]);
    const busyRssKb = await child.rssKb();
    return table(
      `Images: normalize() in the worker vs the same call in one persistent child process (fork + IPC), images/s; child start ${f1(startMs)} ms under tsx, RSS ${(idleRssKb / 1024).toFixed(0)} MiB idle / ${(busyRssKb / 1024).toFixed(0)} MiB after the corpus`,
      ['input', 'runs', 'in-process img/s', 'child img/s', 'added ms / image', 'added time'],
      rows,
    );
  } finally {
    child.stop();
  }
}

export async function run(only: readonly string[] = []): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mediaflow-bench-normalize-'));
  const started = performance.now();
  try {
    const parts = [`## normalize (${new Date().toISOString()}, node ${process.version}, sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips})`, ''];
    const sections: Array<[string, () => Promise<string>]> = [
      ['images', () => benchImages(dir)],
      ['video', () => benchVideo(dir)],
      ['voice', () => benchVoiceNote(dir)],
      ['fit', () => benchFit(dir)],
      ['rss', () => benchRss()],
      ['child', () => benchImageChild(dir)],
    ];
    for (const [name, section] of sections) {
      if (only.length > 0 && !only.includes(name)) continue;
      const text = await section();
      parts.push(text);
      console.log(text);
    }
    parts.push(`_bench took ${((performance.now() - started) / 1000).toFixed(1)} s_`);
    console.log(parts[parts.length - 1]);
    return parts.join('\n');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await run(process.argv.slice(2));
}
