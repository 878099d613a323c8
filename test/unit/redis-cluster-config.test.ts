/**
 * Issue 13, configuration for a Redis Cluster: REDIS_URL as a seed list, the hash-tag rule for
 * QUEUE_PREFIX (one rule in src/config, one in src/queue/connection for the producer: they must
 * agree), and a password in a bad URL never echoed. Pure: no connection is made.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { assertPrefixFits, clusterPrefixProblem, isClusterUrl, parseClusterUrl } from '../../src/queue/connection.js';

const fail = (env: Record<string, string>): string => {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
};

describe('REDIS_URL', () => {
  it('reads a seed list: hosts, ports (6379 by default), IPv6 in brackets, credentials, TLS', () => {
    expect(parseClusterUrl('redis+cluster://h1:7000,h2:7001')).toEqual({ nodes: [{ host: 'h1', port: 7000 }, { host: 'h2', port: 7001 }], username: undefined, password: undefined, tls: false });
    expect(parseClusterUrl('rediss+cluster://app:p%40ss:w@10.0.0.1,[fd00::1]:7002/')).toEqual({
      nodes: [{ host: '10.0.0.1', port: 6379 }, { host: 'fd00::1', port: 7002 }],
      username: 'app',
      password: 'p@ss:w',
      tls: true,
    });
    expect(parseClusterUrl('redis+cluster://:secret@h1:7000').password).toBe('secret');
    for (const bad of ['redis+cluster://', 'redis+cluster://h1:7000/0', 'redis+cluster://h1:70000', 'redis+cluster://h1:7000,,h2', 'redis+cluster://h1:7000?x=1']) {
      expect(() => parseClusterUrl(bad), bad).toThrow(/host/);
    }
    expect(isClusterUrl('redis://127.0.0.1:6379')).toBe(false);
    expect(isClusterUrl('REDIS+CLUSTER://h:1')).toBe(true);
  });

  it('is accepted by the configuration as a cluster seed list or a plain URL; anything else is one line, the password redacted', () => {
    expect(loadConfig({ REDIS_URL: 'redis+cluster://h1:7000,h2:7001', QUEUE_PREFIX: '{mediaflow}' }).REDIS_URL).toBe('redis+cluster://h1:7000,h2:7001');
    expect(loadConfig({ REDIS_URL: 'rediss://user:pw@redis.example.com:6380/2' }).REDIS_URL).toBe('rediss://user:pw@redis.example.com:6380/2');
    expect(loadConfig({}).REDIS_URL).toBe('redis://127.0.0.1:6379');
    const msg = fail({ REDIS_URL: 'redis+cluster://app:hunter2@h1:7000,h2:port' });
    expect(msg).toMatch(/^invalid configuration: REDIS_URL="redis\+cluster:\/\/\[redacted\]@h1:7000,h2:port": .*redis\+cluster:\/\/host1:port1,host2:port2/);
    expect(msg).not.toContain('hunter2');
    expect(fail({ REDIS_URL: 'not a url' })).toMatch(/REDIS_URL/);
  });
});

describe('QUEUE_PREFIX on a cluster', () => {
  const cases: Array<[string, boolean]> = [
    ['mediaflow', false],
    ['{mediaflow}', true],
    ['{mf}-prod', true],
    ['prod{mf}', true],
    ['{}', false],
    ['mf{}x', false],
    ['{mf', false],
    ['mf}{a}', true],
  ];
  it.each(cases)('%s: usable=%s, the same answer from the start-up check and from the producer', (prefix, usable) => {
    const url = 'redis+cluster://h1:7000';
    expect(clusterPrefixProblem(prefix) === null).toBe(usable);
    if (usable) {
      expect(loadConfig({ REDIS_URL: url, QUEUE_PREFIX: prefix }).QUEUE_PREFIX).toBe(prefix);
      expect(() => assertPrefixFits(url, prefix)).not.toThrow();
    } else {
      const msg = fail({ REDIS_URL: url, QUEUE_PREFIX: prefix });
      expect(msg).toContain(`QUEUE_PREFIX "${prefix}" has no hash tag`);
      expect(msg).toContain(clusterPrefixProblem(prefix)!);
      expect(() => assertPrefixFits(url, prefix)).toThrow(clusterPrefixProblem(prefix)!);
    }
  });

  it('is not required of a single server: the default prefix stays `mediaflow`', () => {
    expect(loadConfig({ REDIS_URL: 'redis://10.0.0.5:6379' }).QUEUE_PREFIX).toBe('mediaflow');
    expect(() => assertPrefixFits('redis://10.0.0.5:6379', 'mediaflow')).not.toThrow();
    expect(fail({ REDIS_URL: 'redis+cluster://h1:7000' })).toContain('use a prefix like "{mediaflow}"');
  });
});
