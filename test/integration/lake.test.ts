import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { resultKey } from '../../cloud/functions/frame-analysis/frames.js';
import type { FrameResult } from '../../cloud/functions/frame-analysis/handler.js';
import {
  LakeClosedError,
  LakeConfigError,
  LakeEngine,
  LakeQueryError,
  type LakeResult,
} from '../../cloud/local/lake/index.js';
import { ObjectStore, TempFile } from '../../cloud/local/s3/object-store.js';
import { LAKE_TABLES } from '../../cloud/rules/lake.js';
import { LOCAL_DATA_BUCKET, LOCAL_RESULTS_BUCKET } from '../../cloud/rules/resources.js';
import { batchId, batchKey } from '../../edge-component/batching.js';
import { type FrameMetadata, frameObjectKeys } from '../../edge-component/frames/keys.js';
import { eventObjectKey } from '../../protocol/events.js';
import { runCli } from '../helpers/cli.js';
import { removeDir, tempDir } from '../helpers/cloud.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) removeDir(d);
});

function newDataDir(): { dataDir: string; store: ObjectStore } {
  const dataDir = tempDir('edgefleet-lake-');
  dirs.push(dataDir);
  const store = new ObjectStore(dataDir);
  store.createBucket(LOCAL_DATA_BUCKET, 'us-east-1');
  store.createBucket(LOCAL_RESULTS_BUCKET, 'us-east-1');
  return { dataDir, store };
}

/** Puts an object the way the local S3 does: a temp file renamed into place. */
async function put(store: ObjectStore, bucket: string, key: string, body: string | Buffer): Promise<void> {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  const temp = await TempFile.create(store.tmpDir);
  await temp.write(bytes);
  await temp.finish();
  await store.commit(bucket, key, temp, {
    etag: `"${createHash('md5').update(bytes).digest('hex')}"`,
    userMetadata: {},
  });
}

const ndjsonGzip = (records: readonly object[]) =>
  gzipSync(records.map((r) => `${JSON.stringify(r)}\n`).join(''));

const HOUR_10 = Date.UTC(2026, 10, 23, 10);
const HOUR_11 = Date.UTC(2026, 10, 23, 11);
const HOUR_07 = Date.UTC(2026, 10, 23, 7);

/** Firehose's object name under the delivery stream's prefix. */
function firehoseKey(thing: string, at: number): string {
  const iso = new Date(at).toISOString();
  const stamp = `${iso.slice(0, 10)}-${iso.slice(11, 13)}-${iso.slice(14, 16)}-${iso.slice(17, 19)}`;
  return `lake/telemetry/thing=${thing}/dt=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}/edgefleet-telemetry-1-${stamp}-${randomUUID()}.gz`;
}

const streamed = (thing: string, at: number, n: number, temperature: (i: number) => number) =>
  Array.from({ length: n }, (_, i) => ({
    sensorId: `sensor-${(i % 2) + 1}`,
    ts: at + i * 1000,
    seq: i + 1,
    temperature: temperature(i),
    vibration: 0.1 * (i + 1),
    thing,
    ingest_ts: at + i * 1000 + 150,
  }));

const FRAME: FrameMetadata = {
  thing: 'gw-1',
  camera: 'dock-3',
  capturedAt: HOUR_10 + 5_000,
  faces: 2,
  boxes: [
    { left: 10, top: 20, width: 30, height: 40, confidence: 0.98 },
    { left: 100, top: 20, width: 32, height: 41, confidence: 0.91 },
  ],
  zones: 1,
  masking: 'blur',
  format: 'jpeg',
  width: 1920,
  height: 1080,
};

const EVENT_IDS = [randomUUID(), randomUUID(), randomUUID()];

let lake: { dataDir: string; store: ObjectStore };
let engine: LakeEngine;

beforeAll(async () => {
  lake = newDataDir();
  const { store } = lake;
  const data = LOCAL_DATA_BUCKET;
  // Streamed telemetry: gw-1 hour 10 in two objects (4 + 2 records), gw-1 hour 07 (1 record).
  await put(
    store,
    data,
    firehoseKey('gw-1', HOUR_10),
    ndjsonGzip(streamed('gw-1', HOUR_10, 4, (i) => 20 + i)),
  );
  await put(
    store,
    data,
    firehoseKey('gw-1', HOUR_10 + 60_000),
    // A record whose `thing` field disagrees with its partition: the key wins.
    ndjsonGzip(streamed('not-the-partition', HOUR_10 + 60_000, 2, () => 30)),
  );
  await put(store, data, firehoseKey('gw-1', HOUR_07), ndjsonGzip(streamed('gw-1', HOUR_07, 1, () => 18.5)));
  // A gateway batch of gw-2 (no ingest_ts, a pseudonymized operator).
  const batch = Array.from({ length: 3 }, (_, i) => ({
    sensorId: 'sensor-9',
    ts: HOUR_11 + i * 500,
    seq: 100 + i,
    temperature: 25 + i,
    vibration: 1.5,
    operatorId: 'op:v1:3f9a1c0d',
  }));
  await put(store, data, batchKey('gw-2', 'telemetry', HOUR_11, batchId(100, 102)), ndjsonGzip(batch));
  // Events, as the event-ack function stores them.
  const types = ['alarm', 'alarm', 'door'];
  for (const [i, msgId] of EVENT_IDS.entries()) {
    const event = { msgId, type: types[i]!, ts: HOUR_10 + i, data: { code: `E${i}`, level: i } };
    await put(
      store,
      data,
      eventObjectKey('gw-1', msgId, event.ts),
      JSON.stringify({ thingName: 'gw-1', ...event }),
    );
  }
  // A frame and its sidecar (the image is not a row), and an identification frame's sidecar.
  const keys = frameObjectKeys(FRAME, 1);
  await put(store, data, keys.key, Buffer.from([0xff, 0xd8, 0xff, 0xd9]));
  await put(store, data, keys.sidecarKey, JSON.stringify(FRAME));
  const identify: FrameMetadata = { ...FRAME, masking: 'identification', faces: 1, boxes: [], zones: 0 };
  await put(store, data, frameObjectKeys(identify, 2).sidecarKey, JSON.stringify(identify));
  // The analysis result of the first frame, in the results bucket.
  const result: FrameResult = {
    thing: 'gw-1',
    camera: 'dock-3',
    site: 'plant-a',
    capturedAt: new Date(FRAME.capturedAt).toISOString(),
    bucket: data,
    key: keys.key,
    kind: 'frames',
    masking: 'blur',
    labels: [{ name: 'Person', confidence: 99.1, instances: [{ confidence: 98 }, { confidence: 95 }] }],
    faces: [{ confidence: 99.5 }],
    alerts: [],
  };
  const frameId = `${FRAME.capturedAt}-1`;
  await put(
    store,
    LOCAL_RESULTS_BUCKET,
    resultKey({ thing: 'gw-1', camera: 'dock-3', date: '2026-11-23', frameId, kind: 'frames' }),
    JSON.stringify(result),
  );
  // Not objects of the tables: hidden files, a folder marker, a body still being received.
  const partition = join(lake.dataDir, 's3', data, 'lake/telemetry/thing=gw-1/dt=2026-11-23/hour=10');
  writeFileSync(join(partition, '.DS_Store'), 'not gzip');
  writeFileSync(join(partition, '_SUCCESS'), '');
  mkdirSync(join(partition, 'folder'));
  writeFileSync(join(store.tmpDir, 'partial-upload'), '{"sensorId":');
  engine = await LakeEngine.open({ dataDir: lake.dataDir });
});

afterAll(() => engine?.close());

/** Rows as objects, for readable expectations. */
function objects(r: LakeResult): Record<string, unknown>[] {
  return r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c.name, row[i]])));
}

describe('views', () => {
  it('count the rows of every table', async () => {
    expect(await engine.tables()).toEqual(
      LAKE_TABLES.map((t) => ({
        name: t.name,
        description: t.description,
        rows: { telemetry: 10, events: 3, frames: 2, analysis: 1 }[t.name],
      })),
    );
  });

  it('have exactly the layout columns and partitions, in order, with the declared types', async () => {
    const duck = { string: 'VARCHAR', bigint: 'BIGINT', double: 'DOUBLE', boolean: 'BOOLEAN', json: 'JSON' };
    for (const table of LAKE_TABLES) {
      const r = await engine.query(`SELECT column_name, column_type FROM (DESCRIBE ${table.name})`);
      expect(r.rows).toEqual([...table.columns, ...table.partitions].map((c) => [c.name, duck[c.type]]));
    }
  });

  it('aggregate telemetry by partition, with partition values from the keys', async () => {
    const r = await engine.query(
      'SELECT thing, dt, hour, count(*) AS n, avg(temperature) AS t, max(vibration) AS v FROM telemetry GROUP BY ALL ORDER BY ALL',
    );
    expect(r.columns.map((c) => c.type)).toEqual([
      'VARCHAR',
      'VARCHAR',
      'BIGINT',
      'BIGINT',
      'DOUBLE',
      'DOUBLE',
    ]);
    expect(objects(r)).toEqual([
      { thing: 'gw-1', dt: '2026-11-23', hour: 7n, n: 1n, t: 18.5, v: 0.1 },
      { thing: 'gw-1', dt: '2026-11-23', hour: 10n, n: 6n, t: (20 + 21 + 22 + 23 + 30 + 30) / 6, v: 0.4 },
      { thing: 'gw-2', dt: '2026-11-23', hour: 11n, n: 3n, t: 26, v: 1.5 },
    ]);
  });

  it('read a missing field as NULL and match names case-insensitively', async () => {
    const r = await engine.query(
      `SELECT count(*) FILTER (WHERE ingest_ts IS NULL) AS no_ingest, count(OPERATORID) AS ops,
              min(SensorId) AS first FROM telemetry WHERE THING = 'gw-2'`,
    );
    expect(objects(r)).toEqual([{ no_ingest: 3n, ops: 3n, first: 'sensor-9' }]);
  });

  it('filter on partitions', async () => {
    const r = await engine.query(
      "SELECT count(*) AS n, min(seq) AS first FROM telemetry WHERE dt = '2026-11-23' AND hour = 10 AND thing = 'gw-1'",
    );
    expect(objects(r)).toEqual([{ n: 6n, first: 1n }]);
  });

  it('expose events with their JSON payload', async () => {
    const r = await engine.query(
      "SELECT type, count(*) AS n, max(data->>'level') AS level, any_value(thing) AS thing FROM events GROUP BY type ORDER BY type",
    );
    expect(objects(r)).toEqual([
      { type: 'alarm', n: 2n, level: '1', thing: 'gw-1' },
      { type: 'door', n: 1n, level: '2', thing: 'gw-1' },
    ]);
    const one = await engine.query(`SELECT msgId, data, dt FROM events WHERE msgId = '${EVENT_IDS[0]}'`);
    expect(one.columns.map((c) => c.type)).toEqual(['VARCHAR', 'JSON', 'VARCHAR']);
    expect(JSON.parse((one.rows[0]![1] as { text: string }).text)).toEqual({ code: 'E0', level: 0 });
  });

  it('expose frame sidecars (not the images) with the thing from the key', async () => {
    const r = await engine.query(
      'SELECT thing, camera, masking, faces, json_array_length(boxes) AS boxes, width, height, hour, capturedAt FROM frames ORDER BY masking',
    );
    expect(objects(r)).toEqual([
      {
        thing: 'gw-1',
        camera: 'dock-3',
        masking: 'blur',
        faces: 2n,
        boxes: 2n,
        width: 1920n,
        height: 1080n,
        hour: 10n,
        capturedAt: BigInt(FRAME.capturedAt),
      },
      {
        thing: 'gw-1',
        camera: 'dock-3',
        masking: 'identification',
        faces: 1n,
        boxes: 0n,
        width: 1920n,
        height: 1080n,
        hour: 10n,
        capturedAt: BigInt(FRAME.capturedAt),
      },
    ]);
  });

  it('expose analysis results from the results bucket, capturedAt as the ISO 8601 text the function writes', async () => {
    const r = await engine.query(
      "SELECT thing, camera, site, kind, capturedAt, labels->0->>'name' AS label, json_array_length(faces) AS faces, matches, dt FROM analysis",
    );
    expect(objects(r)).toEqual([
      {
        thing: 'gw-1',
        camera: 'dock-3',
        site: 'plant-a',
        kind: 'frames',
        capturedAt: new Date(FRAME.capturedAt).toISOString(),
        label: 'Person',
        faces: 1n,
        matches: null,
        dt: '2026-11-23',
      },
    ]);
    // Frames join their analysis on the capture time (epoch ms in the sidecar, ISO text in the result).
    const joined = await engine.query(
      "SELECT count(*) AS n FROM frames f JOIN analysis a ON a.thing = f.thing AND epoch_ms(a.capturedAt::TIMESTAMPTZ) = f.capturedAt AND a.kind = 'frames' AND f.masking <> 'identification'",
    );
    expect(objects(joined)).toEqual([{ n: 1n }]);
  });

  it('run several statements, returning the last result', async () => {
    const r = await engine.query(
      'CREATE TEMP TABLE hot AS SELECT * FROM telemetry WHERE temperature >= 25; SELECT count(*) AS n FROM hot',
    );
    expect(objects(r)).toEqual([{ n: 5n }]);
    await expect(engine.query(';')).rejects.toThrow('no SQL statement to run');
  });

  it('report a SQL error with DuckDB message', async () => {
    await expect(engine.query('SELECT nope FROM telemetry')).rejects.toThrow(LakeQueryError);
    await expect(engine.query('SELECT nope FROM telemetry')).rejects.toThrow(/nope/);
  });
});

describe('an engine', () => {
  it('of a fresh data dir has empty views with the same columns', async () => {
    const { dataDir } = newDataDir();
    const fresh = await LakeEngine.open({ dataDir });
    try {
      expect((await fresh.tables()).map((t) => t.rows)).toEqual([0, 0, 0, 0]);
      expect(fresh.views.flatMap((v) => v.sources.map((s) => s.hasFiles))).not.toContain(true);
      const r = await fresh.query('SELECT * FROM telemetry');
      expect(r.rows).toEqual([]);
      expect(r.columns.map((c) => c.name)).toEqual(
        [...LAKE_TABLES[0]!.columns, ...LAKE_TABLES[0]!.partitions].map((c) => c.name),
      );
      const agg = await fresh.query('SELECT count(*) AS n, avg(temperature) AS t FROM telemetry');
      expect(objects(agg)).toEqual([{ n: 0n, t: null }]);
    } finally {
      fresh.close();
    }
  });

  it('resolves the sources when it opens', async () => {
    const { dataDir, store } = newDataDir();
    const before = await LakeEngine.open({ dataDir });
    await put(store, LOCAL_DATA_BUCKET, frameObjectKeys(FRAME, 7).sidecarKey, JSON.stringify(FRAME));
    const after = await LakeEngine.open({ dataDir });
    try {
      expect((await before.query('SELECT count(*) FROM frames')).rows).toEqual([[0n]]);
      expect((await after.query('SELECT count(*) FROM frames')).rows).toEqual([[1n]]);
      // One source of a table has files, the other not yet.
      expect(after.views.find((v) => v.name === 'frames')?.sources.map((s) => s.hasFiles)).toEqual([
        true,
        false,
      ]);
    } finally {
      before.close();
      after.close();
    }
  });

  it('reads custom bucket names', async () => {
    const dataDir = tempDir('edgefleet-lake-');
    dirs.push(dataDir);
    const store = new ObjectStore(dataDir);
    store.createBucket('other-data', 'us-east-1');
    await put(
      store,
      'other-data',
      firehoseKey('gw-5', HOUR_10),
      ndjsonGzip(streamed('gw-5', HOUR_10, 2, () => 1)),
    );
    const custom = await LakeEngine.open({
      dataDir,
      dataBucket: 'other-data',
      resultsBucket: 'other-results',
    });
    try {
      expect((await custom.query('SELECT thing, count(*) FROM telemetry GROUP BY thing')).rows).toEqual([
        ['gw-5', 2n],
      ]);
    } finally {
      custom.close();
    }
  });

  it('refuses queries once closed', async () => {
    const { dataDir } = newDataDir();
    const e = await LakeEngine.open({ dataDir });
    e.close();
    e.close();
    await expect(e.query('SELECT 1')).rejects.toThrow(LakeClosedError);
  });

  it('refuses a data dir without a local S3 and a bad bucket name', async () => {
    const empty = tempDir('edgefleet-lake-');
    dirs.push(empty);
    await expect(LakeEngine.open({ dataDir: join(empty, 'missing') })).rejects.toThrow(LakeConfigError);
    await expect(LakeEngine.open({ dataDir: empty })).rejects.toThrow(/no local S3/);
    await expect(LakeEngine.open({ dataDir: lake.dataDir, dataBucket: 'Bad_Bucket' })).rejects.toThrow(
      /invalid dataBucket/,
    );
  });

  it('fails a query over malformed JSON, naming the file, and not a query the partition filter keeps away', async () => {
    const { dataDir, store } = newDataDir();
    await put(
      store,
      LOCAL_DATA_BUCKET,
      firehoseKey('gw-1', HOUR_10),
      ndjsonGzip(streamed('gw-1', HOUR_10, 2, () => 20)),
    );
    const bad = firehoseKey('gw-1', HOUR_11);
    await put(store, LOCAL_DATA_BUCKET, bad, gzipSync('{"sensorId":"s","ts":1}\n{"sensorId": \n'));
    const e = await LakeEngine.open({ dataDir });
    try {
      const err = await e.query('SELECT count(*) FROM telemetry').catch((x: unknown) => x);
      expect(err).toBeInstanceOf(LakeQueryError);
      expect((err as Error).message).toMatch(/Malformed JSON/);
      expect((err as Error).message).toContain(bad.split('/').pop());
      expect((await e.query('SELECT count(*) FROM telemetry WHERE hour = 10')).rows).toEqual([[2n]]);
    } finally {
      e.close();
    }
  });

  it('fails a query over a value of the wrong type, naming the file', async () => {
    const { dataDir, store } = newDataDir();
    const key = eventObjectKey('gw-1', 'm-1', HOUR_10);
    await put(
      store,
      LOCAL_DATA_BUCKET,
      key,
      JSON.stringify({ msgId: 'm-1', type: 'alarm', ts: 'yesterday' }),
    );
    const e = await LakeEngine.open({ dataDir });
    try {
      await expect(e.query('SELECT * FROM events')).rejects.toThrow(/m-1\.json/);
    } finally {
      e.close();
    }
  });
});

describe('the CLI', () => {
  it('lake query prints JSON rows', async () => {
    const r = await runCli([
      'lake',
      'query',
      'SELECT thing, hour, count(*) AS n, max(ts) AS last, any_value(data) AS d FROM telemetry LEFT JOIN (SELECT data FROM events LIMIT 1) ON true GROUP BY ALL ORDER BY ALL',
      '--data-dir',
      lake.dataDir,
      '--format',
      'json',
    ]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.out) as { thing: string; hour: number; n: number; last: number; d: unknown }[];
    expect(rows.map(({ thing, hour, n }) => ({ thing, hour, n }))).toEqual([
      { thing: 'gw-1', hour: 7, n: 1 },
      { thing: 'gw-1', hour: 10, n: 6 },
      { thing: 'gw-2', hour: 11, n: 3 },
    ]);
    expect(rows[2]!.last).toBe(HOUR_11 + 1000);
    expect(rows[0]!.d).toEqual({ code: expect.any(String), level: expect.any(Number) });
  });

  it('lake tables prints CSV, and the default table format has a row count', async () => {
    const csv = await runCli(['lake', 'tables', '--data-dir', lake.dataDir, '--format', 'csv']);
    expect(csv.code).toBe(0);
    expect(csv.out.split('\r\n')).toEqual([
      'name,description,rows',
      ...LAKE_TABLES.map(
        (t) =>
          `${t.name},${t.description.includes(',') ? `"${t.description}"` : t.description},${{ telemetry: 10, events: 3, frames: 2, analysis: 1 }[t.name]}`,
      ),
      '',
    ]);
    const table = await runCli([
      'lake',
      'query',
      'SELECT count(*) AS n FROM frames',
      '--data-dir',
      lake.dataDir,
    ]);
    expect(table.code).toBe(0);
    expect(table.out).toBe('n\n-\n2\n(1 row)\n');
  });

  it('reports SQL errors and bad flags without a stack trace', async () => {
    const sql = await runCli(['lake', 'query', 'SELECT nope FROM telemetry', '--data-dir', lake.dataDir]);
    expect(sql.code).toBe(1);
    expect(sql.out).toBe('');
    expect(sql.err).toMatch(/^edgefleet: query failed: Binder Error: .*nope/);
    expect(sql.err).not.toMatch(/\n\s+at /);
    const flag = await runCli(['lake', 'query', 'SELECT 1', '--data-dir', lake.dataDir, '--format', 'xml']);
    expect(flag.code).toBe(2);
    expect(flag.err).toBe('edgefleet: invalid --format: must be one of table, csv, json\n');
    const dir = await runCli(['lake', 'tables', '--data-dir', join(lake.dataDir, 'nope')]);
    expect(dir.code).toBe(2);
    expect(dir.err).toMatch(/does not exist/);
  });
});
