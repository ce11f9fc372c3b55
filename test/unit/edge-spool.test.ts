import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { ManualClock } from '../../edge-component/adapters/manual-clock.js';
import {
  type AppendResult,
  Spool,
  SpoolAckError,
  SpoolClosedError,
  SpoolConfigError,
  type SpoolConfigInput,
  SpoolFullError,
  type StreamConfigInput,
  UnknownStreamError,
} from '../../edge-component/spool/index.js';

const run = promisify(execFile);

let dir: string;
const open: Spool[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edge-spool-'));
});

afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  await rm(dir, { recursive: true, force: true });
});

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'warn' },
    {
      write(s: string) {
        lines.push(JSON.parse(s) as Record<string, unknown>);
      },
    },
  );
  return { logger, lines };
}

const telemetry: StreamConfigInput = {
  name: 'telemetry',
  maxSizeBytes: 1000,
  segmentSizeBytes: 100,
  strategyOnFull: 'RejectNewData',
  priority: 'critical',
};

async function openSpool(
  streams: StreamConfigInput[] = [telemetry],
  extra: Partial<SpoolConfigInput> = {},
  deps: Parameters<typeof Spool.open>[1] = {},
): Promise<Spool> {
  const s = await Spool.open({ dir, streams, ...extra }, deps);
  open.push(s);
  return s;
}

async function reopen(s: Spool, ...args: Parameters<typeof openSpool>): Promise<Spool> {
  await s.close();
  open.splice(open.indexOf(s), 1);
  return openSpool(...args);
}

const bytes = (n: number, fill = 7) => new Uint8Array(n).fill(fill);
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array) => new TextDecoder().decode(b);
const all = { maxEntries: 1000, maxBytes: 1e9 };

describe('Spool: appending and reading', () => {
  test('sequence numbers start at 1 and increase; reads return entries in order with metadata', async () => {
    const s = await openSpool();
    const seqs: number[] = [];
    for (let i = 0; i < 5; i++) seqs.push((await s.append('telemetry', text(`m${i}`), { i })).seq);
    expect(seqs).toEqual([1, 2, 3, 4, 5]);
    const got = await s.read('telemetry', all);
    expect(got.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(got.map((e) => str(e.bytes))).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(got.map((e) => e.metadata)).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }, { i: 3 }, { i: 4 }]);
    expect(got.every((e) => !e.blob)).toBe(true);
  });

  test('concurrent appends (one commit) get distinct, ordered sequence numbers', async () => {
    const s = await openSpool();
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => s.append('telemetry', text(`c${i}`))),
    );
    expect(results.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    const got = await s.read('telemetry', all);
    expect(got.map((e) => str(e.bytes))).toEqual(Array.from({ length: 50 }, (_, i) => `c${i}`));
  });

  test('the caller may reuse its buffer once append() returned', async () => {
    const s = await openSpool();
    const buf = text('abc');
    const p = s.append('telemetry', buf);
    buf.fill(0);
    await p;
    expect(str((await s.read('telemetry', all))[0]!.bytes)).toBe('abc');
  });

  test('with `stable` (no copy), the bytes as they are until append() settles are stored; then they may change', async () => {
    const s = await openSpool();
    const buf = text('abcdef');
    // The commit reads the caller's bytes (a view of a larger buffer here) when it runs.
    const p = s.append('telemetry', buf.subarray(0, 3), undefined, { stable: true });
    await p;
    buf.fill(0x78);
    expect(str((await s.read('telemetry', all))[0]!.bytes)).toBe('abc');
  });

  (process.platform === 'linux' ? test : test.skip)(
    'the database is mapped once, however it grows (older, smaller maps would keep their pages resident)',
    async () => {
      const big: StreamConfigInput = { ...telemetry, maxSizeBytes: 64 << 20, segmentSizeBytes: 4 << 20 };
      const s = await openSpool([big]);
      // 24 MB through the spool, acked as it goes, as a busy gateway does.
      for (let i = 0; i < 48; i++) {
        const { seq } = await s.append('telemetry', bytes(512 * 1024, i));
        if (i % 4 === 3) await s.ack('telemetry', seq);
      }
      const maps = (await readFile('/proc/self/maps', 'utf8'))
        .split('\n')
        .filter((l) => l.endsWith(join(dir, 'spool.mdb')));
      expect(maps).toHaveLength(1);
    },
  );

  test('read honours fromSeq, maxEntries and maxBytes (but always returns one entry)', async () => {
    const s = await openSpool();
    for (let i = 1; i <= 6; i++) await s.append('telemetry', bytes(10, i));
    expect(
      (await s.read('telemetry', { fromSeq: 3, maxEntries: 2, maxBytes: 1000 })).map((e) => e.seq),
    ).toEqual([3, 4]);
    expect((await s.read('telemetry', { maxEntries: 10, maxBytes: 25 })).map((e) => e.seq)).toEqual([1, 2]);
    expect(
      (await s.read('telemetry', { fromSeq: 5, maxEntries: 10, maxBytes: 1 })).map((e) => e.seq),
    ).toEqual([5]);
  });

  test('an entry is committed, visible to another process, when append() resolves', async () => {
    const s = await openSpool();
    const { seq } = await s.append('telemetry', text('durable'));
    // A separate process opens the environment read-only while the spool is still open.
    const code = `
      import { open } from 'lmdb';
      const root = open({ path: ${JSON.stringify(join(dir, 'spool.mdb'))}, readOnly: true });
      const e = root.openDB('entries:telemetry', {}).get(${seq});
      process.stdout.write(JSON.stringify({ t: typeof e?.t, p: e ? Buffer.from(e.p).toString() : null }));
      await root.close();
    `;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], {
      cwd: process.cwd(),
    });
    expect(JSON.parse(stdout)).toEqual({ t: 'number', p: 'durable' });
  });

  test('close() waits for appends under way; reopen resumes', async () => {
    let s = await openSpool();
    const pending = [s.append('telemetry', text('a')), s.append('telemetry', text('b'))];
    s = await reopen(s);
    expect((await Promise.all(pending)).map((r) => r.seq)).toEqual([1, 2]);
    expect((await s.read('telemetry', all)).map((e) => str(e.bytes))).toEqual(['a', 'b']);
  });

  test('unknown streams and closed spools are refused', async () => {
    const s = await openSpool();
    await expect(s.append('nope', text('x'))).rejects.toBeInstanceOf(UnknownStreamError);
    await expect(s.read('nope', all)).rejects.toThrow(/unknown spool stream 'nope'/);
    await s.close();
    await expect(s.append('telemetry', text('x'))).rejects.toBeInstanceOf(SpoolClosedError);
  });

  test('read options are validated, naming the field', async () => {
    const s = await openSpool();
    await expect(s.read('telemetry', { maxEntries: 0, maxBytes: 10 })).rejects.toThrow(/maxEntries/);
    await expect(s.read('telemetry', { maxEntries: 1, maxBytes: 1.5 })).rejects.toThrow(/maxBytes/);
  });
});

describe('Spool: acknowledgements', () => {
  test('ack frees entries; after a reopen reading resumes at the first unacked entry', async () => {
    let s = await openSpool();
    for (let i = 1; i <= 5; i++) await s.append('telemetry', text(`e${i}`));
    await s.ack('telemetry', 2);
    expect((await s.read('telemetry', all)).map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(s.stats().streams[0]).toMatchObject({ depth: 3, bytes: 6 });
    s = await reopen(s);
    expect((await s.read('telemetry', all)).map((e) => str(e.bytes))).toEqual(['e3', 'e4', 'e5']);
    // Sequence numbers go on after a reopen, and are never reused.
    expect((await s.append('telemetry', text('e6'))).seq).toBe(6);
    await s.ack('telemetry', 6);
    s = await reopen(s);
    expect(await s.read('telemetry', all)).toEqual([]);
    expect((await s.append('telemetry', text('e7'))).seq).toBe(7);
    expect(s.stats().streams[0]).toMatchObject({ depth: 1, bytes: 2, nextSeq: 8 });
  });

  test('acking again or below the front is a no-op; acking an unissued sequence is an error', async () => {
    const s = await openSpool();
    await s.append('telemetry', text('a'));
    await s.ack('telemetry', 1);
    await s.ack('telemetry', 1);
    await s.ack('telemetry', 0);
    await expect(s.ack('telemetry', 2)).rejects.toBeInstanceOf(SpoolAckError);
    await expect(s.ackOne('telemetry', 9)).rejects.toThrow(/last sequence issued is 1/);
  });

  test('ackOne: skipped by reads, freed once everything before is acked, kept across reopen', async () => {
    const clock = new ManualClock();
    let s = await openSpool([telemetry], {}, { clock });
    for (let i = 1; i <= 5; i++) await s.append('telemetry', bytes(10));
    await s.ackOne('telemetry', 2);
    await s.ackOne('telemetry', 4);
    expect((await s.read('telemetry', all)).map((e) => e.seq)).toEqual([1, 3, 5]);
    // Still stored (and counted) until the entries before them are acked.
    expect(s.stats().streams[0]).toMatchObject({ depth: 3, bytes: 50 });
    s = await reopen(s, [telemetry], {}, { clock });
    expect((await s.read('telemetry', all)).map((e) => e.seq)).toEqual([1, 3, 5]);
    await s.ackOne('telemetry', 1); // frees 1 and 2
    expect(s.stats().streams[0]).toMatchObject({ depth: 2, bytes: 30 });
    await s.ack('telemetry', 3); // frees 3 and the already acked 4
    expect(s.stats().streams[0]).toMatchObject({ depth: 1, bytes: 10 });
    expect((await s.read('telemetry', all)).map((e) => e.seq)).toEqual([5]);
    s = await reopen(s, [telemetry], {}, { clock });
    expect((await s.read('telemetry', all)).map((e) => e.seq)).toEqual([5]);
  });

  test('stats: depth, bytes, oldest unacked age and last ack time from the injected clock', async () => {
    const clock = new ManualClock(1_000_000);
    const s = await openSpool([telemetry, { ...telemetry, name: 'events' }], {}, { clock });
    expect(s.stats().streams.find((x) => x.name === 'events')).toMatchObject({
      depth: 0,
      bytes: 0,
      oldestUnackedAgeMs: null,
      lastAckAt: null,
    });
    await s.append('telemetry', bytes(4));
    clock.advance(500);
    await s.append('telemetry', bytes(6));
    clock.advance(1500);
    expect(s.stats().streams[0]).toMatchObject({
      name: 'telemetry',
      depth: 2,
      bytes: 10,
      oldestUnackedAgeMs: 2000,
    });
    await s.ack('telemetry', 1);
    expect(s.stats().streams[0]).toMatchObject({
      depth: 1,
      bytes: 6,
      oldestUnackedAgeMs: 1500,
      lastAckAt: 1_002_000,
    });
    expect(s.stats().totalBytes).toBe(6);
  });
});

describe('Spool: full streams', () => {
  test('RejectNewData refuses with SpoolFullError naming the stream and the sizes; nothing is lost', async () => {
    const s = await openSpool([{ ...telemetry, maxSizeBytes: 100, segmentSizeBytes: 50 }]);
    for (let i = 0; i < 4; i++) await s.append('telemetry', bytes(25));
    const err = await s.append('telemetry', bytes(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolFullError);
    expect(err).toMatchObject({
      stream: 'telemetry',
      reason: 'stream-full',
      sizes: { entryBytes: 1, streamBytes: 100, maxSizeBytes: 100 },
    });
    expect((err as Error).message).toMatch(/'telemetry'.*100 of 100 bytes/);
    expect((await s.read('telemetry', all)).length).toBe(4);
    await s.ack('telemetry', 1);
    expect((await s.append('telemetry', bytes(25))).seq).toBe(5);
  });

  test('an entry larger than maxSizeBytes is refused whatever the strategy', async () => {
    const s = await openSpool([{ ...telemetry, strategyOnFull: 'OverwriteOldestData', maxSizeBytes: 100 }]);
    await s.append('telemetry', bytes(50));
    await expect(s.append('telemetry', bytes(101))).rejects.toMatchObject({ reason: 'entry-too-large' });
    expect(s.stats().streams[0]).toMatchObject({ depth: 1, droppedEntries: 0 });
  });

  test('OverwriteOldestData drops whole segments, oldest first, logs and counts the exact ranges', async () => {
    const { logger, lines } = capture();
    const s = await openSpool(
      [{ name: 'events', maxSizeBytes: 100, segmentSizeBytes: 30, strategyOnFull: 'OverwriteOldestData' }],
      {},
      { logger },
    );
    // 10-byte entries: segments [1-3], [4-6], [7-9], [10]
    const results: AppendResult[] = [];
    for (let i = 1; i <= 10; i++) results.push(await s.append('events', bytes(10, i)));
    expect(results.every((r) => r.dropped.length === 0)).toBe(true);
    // 100 bytes held: the 11th entry needs room, and the whole oldest segment (1-3) goes.
    const r11 = await s.append('events', bytes(10, 11));
    expect(r11).toEqual({ seq: 11, dropped: [{ fromSeq: 1, toSeq: 3, entries: 3, bytes: 30 }] });
    expect((await s.read('events', all)).map((e) => e.seq)).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    expect(lines).toEqual([
      expect.objectContaining({ level: 40, stream: 'events', fromSeq: 1, toSeq: 3, entries: 3, bytes: 30 }),
    ]);
    // 80 bytes held: a 40-byte entry needs one more segment ([4-6]); a 60-byte one then needs two.
    const r12 = await s.append('events', bytes(40));
    expect(r12.dropped).toEqual([{ fromSeq: 4, toSeq: 6, entries: 3, bytes: 30 }]);
    const r13 = await s.append('events', bytes(60));
    // Segments now: [7-9] (30), [10-11] (11 joined 10's segment: 20), [12] (40); 90 + 60 needs 50 freed.
    expect(r13.dropped).toEqual([
      { fromSeq: 7, toSeq: 9, entries: 3, bytes: 30 },
      { fromSeq: 10, toSeq: 11, entries: 2, bytes: 20 },
    ]);
    expect((await s.read('events', all)).map((e) => e.seq)).toEqual([12, 13]);
    expect(s.stats().streams[0]).toMatchObject({
      droppedEntries: 11,
      droppedBytes: 110,
      dropEvents: 4,
      bytes: 100,
    });
  });

  test('dropping a partly acked segment drops only its remainder and reports that range', async () => {
    const s = await openSpool([
      { name: 'events', maxSizeBytes: 60, segmentSizeBytes: 30, strategyOnFull: 'OverwriteOldestData' },
    ]);
    for (let i = 1; i <= 6; i++) await s.append('events', bytes(10));
    await s.ack('events', 1);
    await s.ackOne('events', 3);
    const r = await s.append('events', bytes(31));
    // Segment [1-3] remainder is 2-3 (3 was acked: not counted as dropped); still short, so [4-6] too.
    expect(r.dropped).toEqual([
      { fromSeq: 2, toSeq: 3, entries: 1, bytes: 20 },
      { fromSeq: 4, toSeq: 6, entries: 3, bytes: 30 },
    ]);
    expect((await s.read('events', all)).map((e) => e.seq)).toEqual([7]);
  });

  test('drop counters and the resume point survive a reopen', async () => {
    const cfg: StreamConfigInput = {
      name: 'events',
      maxSizeBytes: 20,
      segmentSizeBytes: 10,
      strategyOnFull: 'OverwriteOldestData',
    };
    let s = await openSpool([cfg]);
    for (let i = 1; i <= 3; i++) await s.append('events', bytes(10));
    s = await reopen(s, [cfg]);
    expect(s.stats().streams[0]).toMatchObject({ droppedEntries: 1, dropEvents: 1, depth: 2, nextSeq: 4 });
    expect((await s.read('events', all)).map((e) => e.seq)).toEqual([2, 3]);
  });
});

describe('Spool: critical and bulk streams under maxTotalBytes', () => {
  const streams: StreamConfigInput[] = [
    { name: 'telemetry', maxSizeBytes: 100, segmentSizeBytes: 20, strategyOnFull: 'RejectNewData' },
    {
      name: 'events',
      maxSizeBytes: 100,
      segmentSizeBytes: 20,
      strategyOnFull: 'OverwriteOldestData',
      priority: 'critical',
    },
    {
      name: 'frames',
      maxSizeBytes: 1000,
      segmentSizeBytes: 100,
      strategyOnFull: 'OverwriteOldestData',
      priority: 'bulk',
    },
  ];

  test('bulk pressure overwrites only the bulk stream and leaves room for the critical streams', async () => {
    const s = await openSpool(streams, { maxTotalBytes: 500 });
    await s.append('telemetry', bytes(50));
    await s.append('events', bytes(50));
    // Room for frames: 500 - 100 held - 100 reserved for telemetry/events to reach their maxSizeBytes.
    let dropped = 0;
    for (let i = 0; i < 20; i++) dropped += (await s.appendFile('frames', bytes(50))).dropped.length;
    expect(dropped).toBeGreaterThan(0);
    const st = s.stats();
    const by = (n: string) => st.streams.find((x) => x.name === n)!;
    expect(by('frames').bytes).toBeLessThanOrEqual(300);
    expect(by('telemetry')).toMatchObject({ depth: 1, bytes: 50, droppedEntries: 0 });
    expect(by('events')).toMatchObject({ depth: 1, bytes: 50, droppedEntries: 0 });
    // The critical streams can still fill their own quotas.
    for (let i = 0; i < 5; i++) await s.append('telemetry', bytes(10));
    for (let i = 0; i < 5; i++) await s.append('events', bytes(10));
    expect(st.totalBytes).toBeLessThanOrEqual(500);
    expect(s.stats().totalBytes).toBeLessThanOrEqual(500);
    expect((await s.read('telemetry', all)).length).toBe(6);
    expect((await s.read('events', all)).length).toBe(6);
  });

  test('a bulk RejectNewData stream is refused (total-full) before the critical reserve is touched', async () => {
    const cfg = streams.map((c) =>
      c.name === 'frames' ? { ...c, strategyOnFull: 'RejectNewData' as const } : c,
    );
    const s = await openSpool(cfg, { maxTotalBytes: 400 });
    await s.append('frames', bytes(150));
    await s.append('frames', bytes(50));
    const err = await s.append('frames', bytes(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolFullError);
    expect(err).toMatchObject({
      stream: 'frames',
      reason: 'total-full',
      sizes: { totalBytes: 200, maxTotalBytes: 400, reservedBytes: 200 },
    });
    // ...while critical streams still get their room.
    await s.append('telemetry', bytes(100));
    await s.append('events', bytes(100));
    expect(s.stats().totalBytes).toBe(400);
  });

  test('critical streams over the total evict only themselves, never the bulk stream', async () => {
    const cfg: StreamConfigInput[] = [
      { name: 'events', maxSizeBytes: 300, segmentSizeBytes: 50, strategyOnFull: 'OverwriteOldestData' },
      {
        name: 'frames',
        maxSizeBytes: 300,
        segmentSizeBytes: 50,
        strategyOnFull: 'RejectNewData',
        priority: 'bulk',
      },
    ];
    const s = await openSpool(cfg, { maxTotalBytes: 300 });
    // No room for bulk at all (events reserves 300): frames are refused, not events evicted.
    await expect(s.append('frames', bytes(10))).rejects.toMatchObject({ reason: 'total-full' });
    for (let i = 0; i < 7; i++) await s.append('events', bytes(50));
    expect(s.stats().streams.find((x) => x.name === 'events')).toMatchObject({
      bytes: 300,
      droppedEntries: 1,
    });
  });
});

describe('Spool: blob files', () => {
  const frames: StreamConfigInput = {
    name: 'frames',
    maxSizeBytes: 1000,
    segmentSizeBytes: 200,
    strategyOnFull: 'OverwriteOldestData',
    priority: 'bulk',
  };
  const blobDir = () => join(dir, 'blobs', 'frames');

  test('appendFile stores the payload in a file (no temp file left) and reads it back', async () => {
    const s = await openSpool([frames]);
    const { seq } = await s.appendFile('frames', bytes(150, 3), { camera: 'c1' });
    const files = await readdir(blobDir());
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/^[0-9a-f-]{36}\.blob$/);
    const [e] = await s.read('frames', all);
    expect(e).toMatchObject({ seq, blob: true, metadata: { camera: 'c1' } });
    expect(Buffer.from(e!.bytes).equals(Buffer.from(bytes(150, 3)))).toBe(true);
    expect(s.stats().streams[0]).toMatchObject({ bytes: 150, depth: 1 });
  });

  test('blob files are removed on ack, on ackOne once freed, and on eviction', async () => {
    const s = await openSpool([frames]);
    for (let i = 0; i < 4; i++) await s.appendFile('frames', bytes(200, i));
    expect(await readdir(blobDir())).toHaveLength(4);
    await s.ack('frames', 1);
    expect(await readdir(blobDir())).toHaveLength(3);
    await s.ackOne('frames', 3);
    expect(await readdir(blobDir())).toHaveLength(3);
    await s.ackOne('frames', 2);
    expect(await readdir(blobDir())).toHaveLength(1);
    for (let i = 0; i < 5; i++) await s.appendFile('frames', bytes(200, 9));
    // 1000 bytes max: seq 4 (200) + 4 new fit; the 5th new one evicts seq 4's segment.
    expect(s.stats().streams[0]).toMatchObject({ depth: 5, bytes: 1000, droppedEntries: 1 });
    expect(await readdir(blobDir())).toHaveLength(5);
    expect((await s.read('frames', all)).map((e) => e.seq)).toEqual([5, 6, 7, 8, 9]);
  });

  test('a refused blob leaves no file; stray and temp files are swept on open', async () => {
    const s = await openSpool([{ ...frames, strategyOnFull: 'RejectNewData', maxSizeBytes: 200 }]);
    await s.appendFile('frames', bytes(200));
    await expect(s.appendFile('frames', bytes(10))).rejects.toBeInstanceOf(SpoolFullError);
    expect(await readdir(blobDir())).toHaveLength(1);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(blobDir(), 'orphan.blob'), 'x');
    await writeFile(join(blobDir(), '.half.tmp'), 'x');
    const s2 = await reopen(s, [{ ...frames, strategyOnFull: 'RejectNewData', maxSizeBytes: 200 }]);
    expect(await readdir(blobDir())).toHaveLength(1);
    expect((await s2.read('frames', all))[0]!.bytes.byteLength).toBe(200);
  });
});

describe('Spool: configuration', () => {
  const bad = async (input: unknown) => {
    const err = await Spool.open(input as SpoolConfigInput).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpoolConfigError);
    return err as SpoolConfigError;
  };

  test('errors name the field', async () => {
    expect((await bad({ dir, streams: [{ ...telemetry, maxSizeBytes: -1 }] })).message).toMatch(
      /streams\.0\.maxSizeBytes/,
    );
    expect((await bad({ dir, streams: [{ ...telemetry, strategyOnFull: 'Drop' }] })).message).toMatch(
      /streams\.0\.strategyOnFull/,
    );
    expect((await bad({ dir, streams: [{ ...telemetry, segmentSizeBytes: 2000 }] })).issues).toEqual([
      { path: 'streams.0.segmentSizeBytes', message: 'must not be larger than maxSizeBytes' },
    ]);
    expect((await bad({ dir, streams: [telemetry, telemetry] })).message).toMatch(
      /streams\.1\.name: duplicate stream name 'telemetry'/,
    );
    expect((await bad({ dir, streams: [{ ...telemetry, name: '../x' }] })).message).toMatch(
      /streams\.0\.name/,
    );
    expect((await bad({ dir, streams: [{ ...telemetry, priority: 'high' }] })).message).toMatch(
      /streams\.0\.priority/,
    );
    expect((await bad({ dir, streams: [telemetry], maxTotal: 5 })).message).toMatch(
      /maxTotal: is not a known field/,
    );
    expect((await bad({ streams: [telemetry] })).message).toMatch(/dir/);
  });

  test('defaults follow Greengrass stream manager (256 MiB streams, 16 MiB segments), critical priority', async () => {
    const s = await openSpool([{ name: 'events', strategyOnFull: 'RejectNewData' }]);
    expect(s.stats().streams[0]).toMatchObject({ maxSizeBytes: 256 * 1024 * 1024, priority: 'critical' });
  });
});
