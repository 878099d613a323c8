import type dns from 'node:dns';
import { Readable, Transform, pipeline } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { PermanentError } from '../domain/errors.js';
import { UrlFetchFailedError } from './fetch-failure.js';
import { isRetryableFault, parseRetryAfter, retryDelayMs, RETRYABLE_STATUSES } from './fetch-retry.js';
import { filenameFromContentDisposition, filenameFromUrl } from './filename.js';
import { DEFAULT_MAX_REDIRECTS, redirectTarget } from './redirect-target.js';
import { UrlRefusedError } from './refusal.js';
import { createSafeAgent } from './safe-agent.js';
import { assertUrlAllowedSyntax, type UrlRules } from './url-check.js';

export interface FetchPolicy {
  /** Size cap, enforced on the bytes that actually arrive, whatever Content-Length claims. */
  maxBytes: number;
  /** Test-only (ALLOW_PRIVATE_URLS=true upstream): lifts the address and port rules. Default false. */
  allowPrivateNetworks?: boolean;
  /** Default [80, 443]; ignored when allowPrivateNetworks is true. */
  allowedPorts?: readonly number[];
  /**
   * Test-only: exact `host:port` pairs (`127.0.0.1:40123`, `[::1]:40123`) exempt from the address and
   * port rules, so a test can serve from one local port and still prove every other local target is refused.
   */
  allowHosts?: readonly string[];
  connectTimeoutMs?: number;
  /**
   * The whole fetch, retries and body included, must end within this (URL_FETCH_DEADLINE_SECONDS).
   * Default 60 s. Past it the fetch fails for good: a later job attempt would only wait again.
   */
  totalTimeoutMs?: number;
  /** Length of the window over which the body must keep moving (URL_STALL_SECONDS). Default 15 s. */
  stallTimeoutMs?: number;
  /** The floor rate averaged over each stall window; default 1024 bytes/s. */
  minBytesPerSecond?: number;
  /** Default 3. */
  maxRedirects?: number;
  signal?: AbortSignal;
  /** Injectable resolver (tests map names to local or mixed answers); every answer is still checked. */
  lookup?: typeof dns.lookup;
  /** Test-only: trust these CA certificates instead of the system's. */
  ca?: string | Buffer;
}

export interface FetchedSource {
  /**
   * Errors with FILE_TOO_LARGE once more than maxBytes arrive, and with a final UrlFetchFailedError
   * when the transfer stalls, breaks or outlives the deadline.
   */
  body: Readable;
  contentType: string | null;
  filename: string | null;
  finalUrl: string;
  declaredLength: number | null;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export const DEFAULT_FETCH_DEADLINE_MS = 60_000;
export const DEFAULT_STALL_MS = 15_000;
export const DEFAULT_MIN_BYTES_PER_SECOND = 1024;

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | null {
  const v = headers[name];
  if (v === undefined) return null;
  return Array.isArray(v) ? (v[0] ?? null) : v;
}

/** undici reports a destroyed unread body as an AbortError; nobody is listening for that one. */
function discard(body: Readable): void {
  body.on('error', () => undefined);
  body.destroy();
}

function parseLength(v: string | null): number | null {
  if (v === null || !/^\d+$/.test(v.trim())) return null;
  return Number(v.trim());
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/**
 * A fault in words for the media's error message, which reaches the client: built from the error
 * code only, because node's messages carry the resolved address and the fetcher must not become an
 * oracle for what names resolve to.
 */
function describeFault(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'connection reset';
  if (code === 'UND_ERR_SOCKET') return 'connection closed before an answer';
  if (code === 'EAI_AGAIN') return 'temporary name resolution failure';
  if (typeof code !== 'string') return 'network error';
  if (/CERT|TLS|SSL|SIGNATURE|ALTNAME/i.test(code)) return `TLS certificate not accepted (${code})`;
  return `network error (${code})`;
}

/** One fetch's shared state: the deadline, the caller's signal, and what the last failed try was. */
interface Attempt {
  readonly deadline: AbortController;
  readonly deadlineAt: number;
  readonly policySignal: AbortSignal | undefined;
  readonly signal: AbortSignal;
  readonly connectTimeoutMs: number;
  lastFault: string | null;
}

/**
 * Opens `url` for streaming under the SSRF rules: http(s) only, no credentials, allowed ports only,
 * and every connection (the first and each redirect's) made only to an address that passed the check
 * at connect time. Redirects are followed here, not by undici, so each hop is re-checked, and never
 * from https to http. The body is passed through exactly as sent (no decompression), so the size cap
 * counts the bytes on the wire and a compression bomb is never inflated here.
 *
 * Everything this throws, and every error its body emits, is final (a PermanentError), except the
 * caller's own abort: a refused or reset connection, or a "try later" answer, is retried in here
 * with backoff, but only until the one deadline that bounds the whole fetch. A job-level retry would
 * restart that clock, so a dead origin could hold a worker for minutes.
 */
export async function openUrl(url: string, policy: FetchPolicy): Promise<FetchedSource> {
  const rules: UrlRules = policy;
  const maxRedirects = policy.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  const deadlineMs = policy.totalTimeoutMs ?? DEFAULT_FETCH_DEADLINE_MS;
  let current = assertUrlAllowedSyntax(url, rules);

  const deadline = new AbortController();
  const attempt: Attempt = {
    deadline,
    deadlineAt: Date.now() + deadlineMs,
    policySignal: policy.signal,
    signal: policy.signal ? AbortSignal.any([policy.signal, deadline.signal]) : deadline.signal,
    connectTimeoutMs: policy.connectTimeoutMs ?? 5000,
    lastFault: null,
  };
  const timer = setTimeout(() => {
    const last = attempt.lastFault === null ? '' : ` (last try: ${attempt.lastFault})`;
    deadline.abort(
      new UrlFetchFailedError('deadline', `URL fetch did not finish within the ${seconds(deadlineMs)} deadline${last}`, {
        deadlineSeconds: deadlineMs / 1000,
      }),
    );
  }, deadlineMs);
  const agent = createSafeAgent({
    allowPrivateNetworks: policy.allowPrivateNetworks,
    allowHosts: policy.allowHosts,
    connectTimeoutMs: attempt.connectTimeoutMs,
    // The deadline (an abort) ends these first; undici's own timers are only a backstop.
    headersTimeoutMs: deadlineMs + 1000,
    bodyTimeoutMs: deadlineMs + 1000,
    lookup: policy.lookup,
    ca: policy.ca,
  });
  const release = (): void => {
    clearTimeout(timer);
    agent.destroy().catch(() => undefined);
  };

  try {
    for (let hop = 0; ; hop++) {
      const res = await requestWithRetries(agent, current, attempt, hop);

      const location = header(res.headers, 'location');
      if (REDIRECT_STATUSES.has(res.statusCode) && location !== null) {
        discard(res.body);
        const next = redirectTarget(current, location, hop, maxRedirects);
        try {
          current = assertUrlAllowedSyntax(next.href, rules);
        } catch (err) {
          if (err instanceof UrlRefusedError) throw new UrlRefusedError(err.details.reason, `redirect refused: ${err.message}`, { ...err.details, hop: hop + 1 });
          throw err;
        }
        continue;
      }

      if (res.statusCode < 200 || res.statusCode > 299) {
        // Retryable statuses were retried inside requestWithRetries; a 4xx answers the same next
        // time, and so does a 3xx without a Location.
        discard(res.body);
        throw new UrlFetchFailedError('http_status', `URL answered ${res.statusCode}`, { status: res.statusCode });
      }

      const declaredLength = parseLength(header(res.headers, 'content-length'));
      if (declaredLength !== null && declaredLength > policy.maxBytes) {
        discard(res.body);
        throw new PermanentError('FILE_TOO_LARGE', `URL declares ${declaredLength} bytes, over the ${policy.maxBytes}-byte limit`, {
          limit: policy.maxBytes,
          declared: declaredLength,
        });
      }

      const body = meterBody(res.body, {
        maxBytes: policy.maxBytes,
        stallMs: policy.stallTimeoutMs ?? DEFAULT_STALL_MS,
        minBytesPerSecond: policy.minBytesPerSecond ?? DEFAULT_MIN_BYTES_PER_SECOND,
        attempt,
        release,
      });
      return {
        body,
        contentType: header(res.headers, 'content-type'),
        filename: filenameFromContentDisposition(header(res.headers, 'content-disposition')) ?? filenameFromUrl(current),
        finalUrl: current.href,
        declaredLength,
      };
    }
  } catch (err) {
    release();
    throw err;
  }
}

/**
 * One hop's request, tried again after a refused or reset connection or a "try later" answer until
 * the deadline. Returns any other answer; throws only final errors (or the caller's abort).
 */
async function requestWithRetries(agent: ReturnType<typeof createSafeAgent>, target: URL, attempt: Attempt, hop: number): Promise<Dispatcher.ResponseData> {
  for (let failed = 0; ; ) {
    let res: Dispatcher.ResponseData;
    try {
      res = await agent.request({
        origin: target.origin,
        path: target.pathname + target.search,
        method: 'GET',
        headers: { 'accept-encoding': 'identity', 'user-agent': 'mediaflow-fetch/1', accept: '*/*' },
        signal: attempt.signal,
      });
    } catch (err) {
      const final = finalRequestError(err, attempt, hop);
      if (final) throw final;
      attempt.lastFault = describeFault(err);
      await backoff(attempt, ++failed, null);
      continue;
    }
    if (!RETRYABLE_STATUSES.has(res.statusCode)) return res;
    discard(res.body);
    attempt.lastFault = `URL answered ${res.statusCode}`;
    const retryAfter = parseRetryAfter(header(res.headers, 'retry-after'), Date.now());
    if (retryAfter !== null && Date.now() + retryAfter >= attempt.deadlineAt) {
      // The server itself says it will not be ready before the deadline: waiting would only hold the worker.
      throw new UrlFetchFailedError('http_status', `URL answered ${res.statusCode} and asked to retry after the fetch deadline`, {
        status: res.statusCode,
        retryAfterSeconds: Math.ceil(retryAfter / 1000),
      });
    }
    await backoff(attempt, ++failed, retryAfter);
  }
}

/** Waits before the next try; the deadline (or the caller's abort) ends the wait with its reason. */
async function backoff(attempt: Attempt, failedTries: number, retryAfterMs: number | null): Promise<void> {
  try {
    await sleep(retryDelayMs(failedTries, retryAfterMs), undefined, { signal: attempt.signal });
  } catch {
    throw abortReason(attempt) ?? new UrlFetchFailedError('deadline', 'URL fetch was cut short');
  }
}

/** The reason of whichever abort fired: the caller's first (its abort stays retryable), then the deadline. */
function abortReason(attempt: Attempt): unknown {
  if (attempt.policySignal?.aborted) return attempt.policySignal.reason ?? new Error('URL fetch aborted');
  if (attempt.deadline.signal.aborted) return attempt.deadline.signal.reason;
  return null;
}

/** Null when the fault is worth another try; otherwise the final error to throw. */
function finalRequestError(err: unknown, attempt: Attempt, hop: number): unknown {
  if (err instanceof UrlRefusedError) {
    return hop > 0 ? new UrlRefusedError(err.details.reason, `redirect refused: ${err.message}`, { ...err.details, hop }) : err;
  }
  if (err instanceof PermanentError) return err;
  const aborted = abortReason(attempt);
  if (aborted) return aborted;
  if (isRetryableFault(err)) return null;
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new UrlFetchFailedError('deadline', 'URL fetch did not finish within the deadline', {}, err);
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new UrlFetchFailedError('unreachable', `URL host did not accept a connection within ${seconds(attempt.connectTimeoutMs)}`, {}, err);
  }
  if (code === 'ENOTFOUND') return new UrlFetchFailedError('unreachable', 'URL host name does not exist', {}, err);
  return new UrlFetchFailedError('unreachable', `URL fetch failed: ${describeFault(err)}`, code === undefined ? {} : { errorCode: code }, err);
}

interface MeterOptions {
  maxBytes: number;
  stallMs: number;
  minBytesPerSecond: number;
  attempt: Attempt;
  release: () => void;
}

/**
 * Counts what arrives: fails the moment it passes the cap, and fails when a whole stall window
 * brings less than the floor rate (a server dribbling a byte a second never trips an idle timer).
 * Failing destroys undici's body, which aborts the response and its socket; `release` then tears
 * down the agent, so the sender cannot keep pushing into our buffers.
 */
function meterBody(source: Readable, o: MeterOptions): Readable {
  let received = 0;
  let windowStart = 0;
  const minPerWindow = Math.ceil((o.minBytesPerSecond * o.stallMs) / 1000);
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      received += chunk.length;
      if (received > o.maxBytes) {
        cb(new PermanentError('FILE_TOO_LARGE', `URL sent more than the ${o.maxBytes}-byte limit`, { limit: o.maxBytes }));
        return;
      }
      cb(null, chunk);
    },
  });
  const stallCheck = setInterval(() => {
    const moved = received - windowStart;
    windowStart = received;
    // Bytes waiting on our side mean the reader, not the origin, is the slow one.
    const backlog = counter.readableLength + counter.writableLength;
    if (moved >= minPerWindow || backlog > 0) return;
    counter.destroy(
      new UrlFetchFailedError(
        'stalled',
        `URL transfer stalled: ${moved} bytes in ${seconds(o.stallMs)}, under the floor of ${o.minBytesPerSecond} bytes/s`,
        { stallSeconds: o.stallMs / 1000, bytesInWindow: moved, received },
      ),
    );
  }, o.stallMs);
  stallCheck.unref();
  source.once('end', () => clearInterval(stallCheck));
  // Registered before pipeline's own listener, so the reader sees the final error, not undici's raw one.
  source.on('error', (err) => counter.destroy(finalBodyError(err, o.attempt)));
  pipeline(source, counter, () => {
    clearInterval(stallCheck);
    o.release();
  });
  return counter;
}

function finalBodyError(err: unknown, attempt: Attempt): Error {
  if (err instanceof PermanentError) return err;
  const aborted = abortReason(attempt);
  if (aborted) return aborted instanceof Error ? aborted : new Error(String(aborted));
  return new UrlFetchFailedError('transfer', `URL transfer broke off: ${describeFault(err)}`, {}, err);
}
