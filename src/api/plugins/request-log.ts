import type { FastifyRequest } from 'fastify';
import { redactSecrets } from '../../log.js';

/** Percent-escapes decoded run by run; a malformed run is kept as written. */
function decodeEscapes(url: string): string {
  return url.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

/**
 * A request URL as it may be logged: the temporary file URL and the upload slot URL carry their
 * bearer token in the path, and clients put keys in query strings (`?api_key=mf_…`) or paths;
 * `redactSecrets` blanks all of them. The router decodes escapes, so a credential hidden behind
 * them (`/v1/%66iles/<token>`, `api%5Fkey=`) is judged decoded, and then logged decoded.
 */
export function redactUrl(url: string): string {
  const plain = redactSecrets(url);
  if (!url.includes('%')) return plain;
  const decoded = decodeEscapes(url);
  const scrubbed = redactSecrets(decoded);
  return scrubbed === decoded ? plain : scrubbed;
}

/**
 * Fastify's request serializer with the URL redacted. Installed on the logger handed to Fastify:
 * a pino instance's own serializers take precedence over Fastify's defaults.
 */
export function requestSerializer(req: FastifyRequest) {
  return {
    method: req.method,
    url: redactUrl(req.url),
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket ? req.socket.remotePort : undefined,
  };
}
