/**
 * HEIC/HEIF decisions without decoding (pure): the meta-box parser on hand-built boxes, the decode
 * plan (limits, single photo, grid canvas), the decoder's command line, and what each way the
 * decoder can fail becomes — including "not installed".
 */
import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../src/domain/errors.js';
import { spawnCommand, ToolExitError } from '../../src/pipeline/ffmpeg/run.js';
import { buildHeifConvertArgs } from '../../src/pipeline/heic/heif-args.js';
import { classifyHeifFailure, HEIF_DECODER_MISSING, heifFailureError } from '../../src/pipeline/heic/heif-failure.js';
import { derivedCanvasSize, itemDataLocation, parseHeifMeta, topLevelImages } from '../../src/pipeline/heic/heif-header.js';
import { checkCanvas, checkDecodedSize, planHeifDecode } from '../../src/pipeline/heic/plan-heif.js';

const u8 = (v: number): Buffer => Buffer.from([v]);
const u16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
};
const u32 = (v: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
};
const box = (type: string, ...parts: Buffer[]): Buffer => {
  const body = Buffer.concat(parts);
  return Buffer.concat([u32(8 + body.length), Buffer.from(type, 'latin1'), body]);
};
const full = (type: string, version: number, flags: number, ...parts: Buffer[]): Buffer => box(type, u32(((version << 24) | flags) >>> 0), ...parts);

const ispe = (w: number, h: number): Buffer => full('ispe', 0, 0, u32(w), u32(h));
const irot = (quarterTurns: number): Buffer => box('irot', u8(quarterTurns));
const infe = (id: number, type: string, hidden = false): Buffer => full('infe', 2, hidden ? 1 : 0, u16(id), u16(0), Buffer.from(type, 'latin1'), u8(0));

interface MetaSpec {
  primary?: number;
  items: Array<[id: number, type: string, hidden?: boolean]>;
  props: Buffer[];
  /** item → 1-based property indices. */
  assoc: Array<[number, number[]]>;
  refs?: Array<[string, number, number[]]>;
  extra?: Buffer[];
}

function meta(spec: MetaSpec): Buffer {
  const parts: Buffer[] = [full('hdlr', 0, 0, u32(0), Buffer.from('pict', 'latin1'), Buffer.alloc(13))];
  if (spec.primary !== undefined) parts.push(full('pitm', 0, 0, u16(spec.primary)));
  parts.push(full('iinf', 0, 0, u16(spec.items.length), ...spec.items.map(([id, t, h]) => infe(id, t, h))));
  if (spec.refs) parts.push(full('iref', 0, 0, ...spec.refs.map(([t, from, to]) => box(t, u16(from), u16(to.length), ...to.map(u16)))));
  const ipma = full(
    'ipma',
    0,
    0,
    u32(spec.assoc.length),
    ...spec.assoc.map(([id, idx]) => Buffer.concat([u16(id), u8(idx.length), ...idx.map((i) => u8(0x80 | i))])),
  );
  parts.push(box('iprp', box('ipco', ...spec.props), ipma));
  parts.push(...(spec.extra ?? []));
  return full('meta', 0, 0, ...parts);
}

const LIMITS = { maxPixels: 40_000_000 };
const photo = (w = 4032, h = 3024): MetaSpec => ({ primary: 1, items: [[1, 'hvc1']], props: [ispe(w, h), irot(3)], assoc: [[1, [1, 2]]] });

describe('parseHeifMeta', () => {
  it('reads the primary item, its size and orientation', () => {
    const m = parseHeifMeta(meta({ ...photo(), items: [[1, 'hvc1'], [2, 'Exif', true]], refs: [['cdsc', 2, [1]]] }));
    expect(m.primaryId).toBe(1);
    expect(m.items).toEqual([
      { id: 1, type: 'hvc1', hidden: false, width: 4032, height: 3024, rotation: 270, mirrored: false, location: null },
      { id: 2, type: 'Exif', hidden: true, width: null, height: null, rotation: 0, mirrored: false, location: null },
    ]);
    expect(m.references).toEqual([{ type: 'cdsc', from: 2, to: [1] }]);
  });

  it('imir marks a mirror; an association to property 0 means none', () => {
    const m = parseHeifMeta(meta({ primary: 1, items: [[1, 'hvc1']], props: [ispe(10, 20), box('imir', u8(1))], assoc: [[1, [1, 2]]] }));
    expect(m.items[0]).toMatchObject({ width: 10, height: 20, mirrored: true, rotation: 0 });
  });

  it('iloc (version 1) and idat: where a grid descriptor lives', () => {
    const iloc = full('iloc', 1, 0, u8(0x44), u8(0x00), u16(1), u16(1), u16(1), u16(0), u16(1), u32(0), u32(8));
    const idat = box('idat', Buffer.from([0, 0, 1, 2, 0x0f, 0xc0, 0x0b, 0xd0]));
    const m = parseHeifMeta(meta({ primary: 1, items: [[1, 'grid']], props: [ispe(4032, 3024)], assoc: [[1, [1]]], extra: [iloc, idat] }));
    const at = itemDataLocation(m.items[0]!);
    expect(at).toEqual({ source: 'idat', offset: 0, length: 8 });
    expect(derivedCanvasSize('grid', m.idat!.subarray(at!.offset, at!.offset + at!.length))).toEqual({ width: 4032, height: 3024 });
  });

  it('grid and overlay canvases in 16 or 32 bits', () => {
    expect(derivedCanvasSize('grid', Buffer.from([0, 1, 0, 0, 0, 0, 0xc3, 0x50, 0, 0, 0xc3, 0x50]))).toEqual({ width: 50000, height: 50000 });
    expect(derivedCanvasSize('iovl', Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 2]))).toEqual({ width: 256, height: 2 });
  });

  it.each([
    ['a box overrunning its parent', Buffer.concat([u32(20), Buffer.from('meta'), u32(0), u32(100), Buffer.from('pitm')])],
    ['an iinf count that is not its entries', full('meta', 0, 0, full('iinf', 0, 0, u16(3), infe(1, 'hvc1')))],
    ['an association to a property that does not exist', meta({ primary: 1, items: [[1, 'hvc1']], props: [ispe(1, 1)], assoc: [[1, [5]]] })],
    ['a truncated ispe', meta({ primary: 1, items: [[1, 'hvc1']], props: [full('ispe', 0, 0, u32(7))], assoc: [[1, [1]]] })],
    ['not a meta box at all', box('moov', u32(0))],
  ])('refuses %s as MEDIA_REJECTED', (_why, bytes) => {
    let err: unknown;
    try {
      parseHeifMeta(bytes);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe('MEDIA_REJECTED');
    expect((err as Error).message).toMatch(/^the HEIF header is malformed \(/);
  });
});

describe('planHeifDecode', () => {
  it('a single photo within the limit is decoded', () => {
    const plan = planHeifDecode(parseHeifMeta(meta(photo())), LIMITS);
    expect(plan).toMatchObject({ action: 'decode', width: 4032, height: 3024, canvas: null, primary: { id: 1, rotation: 270 } });
  });

  it('a header declaring 50000x50000 is refused before decoding, saying the size', () => {
    expect(planHeifDecode(parseHeifMeta(meta(photo(50000, 50000))), LIMITS)).toEqual({
      action: 'reject',
      code: 'MEDIA_REJECTED',
      reason: 'the image is 50000x50000 (2500.0 MP), over the 40 MP limit',
    });
    expect(planHeifDecode(parseHeifMeta(meta(photo(8000, 5000))), LIMITS).action).toBe('decode');
    expect(planHeifDecode(parseHeifMeta(meta(photo(8000, 5001))), LIMITS).action).toBe('reject');
  });

  it('any image item over the limit is refused, not only the primary (an alpha plane, a tile)', () => {
    const spec: MetaSpec = {
      primary: 1,
      items: [[1, 'hvc1'], [2, 'hvc1', true]],
      props: [ispe(1000, 1000), ispe(20000, 20000)],
      assoc: [[1, [1]], [2, [2]]],
      refs: [['auxl', 2, [1]]],
    };
    expect(planHeifDecode(parseHeifMeta(meta(spec)), LIMITS)).toMatchObject({ action: 'reject', reason: expect.stringMatching(/^the image is 20000x20000/) });
  });

  it('an iPhone-style grid: hidden tiles and a thumbnail are not extra photos', () => {
    const tiles: Array<[number, string, boolean]> = [2, 3, 4, 5].map((id) => [id, 'hvc1', true]);
    const spec: MetaSpec = {
      primary: 1,
      items: [[1, 'grid'], ...tiles, [6, 'hvc1'], [7, 'Exif', true]],
      props: [ispe(1024, 1024), ispe(512, 512), ispe(320, 240)],
      assoc: [[1, [1]], [2, [2]], [3, [2]], [4, [2]], [5, [2]], [6, [3]]],
      refs: [['dimg', 1, [2, 3, 4, 5]], ['thmb', 6, [1]], ['cdsc', 7, [1]]],
      extra: [full('iloc', 1, 0, u8(0x44), u8(0x00), u16(1), u16(1), u16(1), u16(0), u16(1), u32(0), u32(8)), box('idat', Buffer.from([0, 0, 1, 1, 4, 0, 4, 0]))],
    };
    const m = parseHeifMeta(meta(spec));
    expect(topLevelImages(m).map((it) => it.id)).toEqual([1]);
    const plan = planHeifDecode(m, LIMITS);
    expect(plan).toMatchObject({ action: 'decode', canvas: { type: 'grid', source: 'idat', offset: 0, length: 8 } });
    if (plan.action !== 'decode') throw new Error('unreachable');
    expect(checkCanvas({ width: 1024, height: 1024 }, plan, LIMITS)).toBeNull();
    expect(checkCanvas({ width: 4096, height: 4096 }, plan, LIMITS)).toBe('the HEIF grid canvas is 4096x4096, larger than the 1024x1024 its header declares');
    expect(checkCanvas({ width: 50000, height: 50000 }, plan, LIMITS)).toMatch(/^the image is 50000x50000/);
  });

  it('a collection of photos is refused (heif-convert would decode every one)', () => {
    const spec: MetaSpec = { primary: 1, items: [[1, 'hvc1'], [2, 'hvc1'], [3, 'hvc1']], props: [ispe(100, 100)], assoc: [[1, [1]], [2, [1]], [3, [1]]] };
    expect(planHeifDecode(parseHeifMeta(meta(spec)), LIMITS)).toEqual({
      action: 'reject',
      code: 'MEDIA_REJECTED',
      reason: 'the HEIF file holds 3 images; only a single photo is accepted',
    });
  });

  it('refuses no primary, a primary that is not an image, no declared size, data in another file', () => {
    expect(planHeifDecode(parseHeifMeta(meta({ ...photo(), primary: undefined })), LIMITS)).toMatchObject({ reason: 'the HEIF file names no primary image' });
    expect(planHeifDecode(parseHeifMeta(meta({ primary: 2, items: [[1, 'hvc1'], [2, 'Exif']], props: [ispe(1, 1)], assoc: [[1, [1]]] })), LIMITS)).toMatchObject({
      reason: 'the HEIF primary item is not an image this service decodes (Exif)',
    });
    expect(planHeifDecode(parseHeifMeta(meta({ primary: 1, items: [[1, 'hvc1']], props: [irot(1)], assoc: [[1, [1]]] })), LIMITS)).toMatchObject({
      reason: 'the HEIF primary image declares no size',
    });
    const dref = full('iloc', 0, 0, u8(0x44), u8(0x40), u16(1), u16(1), u16(1), u32(0), u16(1), u32(0), u32(10));
    expect(planHeifDecode(parseHeifMeta(meta({ ...photo(), extra: [dref] })), LIMITS)).toMatchObject({ reason: 'the HEIF file refers to data outside itself' });
  });
});

describe('checkDecodedSize', () => {
  const plan = planHeifDecode(parseHeifMeta(meta(photo(400, 300))), LIMITS);
  if (plan.action !== 'decode') throw new Error('unreachable');
  it('rotated or cropped is fine; larger than declared is not', () => {
    expect(checkDecodedSize({ width: 300, height: 400 }, plan, LIMITS)).toBeNull();
    expect(checkDecodedSize({ width: 400, height: 298 }, plan, LIMITS)).toBeNull();
    expect(checkDecodedSize({ width: 4000, height: 3000 }, plan, LIMITS)).toBe('the HEIF image decoded to 4000x3000, larger than the 400x300 its header declares');
  });
});

describe('the decoder command', () => {
  it('heif-convert: quiet, options ended before the paths, PNG out', () => {
    expect(buildHeifConvertArgs('/s/in.bin', '/s/heif-decoded.png')).toEqual(['--quiet', '--', '/s/in.bin', '/s/heif-decoded.png']);
    expect(buildHeifConvertArgs('-rf.heic', '/s/o.png').indexOf('--')).toBeLessThan(2);
    expect(() => buildHeifConvertArgs('/s/in', '/s/o.jpg')).toThrow(/\.png/);
  });
  it('runs under prlimit when limits are given (exec in place), directly otherwise', () => {
    expect(spawnCommand('heif-convert', ['--quiet', '--', 'a', 'b.png'], { addressSpaceBytes: 1073741824, cpuSeconds: 130 })).toEqual({
      file: 'prlimit',
      args: ['--as=1073741824', '--cpu=130', '--', 'heif-convert', '--quiet', '--', 'a', 'b.png'],
    });
    expect(spawnCommand('ffmpeg', ['-version'])).toEqual({ file: 'ffmpeg', args: ['-version'] });
  });
});

describe('decoder failures', () => {
  const exit = (code: number | null, stderr: string, opts: { signal?: NodeJS.Signals; timedOut?: boolean } = {}): ToolExitError =>
    new ToolExitError('heif-convert', code, opts.signal ?? null, stderr, opts.timedOut ?? false, 60_000);
  const enoent = Object.assign(new Error('spawn prlimit ENOENT'), { code: 'ENOENT' });

  it.each([
    ['prlimit missing (spawn ENOENT)', enoent, 'missing'],
    ['heif-convert missing', exit(127, 'prlimit: failed to execute heif-convert: No such file or directory\n'), 'missing'],
    ['heif-convert not executable', exit(126, 'prlimit: failed to execute /opt/heif-convert: Permission denied\n'), 'missing'],
    ['a broken install (a library missing)', exit(127, 'heif-convert: error while loading shared libraries: libheif.so.1: cannot open shared object file\n'), 'transient'],
    ['libheif refusing the file', exit(1, 'Could not read HEIF/AVIF file: Invalid input: No \'ftyp\' box\n'), 'content'],
    ['the decoder failing under the memory cap', exit(1, 'Could not decode image: 0: Memory allocation error: Unspecified: Cannot allocate memory for image plane\n'), 'content'],
    ['our timeout', exit(null, '', { signal: 'SIGKILL', timedOut: true }), 'content'],
    ['a crash on the file', exit(null, '', { signal: 'SIGSEGV' }), 'content'],
    ['the CPU cap', exit(null, '', { signal: 'SIGXCPU' }), 'content'],
    ['the OOM killer', exit(null, '', { signal: 'SIGKILL' }), 'transient'],
    ['a full disk', exit(1, "Can't open /tmp/x/heif-decoded.png: No space left on device\n"), 'transient'],
  ] as const)('%s → %s', (_what, err, kind) => {
    expect(classifyHeifFailure(err)).toBe(kind);
  });

  it('a missing decoder is UNSUPPORTED_MEDIA_TYPE, saying what is missing and what to send instead', () => {
    for (const err of [enoent, exit(127, 'prlimit: failed to execute heif-convert: No such file or directory')]) {
      const e = heifFailureError(err);
      expect(e).toBeInstanceOf(PermanentError);
      expect((e as PermanentError).code).toBe('UNSUPPORTED_MEDIA_TYPE');
      expect(e.message).toBe(HEIF_DECODER_MISSING);
    }
    expect(HEIF_DECODER_MISSING).toMatch(/heif-convert.*libheif-examples.*not installed; send JPEG, PNG or AVIF$/);
  });

  it('content failures are MEDIA_REJECTED without our paths; transient ones plain errors', () => {
    const c = heifFailureError(exit(1, 'Could not decode image: /tmp/mediaflow-med_1/in.bin is broken\n'));
    expect(c).toBeInstanceOf(PermanentError);
    expect(c.message).toBe('decoding the HEIF image: the image could not be decoded (Could not decode image: input is broken)');
    const t = heifFailureError(exit(null, '', { signal: 'SIGKILL', timedOut: true }));
    expect(t.message).toBe('decoding the HEIF image: heif-convert did not finish within 60 s and was stopped');
    const oom = heifFailureError(exit(null, '', { signal: 'SIGKILL' }));
    expect(oom).not.toBeInstanceOf(PermanentError);
    expect(oom.message).toBe('decoding the HEIF image: heif-convert was killed by SIGKILL');
  });
});
