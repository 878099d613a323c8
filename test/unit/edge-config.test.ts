/**
 * Issue 9, the configuration half of the API edge: operator tokens of at least 32 characters,
 * TRUST_PROXY entries, and the production refusals (PUBLIC_BASE_URL, MASTER_KEYS, no development
 * key). Pure: loadConfig over a given environment.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { trustedProxies } from '../../src/api/trusted-proxies.js';

const fail = (env: Record<string, string>): string => {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
};

describe('operator tokens', () => {
  it.each(['ADMIN_TOKEN', 'ADMIN_WRITE_TOKEN', 'METRICS_TOKEN'])('%s shorter than 32 characters stops the start with one line naming it, never its value', (name) => {
    const value = 'short-but-secret-31-characters!';
    expect(value).toHaveLength(31);
    const msg = fail({ [name]: value });
    expect(msg).toMatch(new RegExp(`^invalid configuration: ${name}=.*at least 32 characters`));
    expect(msg).not.toContain(value);
    expect(msg).not.toContain('\n');
    expect(loadConfig({ [name]: 'x'.repeat(32) })[name as 'ADMIN_TOKEN']).toBe('x'.repeat(32));
  });

  it('refuses a write token equal to the read token', () => {
    const t = 'same-token-for-both-'.padEnd(40, '0');
    expect(fail({ ADMIN_TOKEN: t, ADMIN_WRITE_TOKEN: t })).toMatch(/^invalid configuration: ADMIN_WRITE_TOKEN must differ from ADMIN_TOKEN/);
  });
});

describe('TRUST_PROXY', () => {
  it('trusts no proxy by default', () => {
    expect(loadConfig({}).TRUST_PROXY).toEqual([]);
    expect(trustedProxies([]).trustProxy).toBe(false);
  });

  it('takes addresses, CIDRs and the named ranges, and refuses anything else naming the variable', () => {
    expect(loadConfig({ TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,::1,loopback' }).TRUST_PROXY).toEqual(['10.0.0.0/8', '127.0.0.1', '::1', 'loopback']);
    for (const bad of ['*', 'true', '10.0.0.0/33', 'proxy.example', '10.0.0.1/x']) expect(fail({ TRUST_PROXY: bad })).toMatch(/^invalid configuration: TRUST_PROXY/);
  });

  it('matches peers (IPv4-mapped too) against the list', () => {
    const p = trustedProxies(['10.1.0.0/16', '192.0.2.7', 'loopback']);
    expect(p.trustProxy).toEqual(['10.1.0.0/16', '192.0.2.7/32', '127.0.0.0/8', '::1/128']);
    for (const yes of ['10.1.2.3', '::ffff:10.1.9.9', '192.0.2.7', '127.0.0.1', '::1']) expect(p.trusts(yes), yes).toBe(true);
    for (const no of ['10.2.0.1', '192.0.2.8', '8.8.8.8', '::2', '', undefined]) expect(p.trusts(no), String(no)).toBe(false);
  });
});

describe('NODE_ENV=production refuses development conveniences', () => {
  const keys = { MASTER_KEYS: `k1:${randomBytes(32).toString('base64')}`, ACTIVE_KEY_ID: 'k1' };
  const base = { NODE_ENV: 'production', PUBLIC_BASE_URL: 'https://media.example.com', CONSOLE_SESSION_SECRET: 's'.repeat(32), ...keys };

  it('starts with PUBLIC_BASE_URL and MASTER_KEYS', () => {
    expect(loadConfig(base).PUBLIC_BASE_URL).toBe('https://media.example.com');
  });

  it('requires PUBLIC_BASE_URL (URLs must not come from request headers)', () => {
    expect(fail({ ...base, PUBLIC_BASE_URL: '' })).toMatch(/^invalid configuration: PUBLIC_BASE_URL is required when NODE_ENV=production/);
  });

  it('requires MASTER_KEYS: no key generated into DATA_DIR', () => {
    expect(fail({ NODE_ENV: 'production', PUBLIC_BASE_URL: base.PUBLIC_BASE_URL })).toMatch(/^invalid configuration: MASTER_KEYS is required when NODE_ENV=production/);
  });

  it('refuses the development MASTER_KEY, even beside MASTER_KEYS, without printing it', () => {
    const dev = randomBytes(32).toString('base64');
    const msg = fail({ ...base, MASTER_KEY: dev });
    expect(msg).toMatch(/^invalid configuration: MASTER_KEY is a development key/);
    expect(msg).not.toContain(dev);
  });

  it('requires CONSOLE_SESSION_SECRET: console sessions are not signed with a derived development key', () => {
    expect(fail({ ...base, CONSOLE_SESSION_SECRET: '' })).toMatch(/^invalid configuration: CONSOLE_SESSION_SECRET is required when NODE_ENV=production/);
    expect(fail({ ...base, CONSOLE_SESSION_SECRET: 'short' })).toMatch(/^invalid configuration: CONSOLE_SESSION_SECRET="\[redacted\]": must be at least 32/);
  });

  it('refuses ALLOW_PRIVATE_URLS, the test-only loopback allowance', () => {
    expect(fail({ ...base, ALLOW_PRIVATE_URLS: 'true' })).toMatch(/^invalid configuration: ALLOW_PRIVATE_URLS is for tests/);
  });

  it('development and test keep their conveniences', () => {
    expect(loadConfig({ NODE_ENV: 'development' }).PUBLIC_BASE_URL).toBeUndefined();
    expect(loadConfig({ NODE_ENV: 'test', MASTER_KEY: randomBytes(32).toString('base64') }).MASTER_KEYS).toBeUndefined();
  });
});
