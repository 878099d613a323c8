/**
 * ffmpeg hardening against hostile inputs, with the real ffmpeg/ffprobe 5.1 traced by strace
 * (every file syscall of every run, children included), and against inputs that never end.
 * What is real: ffmpeg, ffprobe, strace, the sniffer, named pipes; nothing is mocked.
 *
 * (9) An HLS playlist disguised as MP4, and an AVI carrying one, never make ffmpeg open the files
 *     they name: canary files the test owns, next to `file:///etc/passwd` itself.
 * (12) An ffmpeg (or ffprobe) stuck on a stream that never ends is killed at the timeout with its
 *     process group, nothing is left behind, the file fails with a clear code, and the next runs.
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { decideKind } from '../../src/domain/policies.js';
import { buildVideoArgs } from '../../src/pipeline/ffmpeg/args.js';
import { VIDEO_LIMITS } from '../../src/pipeline/ffmpeg/av-limits.js';
import { decideVideo } from '../../src/pipeline/ffmpeg/decide-video.js';
import { probeMedia } from '../../src/pipeline/ffmpeg/probe-media.js';
import { runFfmpeg } from '../../src/pipeline/ffmpeg/run.js';
import { normalize } from '../../src/pipeline/normalize.js';
import { sniffFile } from '../../src/pipeline/sniff.js';
import { fixture } from '../fixtures/generate.js';
import { aviWithGab2, hlsPlaylist } from '../fixtures/ssrf-media.js';
import { ffprobe, input, processesMentioning, processTable, rejection, scratch, toolChildren, traceMediaTools, useScratch } from './normalize-helpers.js';

useScratch();
const run = promisify(execFile);

/**
 * Canary files standing in for /etc/passwd, and the playlist segments naming them: a `file://`
 * URL, a bare path and a `concat:`. Their extensions are ones ffmpeg 5.1's HLS demuxer allows (it
 * refuses a whole playlist naming `/etc/passwd` itself), so only our hardening stands in the way.
 */
async function canaries(): Promise<{ dir: string; segments: string[] }> {
  const dir = await scratch();
  for (const name of ['passwd.ts', 'passwd.mp4']) await writeFile(join(dir, name), 'CANARY root:x:0:0\n');
  return { dir, segments: [`file://${dir}/passwd.ts`, `${dir}/passwd.mp4`, `concat:${dir}/passwd.ts|${dir}/passwd.mp4`] };
}

const touched = (trace: string, dir: string): boolean => trace.includes(dir) || trace.includes('/etc/passwd');

describe('(9) playlists never reach ffmpeg', () => {
  it('an HLS playlist named .mp4: refused by the sniffer, and by the forced demuxer if the sniffer were fooled', async () => {
    const { dir, segments } = await canaries();
    const work = await scratch();
    const playlist = join(work, 'holiday.mp4');
    await writeFile(playlist, hlsPlaylist(segments));

    // The sniffer sees text, which the video kind does not accept: 415 before any tool runs.
    const sniffed = await sniffFile(playlist);
    expect(sniffed.mime).toBe('text/plain');
    expect(() => decideKind({ kind: 'video', mime: sniffed.mime, declared: 'video/mp4', seen: 'whole' })).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_MEDIA_TYPE' }));

    const tracer = await traceMediaTools();
    try {
      // Control: ffprobe left to guess the format follows the playlist and opens the canary, so
      // this file is a live attack and the tracer sees the opens.
      await run(process.env.FFPROBE_PATH!, ['-v', 'error', playlist]).catch(() => undefined);
      const control = await tracer.traces();
      expect(control).toHaveLength(1);
      expect(control[0]).toMatch(new RegExp(`open(at)?\\(.*"/*${dir}/passwd\\.ts"`));

      // The pipeline, told it is an MP4: ffprobe -f mov finds no MP4 there and nothing is opened.
      const err = await rejection(normalize(await input(playlist, 'video/mp4', 'video')));
      expect(err.code).toBe('MEDIA_REJECTED');
      expect(err.message).toMatch(/^probing the media: the media could not be decoded/);
      const traces = (await tracer.traces()).filter((t) => t !== control[0]);
      expect(traces.length).toBeGreaterThanOrEqual(1);
      expect(traces.some((t) => t.includes(playlist))).toBe(true);
      for (const t of traces) expect(touched(t, dir)).toBe(false);
    } finally {
      tracer.restore();
    }
  });

  it('the AVI carrier (a GAB2 subtitle holding the playlist): refused, and no run opens what it names', async () => {
    // Preconditions: ffmpeg does parse this carrier. A real SRT in it becomes a subrip stream…
    const srt = await ffprobe(await fixture('aviGab2Srt'));
    expect(srt.streams.map((s) => s.codec_name)).toEqual(['rawvideo', 'subrip']);

    const { dir, segments } = await canaries();
    const avi = join(await scratch(), 'clip.avi');
    await writeFile(avi, aviWithGab2(hlsPlaylist(segments)));
    expect((await sniffFile(avi)).mime).toBe('video/vnd.avi');
    // …and with the playlist in it, ffprobe reads the GAB2 packet (its stream name is set) but names no codec.
    const probed = await ffprobe(avi);
    expect(probed.streams[1]).toMatchObject({ codec_type: 'subtitle', tags: { title: 'English' } });
    expect(probed.streams[1]!.codec_name).toBeUndefined();

    const tracer = await traceMediaTools();
    try {
      const err = await rejection(normalize(await input(avi, 'video/vnd.avi', 'video')));
      expect(err.code).toBe('MEDIA_REJECTED');
      expect(err.message).toBe('the AVI carries a subtitle stream that is not a subtitle (GAB2 payload of another format)');
      const traces = await tracer.traces();
      expect(traces.length).toBeGreaterThanOrEqual(1);
      expect(traces.every((t) => t.includes(avi))).toBe(true);
      for (const t of traces) expect(touched(t, dir)).toBe(false);

      // Past that check too: the hardened transcode itself (forced avi demuxer, file/pipe only,
      // subtitles dropped) turns the video into an MP4 and opens nothing the playlist names.
      const probe = await probeMedia({ path: avi, demuxer: 'avi' });
      const decision = decideVideo({ ...probe, unidentifiedSubtitles: 0 }, { durationMs: probe.durationMs, sizeBytes: 20_000 }, VIDEO_LIMITS);
      if (decision.action === 'reject') throw new Error(decision.reason);
      const out = join(await scratch(), 'out.mp4');
      await runFfmpeg({ args: buildVideoArgs({ path: avi, demuxer: 'avi', threads: 2 }, decision, VIDEO_LIMITS.maxDurationMs, out), timeoutMs: 30_000 });
      expect((await ffprobe(out)).streams.map((s) => s.codec_name)).toEqual(['h264']);
      const all = await tracer.traces();
      expect(all.length).toBeGreaterThan(traces.length);
      expect(all.some((t) => t.includes(out))).toBe(true);
      for (const t of all) expect(touched(t, dir)).toBe(false);
    } finally {
      tracer.restore();
    }
  });
});

/** A named pipe in a fresh scratch dir. */
async function fifo(): Promise<string> {
  const path = join(await scratch(), 'upload.mp4');
  await run('mkfifo', [path]);
  return path;
}

/** Tool processes stopped and reaped: none left in the group, none of ours a zombie. */
async function expectNothingLeft(pgid: number, needle: string): Promise<void> {
  const table = await processTable();
  expect(table.filter((p) => p.pgid === pgid && p.state !== 'Z')).toEqual([]);
  expect(table.filter((p) => p.pgid === pgid && p.ppid === process.pid)).toEqual([]);
  expect(await toolChildren()).toEqual([]);
  expect(await processesMentioning(needle)).toEqual([]);
}

/** The process group of the tool reading `needle`, found while it runs. */
async function groupOf(needle: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const pids = await processesMentioning(needle);
    if (pids.length > 0) {
      const me = (await processTable()).find((p) => p.pid === pids[0]);
      if (me) return me.pgid;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no process reading ${needle}`);
}

describe('(12) a tool that hangs', () => {
  it('ffprobe waiting on a stream that never ends: killed at the timeout, nothing left, MEDIA_REJECTED; the next file runs', async () => {
    const path = await fifo();
    // Hold the pipe open for writing (O_RDWR never blocks on a FIFO) with the start of an MP4 in it, and never close it.
    const fd = openSync(path, constants.O_RDWR);
    try {
      writeSync(fd, (await readFile(await fixture('mp4Compliant'))).subarray(0, 32 * 1024));
      const started = performance.now();
      const pending = normalize(await input(path, 'video/mp4', 'video', { maxToolMs: 1500 }));
      const pgid = await groupOf(path);
      const err = await rejection(pending);
      const ms = performance.now() - started;
      expect(ms).toBeGreaterThanOrEqual(1400);
      expect(ms).toBeLessThan(5000);
      expect(err.code).toBe('MEDIA_REJECTED');
      expect(err.message).toBe('probing the media: ffprobe did not finish within 1.5 s and was stopped (the input stalls or is too costly to process)');
      await expectNothingLeft(pgid, path);
    } finally {
      closeSync(fd);
    }
    const next = await normalize(await input(await fixture('mp4Compliant'), 'video/mp4', 'video', { maxToolMs: 30_000 }));
    expect(next.transform).toBe('remuxed');
  });

  it('ffmpeg stalling mid-file after a good probe: killed at the timeout with its group, MEDIA_REJECTED', async () => {
    const src = await fixture('mp4Compliant');
    expect((await stat(src)).size).toBeGreaterThan(30000);
    const path = await fifo();
    // A writer that gives the probe the whole file, then gives ffmpeg 30 KB and stalls (moov is at the end).
    const writer = spawn('sh', ['-c', 'cat "$1" > "$2"; exec 3>"$2"; head -c 30000 "$1" >&3; exec sleep 60', 'sh', src, path], { stdio: 'ignore' });
    try {
      const started = performance.now();
      const pending = normalize(await input(path, 'video/mp4', 'video', { maxToolMs: 1500 }));
      // Wait for the second reader: ffmpeg, whose command line carries the output in the scratch dir.
      let pgid = 0;
      for (let i = 0; i < 200 && pgid === 0; i++) {
        const ff = (await processTable()).find((p) => p.comm === 'ffmpeg' && p.ppid === process.pid);
        if (ff) pgid = ff.pgid;
        else await new Promise((r) => setTimeout(r, 20));
      }
      expect(pgid).toBeGreaterThan(0);
      const err = await rejection(pending);
      expect(performance.now() - started).toBeLessThan(6000);
      expect(err.code).toBe('MEDIA_REJECTED');
      // Over a pipe the probe cannot see the bitrates, so the clip may be re-encoded rather than remuxed.
      expect(err.message).toMatch(/^(remuxing|transcoding) the video: ffmpeg did not finish within 1\.5 s and was stopped \(the input stalls or is too costly to process\)$/);
      await expectNothingLeft(pgid, path);
    } finally {
      writer.kill('SIGKILL');
    }
  });
});
