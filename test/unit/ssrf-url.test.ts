import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { UrlRefusedError } from '../../src/net/refusal.js';
import { assertUrlAllowedSyntax } from '../../src/net/url-check.js';
import { filenameFromContentDisposition, filenameFromUrl, sanitizeFilename } from '../../src/net/filename.js';

function refusedReason(url: string, rules: Parameters<typeof assertUrlAllowedSyntax>[1] = {}): string {
  try {
    assertUrlAllowedSyntax(url, rules);
  } catch (err) {
    expect(err).toBeInstanceOf(UrlRefusedError);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as UrlRefusedError).code).toBe('VALIDATION_FAILED');
    return (err as UrlRefusedError).details.reason;
  }
  return 'allowed';
}

describe('WHATWG normalisation reaches the address check', () => {
  // Verified, not assumed: each legacy notation is what a naive string check would miss.
  it.each([
    ['http://2130706433/', '127.0.0.1'],
    ['http://0x7f.1/', '127.0.0.1'],
    ['http://0177.0.0.1/', '127.0.0.1'],
    ['http://127.1/', '127.0.0.1'],
    ['http://0x7f000001/', '127.0.0.1'],
    ['http://%31%32%37.0.0.1/', '127.0.0.1'],
    ['http://127.0.0.1./', '127.0.0.1'],
    ['http://0/', '0.0.0.0'],
    ['http://0300.0250.0.1/', '192.168.0.1'],
    ['http://[::ffff:127.0.0.1]/', '[::ffff:7f00:1]'],
    ['http://[0:0:0:0:0:ffff:7f00:1]/', '[::ffff:7f00:1]'],
  ])('%s parses to host %s and is refused', (url, host) => {
    expect(new URL(url).hostname).toBe(host);
    expect(refusedReason(url)).toBe('blocked_address');
  });
});

describe('assertUrlAllowedSyntax', () => {
  it.each([
    ['http://example.com/a.jpg', 'allowed'],
    ['https://example.com/a.jpg', 'allowed'],
    ['HTTPS://EXAMPLE.COM:443/a.jpg', 'allowed'],
    ['http://example.com:80/', 'allowed'],
    ['http://8.8.8.8/', 'allowed'],
    ['http://[2606:4700:4700::1111]/', 'allowed'],
    ['http://[::ffff:8.8.8.8]/', 'allowed'],
    ['file:///etc/passwd', 'scheme'],
    ['gopher://x/', 'scheme'],
    ['ftp://example.com/a', 'scheme'],
    ['data:text/plain;base64,QQ==', 'scheme'],
    ['javascript:alert(1)', 'scheme'],
    ['ws://example.com/', 'scheme'],
    ['http://user:pw@example.com/', 'credentials'],
    ['http://user@example.com/', 'credentials'],
    ['http://:pw@example.com/', 'credentials'],
    ['http://example.com:8080/', 'port'],
    ['http://example.com:443/', 'allowed'], // the list holds ports, not scheme pairings
    ['http://example.com:22/', 'port'],
    ['https://example.com:6379/', 'port'],
    ['http://127.0.0.1/', 'blocked_address'],
    ['http://[::1]/', 'blocked_address'],
    ['http://[::]/', 'blocked_address'],
    ['http://169.254.169.254/latest/meta-data/', 'blocked_address'],
    ['http://[fd00:ec2::254]/', 'blocked_address'],
    ['http://[64:ff9b::127.0.0.1]/', 'blocked_address'],
    ['http://[2002:7f00:1::]/', 'blocked_address'],
    ['http://10.0.0.5/', 'blocked_address'],
    ['http://100.100.100.200/', 'blocked_address'],
    ['http://localhost/', 'blocked_host'],
    ['http://LOCALHOST./', 'blocked_host'],
    ['http://api.localhost/', 'blocked_host'],
    ['not a url', 'invalid_url'],
    ['/relative/path', 'invalid_url'],
    ['http://1.2.3.4.5/', 'invalid_url'],
  ])('%s → %s', (url, expected) => {
    expect(refusedReason(url)).toBe(expected);
  });

  it('uses the configured ports instead of the defaults', () => {
    expect(refusedReason('http://example.com:8080/', { allowedPorts: [8080] })).toBe('allowed');
    expect(refusedReason('http://example.com/', { allowedPorts: [8080] })).toBe('port');
  });

  it('allowPrivateNetworks lifts the address and port rules, not the scheme or credential rules', () => {
    expect(refusedReason('http://127.0.0.1:9999/', { allowPrivateNetworks: true })).toBe('allowed');
    expect(refusedReason('http://localhost:9999/', { allowPrivateNetworks: true })).toBe('allowed');
    expect(refusedReason('file:///etc/passwd', { allowPrivateNetworks: true })).toBe('scheme');
    expect(refusedReason('http://u:p@127.0.0.1/', { allowPrivateNetworks: true })).toBe('credentials');
  });

  it('allowHosts exempts exactly one host:port pair', () => {
    const rules = { allowHosts: ['127.0.0.1:4000', '[::1]:4001'] };
    expect(refusedReason('http://127.0.0.1:4000/x', rules)).toBe('allowed');
    expect(refusedReason('http://2130706433:4000/x', rules)).toBe('allowed'); // same host after normalisation
    expect(refusedReason('http://[::1]:4001/', rules)).toBe('allowed');
    expect(refusedReason('http://127.0.0.1:4001/', rules)).toBe('port');
    expect(refusedReason('http://127.0.0.1:4001/', { ...rules, allowedPorts: [4001] })).toBe('blocked_address');
    expect(refusedReason('http://127.0.0.2:4000/', { ...rules, allowedPorts: [4000] })).toBe('blocked_address');
    expect(refusedReason('http://127.0.0.1/', rules)).toBe('blocked_address');
  });

  it('says why in the message', () => {
    expect(() => assertUrlAllowedSyntax('http://[::ffff:169.254.169.254]/', {})).toThrow(
      'URL points to a link-local address (169.254.169.254 inside an IPv4-mapped address)',
    );
    expect(() => assertUrlAllowedSyntax('ftp://x/', {})).toThrow('URL scheme ftp: is not allowed; use http or https');
  });

  it('returns the parsed URL', () => {
    expect(assertUrlAllowedSyntax('https://Example.com/a%20b.jpg?q=1', {}).href).toBe('https://example.com/a%20b.jpg?q=1');
  });
});

describe('file names from a remote party', () => {
  it.each([
    ['photo.jpg', 'photo.jpg'],
    ['../../etc/passwd', 'passwd'],
    ['C:\\Users\\x\\evil.exe', 'evil.exe'],
    ['.htaccess', 'htaccess'],
    ['..', null],
    ['.', null],
    ['   ', null],
    ['', null],
    ['a\u0000b.txt', 'ab.txt'],
    ['invoice\u202Egpj.exe', 'invoicegpj.exe'],
    ['re:port?.pdf', 're_port_.pdf'],
    ['name.pdf.', 'name.pdf'],
    ['x'.repeat(300) + '.jpeg', 'x'.repeat(195) + '.jpeg'],
  ])('%j → %j', (raw, expected) => {
    expect(sanitizeFilename(raw)).toBe(expected);
  });

  it.each([
    ['attachment; filename="a.pdf"', 'a.pdf'],
    ['attachment; filename=a.pdf', 'a.pdf'],
    ['attachment; filename="a;b.pdf"', 'a;b.pdf'],
    ['attachment; filename="q\\"uote.pdf"', 'q_uote.pdf'],
    ["attachment; filename*=UTF-8''na%C3%AFve.txt; filename=\"naive.txt\"", 'naïve.txt'],
    ["attachment; filename*=utf-8''%2E%2E%2Fsecret", 'secret'],
    ["attachment; filename*=UTF-8''%E0%A4%A", null], // malformed escape and no fallback
    ["attachment; filename*=UTF-8''%E0%A4%A; filename=ok.txt", 'ok.txt'],
    ['inline', null],
    ['', null],
  ])('Content-Disposition %j → %j', (header, expected) => {
    expect(filenameFromContentDisposition(header)).toBe(expected);
  });

  it.each([
    ['http://x/a/b/c.png?q=1#f', 'c.png'],
    ['http://x/a/b%2Fc.png', 'c.png'],
    ['http://x/', null],
    ['http://x/dir/', null],
    ['http://x/%E0%A4%A.bin', '%E0%A4%A.bin'],
  ])('URL %s → %j', (url, expected) => {
    expect(filenameFromUrl(new URL(url))).toBe(expected);
  });
});
