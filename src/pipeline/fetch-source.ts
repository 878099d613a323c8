import type dns from 'node:dns';
import { Readable, Transform, pipeline } from 'node:stream';
import type { Dispatcher } from 'undici';
import { PermanentError } from '../domain/errors.js';
import { filenameFromContentDisposition, filenameFromUrl } from './net/filename.js';
import { UrlRefusedError } from './net/refusal.js';
import { createSafeAgent } from './net/safe-agent.js';
import { assertUrlAllowedSyntax as checkUrl, type UrlRules } from './net/url-check.js';

export { UrlRefusedError, type UrlRefusalReason } from './net/refusal.js';
export { createSafeAgent } from './net/safe-agent.js';

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
  totalTimeoutMs?: number;
  maxRedirects?: number;
  signal?: AbortSignal;
  /** Injectable resolver (tests map names to local or mixed answers); every answer is still checked. */
  lookup?: typeof dns.lookup;
}

export interface FetchedSource {
  /** Errors with FILE_TOO_LARGE once more than maxBytes arrive, and with a timeout error past totalTimeoutMs. */
  body: Readable;
  contentType: string | null;
  filename: string | null;
  finalUrl: string;
  declaredLength: number | null;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
/** 4xx answers that say "not now" rather than "never". */
const RETRYABLE_CLIENT_STATUSES = new Set([408, 425, 429]);

/** Cheap synchronous pre-check at request time (scheme, credentials, ports, IP-literal hosts). */
export function assertUrlAllowedSyntax(url: string, policy: Pick<FetchPolicy, 'allowPrivateNetworks' | 'allowedPorts' | 'allowHosts'>): URL {
  return checkUrl(url, policy);
}

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

/**
 * Opens `url` for streaming under the SSRF rules: http(s) only, no credentials, allowed ports only,
 * and every connection (the first and each redirect's) made only to an address that passed the check
 * at connect time. Redirects are followed here, not by undici, so each hop is re-checked. The body is
 * passed through exactly as sent (no decompression), so the size cap counts the bytes on the wire and
 * a compression bomb is never inflated here.
 */
export async function openUrl(url: string, policy: FetchPolicy): Promise<FetchedSource> {
  const rules: UrlRules = policy;
  const maxRedirects = policy.maxRedirects ?? 5;
  const totalTimeoutMs = policy.totalTimeoutMs ?? 60_000;
  let current = checkUrl(url, rules);

  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error(`URL fetch timed out after ${totalTimeoutMs} ms`)), totalTimeoutMs);
  const signal = policy.signal ? AbortSignal.any([policy.signal, deadline.signal]) : deadline.signal;
  const agent = createSafeAgent({
    allowPrivateNetworks: policy.allowPrivateNetworks,
    allowHosts: policy.allowHosts,
    connectTimeoutMs: policy.connectTimeoutMs ?? 5000,
    headersTimeoutMs: totalTimeoutMs,
    bodyTimeoutMs: totalTimeoutMs,
    lookup: policy.lookup,
  });
  const release = (): void => {
    clearTimeout(timer);
    agent.destroy().catch(() => undefined);
  };

  try {
    for (let hop = 0; ; hop++) {
      let res: Dispatcher.ResponseData;
      try {
        res = await agent.request({
          origin: current.origin,
          path: current.pathname + current.search,
          method: 'GET',
          headers: { 'accept-encoding': 'identity', 'user-agent': 'mediaflow-fetch/1', accept: '*/*' },
          signal,
        });
      } catch (err) {
        throw translateError(err, { hop, deadline: deadline.signal, policySignal: policy.signal, connectTimeoutMs: policy.connectTimeoutMs ?? 5000 });
      }

      const location = header(res.headers, 'location');
      if (REDIRECT_STATUSES.has(res.statusCode) && location !== null) {
        discard(res.body);
        if (hop >= maxRedirects) {
          throw new UrlRefusedError('redirects', `URL redirected more than ${maxRedirects} times`, { maxRedirects });
        }
        let next: URL;
        try {
          next = new URL(location, current);
        } catch {
          throw new UrlRefusedError('redirect_location', 'URL redirected to an invalid location');
        }
        try {
          current = checkUrl(next.href, rules);
        } catch (err) {
          if (err instanceof UrlRefusedError) throw new UrlRefusedError(err.details.reason, `redirect refused: ${err.message}`, { ...err.details, hop: hop + 1 });
          throw err;
        }
        continue;
      }

      if (res.statusCode < 200 || res.statusCode > 299) {
        discard(res.body);
        const message = `URL answered ${res.statusCode}`;
        // A 4xx will answer the same next time; so will a 3xx without a Location. 5xx and the
        // "try later" 4xx are the server's trouble, and the job is retried.
        const permanent = res.statusCode < 400 || (res.statusCode < 500 && !RETRYABLE_CLIENT_STATUSES.has(res.statusCode));
        if (permanent) throw new PermanentError('VALIDATION_FAILED', message, { field: 'url', reason: 'http_status', status: res.statusCode });
        throw new Error(message);
      }

      const declaredLength = parseLength(header(res.headers, 'content-length'));
      if (declaredLength !== null && declaredLength > policy.maxBytes) {
        discard(res.body);
        throw new PermanentError('FILE_TOO_LARGE', `URL declares ${declaredLength} bytes, over the ${policy.maxBytes}-byte limit`, {
          limit: policy.maxBytes,
          declared: declaredLength,
        });
      }

      const body = limitBody(res.body, policy.maxBytes, release);
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
 * Counts what arrives and fails the moment it passes the cap. Failing the pipeline destroys undici's
 * body, which aborts the in-flight response and with it the socket; `release` then tears down the
 * agent, so the sender cannot keep pushing into our buffers.
 */
function limitBody(source: Readable, maxBytes: number, release: () => void): Readable {
  let received = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      received += chunk.length;
      if (received > maxBytes) {
        cb(new PermanentError('FILE_TOO_LARGE', `URL sent more than the ${maxBytes}-byte limit`, { limit: maxBytes }));
        return;
      }
      cb(null, chunk);
    },
  });
  pipeline(source, counter, () => release());
  return counter;
}

interface ErrorContext {
  hop: number;
  deadline: AbortSignal;
  policySignal: AbortSignal | undefined;
  connectTimeoutMs: number;
}

/** Refusals stay permanent; the caller's abort stays an abort; every other fault is transient. */
function translateError(err: unknown, ctx: ErrorContext): unknown {
  if (err instanceof PermanentError) {
    if (ctx.hop > 0 && err instanceof UrlRefusedError) {
      return new UrlRefusedError(err.details.reason, `redirect refused: ${err.message}`, { ...err.details, hop: ctx.hop });
    }
    return err;
  }
  if (ctx.policySignal?.aborted) return ctx.policySignal.reason ?? err;
  if (ctx.deadline.aborted) return ctx.deadline.reason;
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return new Error(`URL connect timed out after ${ctx.connectTimeoutMs} ms`, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new Error(`URL fetch failed: ${message}`, { cause: err });
}
