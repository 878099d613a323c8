import type { FastifyRequest } from 'fastify';

/**
 * Path segments that are credentials: the temporary public file URL and the upload slot URL carry
 * their bearer token in the path, so a plain `url` in the request log would hand out the file.
 */
const TOKEN_IN_PATH = /^(\/v1\/(?:files|uploads)\/)[^/?#]+/;

export function redactUrl(url: string): string {
  return url.replace(TOKEN_IN_PATH, '$1[redacted]');
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
