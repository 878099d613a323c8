import { UrlRefusedError } from './refusal.js';

export const DEFAULT_MAX_REDIRECTS = 3;

/**
 * Where a redirect may lead, decided without the network: at most `maxRedirects` hops, a parseable
 * Location, and never from https down to http, which would send the rest of the exchange (and what
 * the origin meant to protect) in clear text past anyone on the path. The address and port rules are
 * applied to the result afterwards, like for the first URL.
 */
export function redirectTarget(current: URL, location: string, hopsFollowed: number, maxRedirects: number = DEFAULT_MAX_REDIRECTS): URL {
  if (hopsFollowed >= maxRedirects) {
    throw new UrlRefusedError('redirects', `URL redirected more than ${maxRedirects} times; at most ${maxRedirects} redirects are followed`, { maxRedirects });
  }
  let next: URL;
  try {
    next = new URL(location, current);
  } catch {
    throw new UrlRefusedError('redirect_location', 'URL redirected to an invalid location', { hop: hopsFollowed + 1 });
  }
  if (current.protocol === 'https:' && next.protocol === 'http:') {
    throw new UrlRefusedError('redirect_downgrade', 'redirect refused: an https URL may not redirect to plain http', { hop: hopsFollowed + 1 });
  }
  return next;
}
