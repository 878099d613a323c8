/**
 * The soak's client: sends each media through one way in (multipart, base64, URL, upload slot, or
 * the producer module straight into Redis), against whichever API process is up, and keeps at it
 * through outages the way a well-behaved client does: a cut connection or a 502/503 is retried
 * (with the same Idempotency-Key, so a retry never makes a second media), a refusal is final.
 * Every answer is recorded, so the report can say what clients saw while things were down.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { newMediaId } from '../../src/domain/ids.js';
import { createProducer } from '../../src/queue/producer.js';
import type { Sample } from './corpus.js';
import { sleep } from './infra.js';

export const WAYS = ['multipart', 'base64', 'url', 'slot', 'producer-url', 'producer-file'] as const;
export type Way = (typeof WAYS)[number];

export interface Submission {
  seq: number;
  sample: Sample;
  way: Way;
  deviceId?: string;
  ttlSeconds?: number;
  phase: 'baseline' | 'faults';
  /** When the first attempt started (epoch ms): upload → ready is measured from here. */
  startedAt: number;
  acceptedAt?: number;
  mediaId?: string;
  /** `accepted`: a 202 (or the producer's enqueue resolved); `refused`: a final 4xx; `gave-up`: still failing at the deadline. */
  outcome?: 'accepted' | 'refused' | 'gave-up';
  /** Every answer that was not an acceptance: HTTP status and contract code, or `conn` for a cut/refused connection. */
  answers: string[];
  /** The whole final refusal, for the report. */
  refusal?: string;
}

export interface ClientDeps {
  /** Base URLs of the API processes that are up now. */
  apis(): string[];
  apiKey: string;
  redisUrl: string;
  prefix: string;
  appId: string;
  /** Base URL of the local file server that serves every sample at `/s/<sample id>`. */
  filesUrl: string;
  /** FILE_SOURCE_ROOT of the workers: producer `file` sources are written here. */
  inboxDir: string;
  /** How long one media may keep being retried before the client gives up. */
  retryDeadlineMs: number;
  /** Devices destroyed so far: a 404 for one of them is the expected answer. */
  destroyedDevices: Set<string>;
}

const DEVICE_GONE = 'device-gone';

export class SoakClient {
  private next = 0;
  private readonly producer;
  private readonly inboxFiles = new Map<string, string>();

  constructor(private readonly deps: ClientDeps) {
    this.producer = createProducer({ redisUrl: deps.redisUrl, prefix: deps.prefix });
  }

  async close(): Promise<void> {
    await this.producer.close();
  }

  private api(): string | undefined {
    const list = this.deps.apis();
    if (list.length === 0) return undefined;
    return list[this.next++ % list.length];
  }

  async submit(sub: Submission): Promise<void> {
    const deadline = sub.startedAt + this.deps.retryDeadlineMs;
    let idemKey = `soak-${sub.seq}-${randomBytes(6).toString('hex')}`;
    const fixedMediaId = sub.way.startsWith('producer') ? newMediaId() : undefined;
    let slot: { mediaId: string; uploadPath: string } | undefined;
    for (let attempt = 0; ; attempt++) {
      if (Date.now() > deadline) {
        sub.outcome = 'gave-up';
        return;
      }
      if (attempt > 0) await sleep(Math.min(3000, 250 * 2 ** Math.min(attempt, 4)) * (0.5 + Math.random()));
      let answer: string;
      try {
        if (sub.way === 'producer-url' || sub.way === 'producer-file') {
          const source = sub.way === 'producer-url' ? { type: 'url' as const, url: `${this.deps.filesUrl}/s/${sub.sample.id}` } : { type: 'file' as const, path: await this.inboxFile(sub.sample) };
          await this.producer.enqueueMedia({
            mediaId: fixedMediaId,
            appId: this.deps.appId,
            kind: sub.sample.kind,
            source,
            ...(sub.deviceId ? { deviceId: sub.deviceId } : {}),
            ...(sub.ttlSeconds ? { ttlSeconds: sub.ttlSeconds } : {}),
            correlationId: `soak-${sub.seq}`,
          });
          return this.accept(sub, fixedMediaId!);
        }
        const api = this.api();
        if (!api) {
          sub.answers.push('no-api');
          continue;
        }
        if (sub.way === 'slot') {
          if (!slot) {
            const res = await this.post(api, '/v1/media/uploads', { mimeType: sub.sample.mime, byteSize: sub.sample.bytes.length, kind: sub.sample.kind, ...this.fields(sub) });
            if (res.status !== 201) {
              answer = await this.answerOf(res);
              if (this.isFinal(sub, res.status, answer)) return this.refuse(sub, answer);
              sub.answers.push(answerLabel(answer));
              continue;
            }
            const data = ((await res.json()) as { data: { mediaId: string; uploadUrl: string } }).data;
            slot = { mediaId: data.mediaId, uploadPath: new URL(data.uploadUrl).pathname };
          }
          const put = await fetch(`${api}${slot.uploadPath}`, { method: 'PUT', body: sub.sample.bytes, headers: { 'content-type': sub.sample.mime }, signal: AbortSignal.timeout(30_000) });
          answer = await this.answerOf(put);
          if (put.status === 202) return this.accept(sub, slot.mediaId);
          // 409 after a retry: either an earlier PUT of ours went through before its answer was lost
          // (the media exists), or a failed PUT used the slot up without keeping the media.
          if (put.status === 409 && attempt > 0) {
            const got = await fetch(`${api}/v1/media/${slot.mediaId}`, { headers: { authorization: `Bearer ${this.deps.apiKey}` }, signal: AbortSignal.timeout(30_000) });
            if (got.status === 200) return this.accept(sub, slot.mediaId);
            if (got.status === 404) return this.refuse(sub, `409 slot used up by an earlier PUT that kept no media (${slot.mediaId}): ${answer.slice(4, 200)}`);
          }
          if (this.isFinal(sub, put.status, answer)) return this.refuse(sub, answer);
        } else {
          const res = await this.postMedia(api, sub, idemKey);
          answer = await this.answerOf(res);
          if (res.status === 202 || res.status === 200) return this.accept(sub, (JSON.parse(answer.slice(answer.indexOf(' ') + 1)) as { data: { id: string } }).data.id);
          // A key whose first request died with its API stays "in progress": a fresh key retries.
          if (res.status === 409) idemKey = `soak-${sub.seq}-${randomBytes(6).toString('hex')}`;
          if (this.isFinal(sub, res.status, answer)) return this.refuse(sub, answer);
        }
      } catch (err) {
        if (sub.way.startsWith('producer')) {
          // The producer module's own error: what a pipeline enqueueing straight into Redis sees.
          const code = (err as { code?: unknown }).code;
          sub.answers.push(typeof code === 'string' && /^[A-Z_]+$/.test(code) ? `producer ${code}` : `producer: ${(err as Error).message.replace(/\d+/g, 'N').slice(0, 80)}`);
          continue;
        }
        answer = `conn ${(err as Error).name === 'TimeoutError' ? 'timeout' : ((err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message).slice(0, 60)}`;
      }
      sub.answers.push(answerLabel(answer));
    }
  }

  private fields(sub: Submission): Record<string, string | number> {
    return { ...(sub.deviceId ? { deviceId: sub.deviceId } : {}), ...(sub.ttlSeconds ? { ttlSeconds: sub.ttlSeconds } : {}) };
  }

  private post(api: string, p: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${api}${p}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${this.deps.apiKey}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  }

  private postMedia(api: string, sub: Submission, idemKey: string): Promise<Response> {
    const s = sub.sample;
    const headers = { 'idempotency-key': idemKey };
    if (sub.way === 'base64') return this.post(api, '/v1/media', { base64: s.bytes.toString('base64'), filename: s.filename, mimeType: s.mime, kind: s.kind, ...this.fields(sub) }, headers);
    if (sub.way === 'url') return this.post(api, '/v1/media', { url: `${this.deps.filesUrl}/s/${s.id}`, kind: s.kind, ...this.fields(sub) }, headers);
    const fd = new FormData();
    fd.append('kind', s.kind);
    for (const [k, v] of Object.entries(this.fields(sub))) fd.append(k, String(v));
    fd.append('file', new Blob([s.bytes], { type: s.mime }), s.filename);
    return fetch(`${api}/v1/media`, { method: 'POST', headers: { authorization: `Bearer ${this.deps.apiKey}`, ...headers }, body: fd, signal: AbortSignal.timeout(30_000) });
  }

  /** `"<status> <body>"`, with the body's contract code first when it has one. */
  private async answerOf(res: Response): Promise<string> {
    const text = await res.text().catch(() => '');
    return `${res.status} ${text}`;
  }

  private isFinal(sub: Submission, status: number, answer: string): boolean {
    if (status === 404 && sub.deviceId && this.deps.destroyedDevices.has(sub.deviceId)) {
      sub.answers.push(`404 ${DEVICE_GONE}`);
      return true;
    }
    // Outages (502/503), a crashed request's key (409), rate limits (429) and 5xx are worth a retry.
    return status >= 400 && status < 500 && status !== 409 && status !== 429 && !answer.includes('"QUEUE_UNAVAILABLE"');
  }

  private accept(sub: Submission, mediaId: string): void {
    sub.outcome = 'accepted';
    sub.mediaId = mediaId;
    sub.acceptedAt = Date.now();
  }

  private refuse(sub: Submission, answer: string): void {
    sub.outcome = 'refused';
    if (!sub.answers.includes(`404 ${DEVICE_GONE}`)) {
      sub.answers.push(answerLabel(answer));
      sub.refusal = answer.slice(0, 300);
    }
  }

  private async inboxFile(sample: Sample): Promise<string> {
    let p = this.inboxFiles.get(sample.id);
    if (!p) {
      p = path.join(this.deps.inboxDir, sample.filename);
      await writeFile(p, sample.bytes);
      this.inboxFiles.set(sample.id, p);
    }
    return p;
  }
}

/** The contract code in a recorded answer (`503 {"success":false,"error":{"code":"QUEUE_UNAVAILABLE",…}}` → `503 QUEUE_UNAVAILABLE`). */
export function answerLabel(answer: string): string {
  const m = /^(\d{3}) .*?"code":"([A-Z_]+)"/.exec(answer);
  if (m) return `${m[1]} ${m[2]}`;
  if (/^\d{3} /.test(answer)) return answer.slice(0, 3) + (answer.includes(DEVICE_GONE) ? ` ${DEVICE_GONE}` : '');
  return answer;
}
