import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { checkOwnership, commitMedia, mediaFieldsSchema } from '../api/create-media.js';
import { limitFor } from '../api/routes/media.js';
import { toMediaObject } from '../api/media-object.js';
import * as appsRepo from '../db/repos/apps.js';
import * as mediaRepo from '../db/repos/media.js';
import { AppError } from '../domain/errors.js';
import type { KindLimits } from '../domain/policies.js';
import { newMediaId } from '../domain/ids.js';
import { assertUrlAllowedSyntax } from '../pipeline/fetch-source.js';
import { stageUpload } from '../pipeline/stage-upload.js';
import type { Runtime } from '../runtime.js';

interface IngestOptions {
  app: string;
  kind?: string;
  device?: string;
  wait?: boolean;
  json?: boolean;
}

/** Progress on a terminal as a bar, elsewhere as plain lines (never with --json on stdout). */
function progressPrinter(json: boolean) {
  const tty = !!process.stderr.isTTY;
  let lastLine = '';
  return {
    update(phase: string, percent: number) {
      const p = Math.max(0, Math.min(100, Math.round(percent)));
      if (tty) {
        const width = 30;
        const filled = Math.round((p / 100) * width);
        process.stderr.write(`\r${phase.padEnd(10)} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(p).padStart(3)}%`);
      } else {
        const line = `${phase} ${p}%`;
        if (line !== lastLine && (p % 25 === 0 || phase !== lastLine.split(' ')[0])) process.stderr.write(`${line}\n`);
        lastLine = line;
      }
    },
    done() {
      if (tty) process.stderr.write('\n');
      void json;
    },
  };
}

export async function ingest(rt: Runtime, target: string, o: IngestOptions): Promise<Record<string, unknown>> {
  const app = await appsRepo.getApp(rt.pool, o.app);
  if (!app) throw new AppError('NOT_FOUND', `no app ${o.app}`);
  const fields = mediaFieldsSchema.parse({ kind: o.kind, deviceId: o.device });
  await checkOwnership(rt, o.app, fields);
  const progress = progressPrinter(!!o.json);
  const mediaId = newMediaId();
  let row;
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
        progress.update('upload', (sent / st.size) * 100);
        cb(null, chunk);
      },
    });
    const staged = await stageUpload(rt, { body: createReadStream(target).pipe(counter), appId: o.app, mediaId, kind: fields.kind, declaredMime: null, limitFor: limitFor(rt, (app.limits ?? {}) as KindLimits) });
    row = await commitMedia(rt, {
      appId: o.app, mediaId, kind: staged.kind, source: 'upload', declaredMime: null, detectedMime: staged.sniffed.raw,
      originalName: path.basename(target), inputBytes: staged.bytes, stagingKey: staged.stagingKey, fields,
    });
  }
  if (o.wait) {
    const job = rt.queues.get('ingest');
    for (;;) {
      const now = await mediaRepo.getMediaById(rt.pool, mediaId);
      if (!now) throw new AppError('NOT_FOUND', 'media vanished while waiting');
      row = now;
      if (now.status !== 'queued' && now.status !== 'processing') break;
      const j = await job.getJob(mediaId);
      const p = typeof j?.progress === 'number' ? j.progress : 0;
      progress.update(now.status, p);
      await new Promise((r) => setTimeout(r, 250));
    }
    progress.update(row.status, 100);
  }
  progress.done();
  return toMediaObject(row);
}
