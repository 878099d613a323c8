/** Console passwords (src/domain/password.ts): pure scrypt hashing and checks, no I/O. */
import { describe, expect, it } from 'vitest';
import { dummyHash, hashPassword, normalizeEmail, passwordProblem, verifyPassword } from '../../src/domain/password.js';

describe('console passwords', () => {
  it('hashes with a fresh salt and verifies only the same password', async () => {
    const a = await hashPassword('correct horse battery');
    const b = await hashPassword('correct horse battery');
    expect(a).toMatch(/^scrypt\$15\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse battery', a)).toBe(true);
    expect(await verifyPassword('correct horse batterY', a)).toBe(false);
    expect(await verifyPassword('', a)).toBe(false);
  });

  it('treats composed and decomposed accents as the same password (NFC)', async () => {
    const h = await hashPassword('mot de passe é long');
    expect(await verifyPassword('mot de passe e\u0301 long', h)).toBe(true);
  });

  it('never matches a malformed or absurd stored hash, and never throws on one', async () => {
    for (const bad of ['', 'plain', 'scrypt$15$8$1$x', 'scrypt$40$8$1$AAAA$AAAA', 'bcrypt$2b$10$abc', (await dummyHash()).replace('$15$', '$31$')]) {
      expect(await verifyPassword('anything at all', bad)).toBe(false);
    }
  });

  it('the dummy hash (checked for unknown emails) matches no password anyone knows', async () => {
    expect(await dummyHash()).toBe(await dummyHash());
    expect(await verifyPassword('', await dummyHash())).toBe(false);
  });

  it('refuses short and huge passwords, and normalizes emails', () => {
    expect(passwordProblem('short')).toMatch(/at least 10/);
    expect(passwordProblem('x'.repeat(2000))).toMatch(/at most/);
    expect(passwordProblem('ten chars!!')).toBeNull();
    expect(normalizeEmail('  Ops@Example.COM ')).toBe('ops@example.com');
    expect(normalizeEmail('not an email')).toBeNull();
    expect(normalizeEmail('a@b')).toBeNull();
  });
});
