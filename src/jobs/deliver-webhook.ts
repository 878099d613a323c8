import type { Agent } from 'undici';
import { createSafeAgent } from '../net/safe-agent.js';
import type { WebhookPayload } from '../queue/payloads.js';
import type { Runtime } from '../runtime.js';
import { deliverWebhook, type DeliveryOutcome } from '../webhooks/deliver.js';
import type { JobContext } from './job-context.js';

/** One SSRF-safe agent per runtime: its connection pool is shared by every delivery of the process. */
const agents = new WeakMap<Runtime, Agent>();
function webhookAgent(rt: Runtime): Agent {
  let agent = agents.get(rt);
  if (!agent) {
    agent = createSafeAgent({ allowPrivateNetworks: rt.config.ALLOW_PRIVATE_URLS, connectTimeoutMs: 5000 });
    agents.set(rt, agent);
  }
  return agent;
}

/** The `webhook` job: one attempt at one logged event; the last attempt marks it failed instead of throwing. */
export function deliverWebhookJob(rt: Runtime, payload: WebhookPayload, job: JobContext): Promise<DeliveryOutcome> {
  return deliverWebhook(
    { pool: rt.pool, log: job.log, agent: webhookAgent(rt), allowPrivateNetworks: rt.config.ALLOW_PRIVATE_URLS },
    payload.deliveryId,
    { finalAttempt: job.finalAttempt },
  );
}
