import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import * as appsRepo from '../db/repos/apps.js';
import * as mediaRepo from '../db/repos/media.js';
import type { MediaRow } from '../db/repos/media.js';
import { AppError } from '../domain/errors.js';
import { newMediaId } from '../domain/ids.js';
import type { KindLimits } from '../domain/policies.js';
import { commitMedia } from '../ingest/commit-media.js';
import { limitFor } from '../ingest/limits.js';
import { mediaFieldsSchema } from '../ingest/media-fields.js';
import { toMediaObject } from '../ingest/media-object.js';
import { checkOwnership } from '../ingest/ownership.js';
import { assertUrlAllowedSyntax } from '../net/url-check.js';
import { readJobProgress } from '../queue/job-progress.js';
import { stageUpload } from '../pipeline/stage-upload.js';
import type { Runtime } from '../runtime.js';

export interface IngestOptions {
  app: string;
  kind?: string;
  device?: string;
  wait?: boolean;
  /** Seconds --wait waits before giving up (the media goes on being processed). */
  timeout?: number;
  json?: boolean;
}

type Phase = 'upload' | 'queued' | 'processing' | 'ready' | 'failed' | 'deleted';

export interface ProgressOut {
  isTTY?: boolean;
  columns?: number;
  write(s: string): unknown;
}

const mb = (n: number) => `${(n / 1_000_000).toFixed(1)} MB`;

/**
 * Progress goes to stderr, so stdout stays the result alone (`--json` pipes cleanly).
 * On a terminal: one bar redrawn in place, at most ~12 times a second. Elsewhere (CI logs,
 * pipes): a plain line per phase change and per quarter of progress, never a carriage return.
 */
export function progressPrinter(out: ProgressOut = process.stderr, now: () => number = Date.now) {
  const tty = !!out.isTTY;
  let lastDraw = 0;
  let lastPhase: Phase | null = null;
  let lastQuarter = -1;
  let drawn = false;
  let lastLine = '';
  return {
    update(phase: Phase, percent: number, detail = '') {
      const p = Math.max(0, Math.min(100, Math.round(percent)));
      const phaseChanged = phase !== lastPhase;
      if (tty) {
        const t = now();
        if (!phaseChanged && p !== 100 && t - lastDraw < 80) return;
        lastDraw = t;
        const width = 30;
        const filled = Math.round((p / 100) * width);
        const line = `${phase.padEnd(10)} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(p).padStart(3)}%${detail ? `  ${detail}` : ''}`;
        const cols = Math.max(20, (out.columns || 80) - 1);
        const shown = line.slice(0, cols);
        if (shown === lastLine) return;
        lastLine = shown;
        // \r and erase-line: the bar is redrawn in place and never wraps.
        out.write(`\r\x1b[2K${shown}`);
        drawn = true;
      } else {
        const quarter = Math.floor(p / 25);
        if (!phaseChanged && quarter === lastQuarter) return;
        lastQuarter = quarter;
        out.write(`${phase} ${p}%${detail ? ` ${detail}` : ''}\n`);
      }
      lastPhase = phase;
      if (phaseChanged) lastQuarter = Math.floor(p / 25);
    },
    /** Ends the bar's line; safe to call twice. */
    done() {
      if (tty && drawn) out.write('\n');
      drawn = false;
    },
  };
}

/**
 * `mediaflow ingest FILE|URL`: the same way in as the API (sniff → stage encrypted → row → queue),
 * run from this process against the service's database, Redis and storage. With `wait`, polls the
 * row and the job's progress until the media settles, then returns the media object.
 */
export async function ingest(rt: Runtime, target: string, o: IngestOptions, out: ProgressOut = process.stderr): Promise<Record<string, unknown>> {
  const app = await appsRepo.getApp(rt.pool, o.app);
  if (!app) throw new AppError('NOT_FOUND', `no app ${o.app}`);
  const fields = mediaFieldsSchema.parse({ kind: o.kind, deviceId: o.device });
  await checkOwnership(rt.pool, o.app, fields);
  const progress = progressPrinter(out);
  const mediaId = newMediaId();
  let row: MediaRow;
  try {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
      const url = assertUrlAllowedSyntax(target, { allowPrivateNetworks: rt.config.ALLOW_PRIVATE_URLS });
      row = await commitMedia(rt, { appId: o.app, mediaId, kind: fields.kind ?? null, source: 'url', sourceUrl: url.toString(), declaredMime: null, originalName: null, inputBytes: null, stagingKey: null, fields });
    } else {
      const st = await stat(target).catch(() => null);
      if (!st?.isFile()) throw new AppError('NOT_FOUND', `no file ${target}`);
      let sent = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _e, cb) {
          sent += chunk.length;
          progress.update('upload', st.size ? (sent / st.size) * 100 : 100, `${mb(sent)} / ${mb(st.size)}`);
          cb(null, chunk);
        },
      });
      const staged = await stageUpload(rt, { body: createReadStream(target).pipe(counter), appId: o.app, mediaId, kind: fields.kind, declaredMime: null, limitFor: limitFor(rt, app.limits as KindLimits) });
      row = await commitMedia(rt, {
        appId: o.app, mediaId, kind: staged.kind, source: 'upload', declaredMime: null, detectedMime: staged.sniffed.raw,
        originalName: path.basename(target), inputBytes: staged.bytes, stagingKey: staged.stagingKey, fields,
      });
    }
    if (o.wait) {
      const queue = rt.queues.get('ingest');
      const deadline = Date.now() + (o.timeout ?? 600) * 1000;
      for (;;) {
        const now = await mediaRepo.getMediaById(rt.pool, mediaId);
        if (!now) throw new AppError('NOT_FOUND', 'media vanished while waiting');
        row = now;
        if (now.status !== 'queued' && now.status !== 'processing') break;
        if (Date.now() > deadline) {
          throw new AppError('QUEUE_UNAVAILABLE', `media ${mediaId} is still ${now.status} after ${o.timeout ?? 600} s (is a worker running?); it keeps going`);
        }
        // What GET /v1/media/:id shows as `progress`, read the same way.
        const p = now.status === 'processing' ? await readJobProgress(rt.redis, queue, mediaId) : undefined;
        progress.update(now.status, p ?? 0);
        await new Promise((r) => setTimeout(r, 200));
      }
      const settled = row.status === 'deleting' ? 'deleted' : row.status;
      progress.update(settled as Phase, 100);
    }
  } finally {
    progress.done();
  }
  return toMediaObject(row);
}
