/**
 * The soak's checks (scripts/soak/invariants.ts) on evidence written by hand: a clean run holds
 * every line, and each kind of damage the soak exists to catch breaks its line. Without this, a
 * check that could never fail would pass the short soak just the same.
 */
import { describe, expect, it } from 'vitest';
import { checkInvariants, percentile, type Evidence, type MediaRowLite } from '../../scripts/soak/invariants.js';
import type { Sample } from '../../scripts/soak/corpus.js';
import type { Submission } from '../../scripts/soak/load.js';

const photo: Sample = { id: 'photo', group: 'photo', kind: 'image', mime: 'image/jpeg', filename: 'p.jpg', bytes: Buffer.alloc(1), expect: { status: 'ready' } };
const broken: Sample = { ...photo, id: 'broken', group: 'broken', expect: { status: 'failed', code: 'MEDIA_REJECTED' } };
const T = new Date('2026-12-02T08:00:00Z');
const at = (s: number) => new Date(T.getTime() + s * 1000);

function sub(seq: number, mediaId: string, sample = photo, extra: Partial<Submission> = {}): Submission {
  return { seq, sample, way: 'multipart', phase: 'baseline', startedAt: T.getTime(), acceptedAt: T.getTime(), mediaId, outcome: 'accepted', answers: [], ...extra };
}

function row(id: string, extra: Partial<MediaRowLite> = {}): MediaRowLite {
  return {
    id, status: 'ready', error_code: null, delete_reason: null, device_id: null, storage_key: `objects/app_1/${id}.run1.bin`, variants: [],
    original_name: 'p.jpg', expires_at: at(3600), deleted_at: null, ready_at: at(2), created_at: T, ...extra,
  };
}

/** Three media: one ready, one broken file failed, one of a destroyed device deleted; all in order. */
function clean(): Evidence {
  return {
    submissions: [sub(0, 'med_a'), sub(1, 'med_b', broken), sub(2, 'med_c', photo, { deviceId: 'dev1' })],
    rows: [
      row('med_a'),
      row('med_b', { status: 'failed', error_code: 'MEDIA_REJECTED' }),
      row('med_c', { status: 'deleted', delete_reason: 'device_destroyed', device_id: 'dev1', deleted_at: at(10) }),
    ],
    audits: [{ media_id: 'med_c', reason: 'device_destroyed', at: at(10) }],
    deliveries: [
      { id: 'evt_1', event: 'media.ready', media_id: 'med_a', status: 'delivered' },
      { id: 'evt_2', event: 'media.failed', media_id: 'med_b', status: 'delivered' },
      { id: 'evt_3', event: 'media.deleted', media_id: 'med_c', status: 'delivered' },
    ],
    received: [
      { id: 'evt_1', body: '{"id":"evt_1"}' },
      { id: 'evt_2', body: '{"id":"evt_2"}' },
      { id: 'evt_3', body: '{"id":"evt_3"}' },
    ],
    bucketKeys: ['objects/app_1/med_a.run1.bin'],
    scratchLeft: [],
    destroyedDevices: ['dev1'],
    peakRss: [{ name: 'worker-1', peakBytes: 300 * 2 ** 20 }],
    rssLimitBytes: 2 ** 30,
  };
}

const brokenLines = (ev: Evidence) => checkInvariants(ev).filter((l) => !l.held).map((l) => l.name);

describe('the soak invariants', () => {
  it('hold on a clean run', () => {
    expect(brokenLines(clean())).toEqual([]);
  });

  it('catch a lost media (accepted, no row)', () => {
    const ev = clean();
    ev.rows = ev.rows.filter((r) => r.id !== 'med_a');
    ev.bucketKeys = [];
    expect(brokenLines(ev)).toContain('every accepted media ready, failed with a contract code, or deleted with an audit row');
  });

  it('catch a deletion without its audit row, and one audited twice', () => {
    const ev = clean();
    ev.audits = [];
    expect(brokenLines(ev)).toEqual(expect.arrayContaining(['every accepted media ready, failed with a contract code, or deleted with an audit row']));
    const twice = clean();
    twice.audits.push({ media_id: 'med_c', reason: 'device_destroyed', at: at(11) });
    expect(brokenLines(twice)).toEqual(['nothing twice: one audit row per deletion, one ready/failed/deleted event per media']);
  });

  it('catch a good file that failed', () => {
    const ev = clean();
    ev.rows[0] = row('med_a', { status: 'failed', error_code: 'STORAGE_UNAVAILABLE' });
    ev.bucketKeys = [];
    expect(brokenLines(ev)).toContain('every media ended as its file says (good files ready, broken ones failed with their code)');
  });

  it('catch an orphan object, a ready row without its object, and a staging leftover', () => {
    const orphan = clean();
    orphan.bucketKeys.push('objects/app_1/med_a.run0.bin');
    expect(brokenLines(orphan)).toEqual(['every stored object belongs to exactly one ready row, every ready row has its object']);
    const missing = clean();
    missing.bucketKeys = [];
    expect(brokenLines(missing)).toEqual(['every stored object belongs to exactly one ready row, every ready row has its object']);
    const staging = clean();
    staging.bucketKeys.push('staging/app_1/med_x.bin', 'upload:objects/app_1/med_y.run1.bin');
    expect(brokenLines(staging)).toEqual(['no staging object or open multipart upload left']);
  });

  it('catch a plaintext scratch directory left behind', () => {
    const ev = clean();
    ev.scratchLeft = ['mediaflow-med_a-p123-AbC123'];
    expect(brokenLines(ev)).toEqual(['no plaintext scratch file left']);
  });

  it('catch media deleted on expiry before its expiresAt', () => {
    const ev = clean();
    ev.rows[0] = row('med_a', { status: 'deleted', delete_reason: 'expired', expires_at: at(60), deleted_at: at(30) });
    ev.audits.push({ media_id: 'med_a', reason: 'expired', at: at(30) });
    ev.bucketKeys = [];
    expect(brokenLines(ev)).toEqual(['nothing deleted before its expiresAt']);
  });

  it("catch a destroyed device's media still stored", () => {
    const ev = clean();
    ev.rows[2] = row('med_c', { device_id: 'dev1' });
    ev.bucketKeys.push('objects/app_1/med_c.run1.bin');
    expect(brokenLines(ev)).toContain('every media of a destroyed device deleted, bytes and row, with an audit row');
  });

  it('catch a webhook never delivered, an event id with two bodies, and two ready events for one media', () => {
    const undelivered = clean();
    undelivered.received = undelivered.received.filter((r) => r.id !== 'evt_2');
    expect(brokenLines(undelivered)).toEqual(['every webhook event delivered at least once']);
    const twoBodies = clean();
    twoBodies.received.push({ id: 'evt_1', body: '{"id":"evt_1","changed":true}' });
    expect(brokenLines(twoBodies)).toEqual(['no event id delivered with two different bodies']);
    const twice = clean();
    twice.deliveries.push({ id: 'evt_4', event: 'media.ready', media_id: 'med_a', status: 'delivered' });
    twice.received.push({ id: 'evt_4', body: '{"id":"evt_4"}' });
    expect(brokenLines(twice)).toEqual(['nothing twice: one audit row per deletion, one ready/failed/deleted event per media']);
  });

  it('catch an answer without a contract code, a refused good upload, and a client that gave up', () => {
    const unclear = clean();
    unclear.submissions[0]!.answers.push('500', 'producer: Too many Cluster redirections');
    expect(brokenLines(unclear)).toEqual(['clients saw a contract code or a cut connection, and every good upload got in']);
    const gaveUp = clean();
    gaveUp.submissions.push(sub(3, '', photo, { outcome: 'gave-up', mediaId: undefined }));
    expect(brokenLines(gaveUp)).toEqual(['clients saw a contract code or a cut connection, and every good upload got in']);
  });

  it('catch an API crash that kept the cut upload, and a process over the memory bound', () => {
    const cut = clean();
    cut.cutUpload = { clientSawCut: true, filename: 'cut.jpg', detail: 'cut' };
    cut.rows.push(row('med_z', { status: 'failed', error_code: 'VALIDATION_FAILED', original_name: 'cut.jpg' }));
    expect(brokenLines(cut)).toContain('an API killed mid-upload: the client sees a cut connection and nothing is kept');
    const rss = clean();
    rss.peakRss.push({ name: 'worker-2', peakBytes: 2 ** 31 });
    expect(brokenLines(rss)).toEqual(['every process\'s peak RSS under 1024 MiB']);
  });

  it('takes percentiles as the nearest rank', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect([percentile(xs, 50), percentile(xs, 99), percentile(xs, 100)]).toEqual([50, 99, 100]);
    expect(percentile([], 50)).toBeNaN();
  });
});
