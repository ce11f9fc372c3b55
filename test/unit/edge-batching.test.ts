import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from '@jest/globals';
import {
  type BatchEntry,
  BatchLimitsSchema,
  batchKey,
  cutBatch,
  gzipBatch,
} from '../../edge-component/batching.js';

const T0 = Date.UTC(2026, 10, 23, 14, 5, 0);
const entries = (n: number, from = 1, ts = T0): BatchEntry[] =>
  Array.from({ length: n }, (_, i) => ({
    seq: from + i,
    ts: ts + i,
    json: JSON.stringify({ i: from + i, v: 'x'.repeat(10) }),
  }));
const limits = BatchLimitsSchema.parse({ maxRecords: 5, maxBytes: 10_000, maxAgeMs: 60_000 });

describe('cutBatch', () => {
  it('keeps a batch open until a limit is reached', () => {
    expect(cutBatch('gw-1', 'telemetry', entries(3), limits, T0 + 1000)).toBeUndefined();
  });

  it('closes by record count, with a deterministic id, key and body', async () => {
    const a = cutBatch('gw-1', 'telemetry', entries(7), limits, T0)!;
    const b = cutBatch('gw-1', 'telemetry', entries(7), limits, T0 + 5)!;
    expect(a.reason).toBe('records');
    expect(a.batch).toMatchObject({
      firstSeq: 1,
      lastSeq: 5,
      records: 5,
      batchId: '000000000001-000000000005',
    });
    expect(a.batch.key).toBe('raw/gw-1/telemetry/dt=2026-11-23/hour=14/000000000001-000000000005.ndjson.gz');
    const [bodyA, bodyB] = await Promise.all([gzipBatch(a.batch, 3), gzipBatch(b.batch, 3)]);
    expect(bodyA.equals(bodyB)).toBe(true);
    // The same bytes as a synchronous gzip at the same level: retries and restarts send identical bodies.
    expect(bodyA.equals(gzipSync(a.batch.ndjson, { level: 3 }))).toBe(true);
    expect((await gzipBatch(a.batch, 9)).equals(gzipSync(a.batch.ndjson, { level: 9 }))).toBe(true);
    const lines = gunzipSync(bodyA).toString().trimEnd().split('\n');
    expect(lines.map((l) => JSON.parse(l).i)).toEqual([1, 2, 3, 4, 5]);
  });

  it('closes by size before exceeding maxBytes', () => {
    const small = BatchLimitsSchema.parse({ maxRecords: 100, maxBytes: 1024, maxAgeMs: 60_000 });
    const big = Array.from({ length: 5 }, (_, i) => ({
      seq: i + 1,
      ts: T0,
      json: JSON.stringify({ pad: 'p'.repeat(400) }),
    }));
    const r = cutBatch('gw-1', 's', big, small, T0)!;
    expect(r.reason).toBe('bytes');
    expect(r.batch.uncompressedBytes).toBeLessThanOrEqual(1024);
    expect(r.batch.records).toBe(2);
  });

  it('a single record larger than maxBytes still makes a batch of one', () => {
    const small = BatchLimitsSchema.parse({ maxRecords: 100, maxBytes: 1024, maxAgeMs: 60_000 });
    const r = cutBatch(
      'gw-1',
      's',
      [{ seq: 9, ts: T0, json: JSON.stringify({ pad: 'p'.repeat(2000) }) }],
      small,
      T0,
    )!;
    expect(r.batch.records).toBe(1);
  });

  it('closes by age and on shutdown', () => {
    expect(cutBatch('gw-1', 's', entries(2), limits, T0 + 60_000)?.reason).toBe('age');
    expect(cutBatch('gw-1', 's', entries(2), limits, T0 + 1, true)?.reason).toBe('shutdown');
  });

  it('partitions by the first record hour in UTC', () => {
    expect(batchKey('gw', 'events', Date.UTC(2026, 0, 1, 0, 59), 'id')).toBe(
      'raw/gw/events/dt=2026-01-01/hour=00/id.ndjson.gz',
    );
  });

  it('refuses records that would break the NDJSON framing, and bad limits name the field', () => {
    expect(() => cutBatch('gw', 's', [{ seq: 1, ts: T0, json: '{"a":\n1}' }], limits, T0, true)).toThrow(
      /newline/,
    );
    const bad = BatchLimitsSchema.safeParse({ maxRecords: 0 });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toEqual(['maxRecords']);
    const level = BatchLimitsSchema.safeParse({ gzipLevel: 10 });
    expect(level.error?.issues[0]).toMatchObject({
      path: ['gzipLevel'],
      message: 'must be an integer from 1 to 9',
    });
    expect(BatchLimitsSchema.parse({}).gzipLevel).toBe(3);
  });
});
