import { request, type Agent } from 'undici';
import type { Pool } from '../db/pool.js';
import { getDeliveryToSend, markDelivered, recordFailedAttempt } from '../db/repos/webhook-deliveries.js';
import type { Logger } from '../log.js';
import { assertUrlAllowedSyntax } from '../net/url-check.js';
import { signWebhook } from './sign.js';

export interface DeliverDeps {
  pool: Pool;
  log: Logger;
  /** The SSRF-safe agent: webhook URLs obey the same address rules as URL ingest. */
  agent: Agent;
  allowPrivateNetworks: boolean;
  timeoutMs?: number;
}

export type DeliveryOutcome = 'delivered' | 'skipped' | 'gave_up';

/**
 * Delivers one logged event. A 2xx ends the retries; a timeout, a network fault or any other status
 * throws so the queue retries with backoff; on the final attempt the delivery is marked failed.
 */
export async function deliverWebhook(deps: DeliverDeps, deliveryId: string, ctx: { finalAttempt: boolean }): Promise<DeliveryOutcome> {
  const d = await getDeliveryToSend(deps.pool, deliveryId);
  if (!d || d.status !== 'pending' || !d.webhook_url) return 'skipped';
  const body = JSON.stringify(d.body);
  const t = Math.floor(Date.now() / 1000);
  let statusCode: number | null = null;
  let error: string | null = null;
  try {
    const url = assertUrlAllowedSyntax(d.webhook_url, { allowPrivateNetworks: deps.allowPrivateNetworks });
    const res = await request(url, {
      method: 'POST',
      dispatcher: deps.agent,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'mediaflow-webhooks/1',
        'x-mediaflow-signature': signWebhook(d.webhook_secret, body, t),
        'x-mediaflow-event': (d.body as { event: string }).event,
        'x-mediaflow-delivery': deliveryId,
      },
      body,
      headersTimeout: deps.timeoutMs ?? 10_000,
      bodyTimeout: deps.timeoutMs ?? 10_000,
      signal: AbortSignal.timeout(deps.timeoutMs ?? 10_000),
    });
    statusCode = res.statusCode;
    await res.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
    if (statusCode < 200 || statusCode >= 300) error = `receiver answered ${statusCode}`;
  } catch (err) {
    error = (err as Error).message || String(err);
  }
  if (!error) {
    await markDelivered(deps.pool, deliveryId, statusCode);
    return 'delivered';
  }
  await recordFailedAttempt(deps.pool, deliveryId, statusCode, error, ctx.finalAttempt);
  deps.log.warn({ deliveryId, mediaId: d.media_id, statusCode, error, finalAttempt: ctx.finalAttempt }, 'webhook delivery failed');
  if (ctx.finalAttempt) return 'gave_up';
  throw new Error(`webhook delivery failed: ${error}`);
}
