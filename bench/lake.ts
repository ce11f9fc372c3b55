/**
 * Lake query benchmark: the time of `edgefleet lake query` (engine open: DuckDB, views, source
 * resolution; then the query) for a grouped aggregate over streamed telemetry, against the same
 * aggregate written by hand as one `read_json` over the same files in a fresh DuckDB, in the same run.
 *
 * The data: `records` telemetry records as GZIP NDJSON in the local S3's layout, as Firehose writes them
 * (`lake/telemetry/thing=gw-NN/dt=2026-11-23/hour=HH/edgefleet-telemetry-1-...-{uuid}.gz`): 10 things ×
 * 24 hours, 4 objects per partition (the delivery stream flushes by its buffering interval).
 *
 * Why this baseline: both sides decompress and parse the same bytes with the same DuckDB reader, so the
 * ratio is what the lake layer adds (opening an engine, resolving every source's glob, the views'
 * explicit columns and projection, the UNION ALL with the gateway batches source), which is what this
 * code controls. A plain Node loop (gunzip + JSON.parse + a Map, one thread) is measured too, once per
 * round, as a reference for what the same aggregate costs without DuckDB.
 *
 * Standalone: `node bin/run-ts.js bench/lake.ts` (BENCH_LAKE_RECORDS, BENCH_ROUNDS).
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { createGunzip, createGzip } from 'node:zlib';
import { DuckDBInstance } from '@duckdb/node-api';
import { LakeEngine } from '../cloud/local/lake/index.js';
import { escapeGlob, quoteString } from '../cloud/local/lake/views.js';
import { LOCAL_DATA_BUCKET } from '../cloud/rules/resources.js';
import { median, percentile, printTable } from './stats.js';

export const DEFAULT_LAKE_RECORDS = 1_000_000;
const THINGS = 10;
const HOURS = 24;
const OBJECTS_PER_PARTITION = 4;
const DAY = Date.UTC(2026, 10, 23);
const DT = '2026-11-23';
/** Objects written at once while generating. */
const WRITERS = 8;
/** Records per string handed to the gzip stream. */
const CHUNK_RECORDS = 2000;

export const LAKE_BENCH_QUERY =
  'SELECT thing, dt, hour, count(*) AS records, avg(temperature) AS avg_temperature, max(vibration) AS max_vibration FROM telemetry GROUP BY ALL';

export interface LakeBenchOptions {
  dataDir: string;
  records: number;
  rounds: number;
}

export interface LakeBenchTimes {
  medianMs: number;
  p50Ms: number;
  minMs: number;
  maxMs: number;
  roundsMs: number[];
}

export interface LakeBenchResult extends LakeBenchTimes {
  records: number;
  objects: number;
  /** Compressed bytes of all objects. */
  bytes: number;
  /** Uncompressed NDJSON bytes. */
  rawBytes: number;
  generateMs: number;
  rounds: number;
  query: string;
  /** Rows of the aggregate (things × hours). */
  rows: number;
  /** records / median time. */
  recordsPerSec: number;
  /** Median of LakeEngine.open() alone. */
  openMedianMs: number;
  /** The same aggregate as one hand-written read_json in a fresh DuckDB. */
  baseline: LakeBenchTimes & { description: string };
  /** lake median / baseline median (1.0: the lake layer costs nothing). */
  ratio: number;
  /** Reference: gunzip + JSON.parse + Map in this process, one thread. */
  nodeLoop: LakeBenchTimes & { description: string };
}

/** A small deterministic generator (mulberry32), so every run writes the same records. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pad2 = (n: number) => String(n).padStart(2, '0');

interface ObjectPlan {
  thing: string;
  hour: number;
  part: number;
  records: number;
  firstSeq: number;
}

function* ndjson(plan: ObjectPlan, rawBytes: { n: number }): Generator<string> {
  const random = prng((plan.hour * 1000 + plan.part) * 100 + Number(plan.thing.slice(3)));
  const start = DAY + plan.hour * 3_600_000 + plan.part * (3_600_000 / OBJECTS_PER_PARTITION);
  const step = 3_600_000 / OBJECTS_PER_PARTITION / Math.max(1, plan.records);
  let lines: string[] = [];
  for (let i = 0; i < plan.records; i++) {
    const ts = Math.floor(start + i * step);
    const operator = i % 10 === 0 ? `,"operatorId":"op:v1:${Math.floor(random() * 1e8).toString(16)}"` : '';
    lines.push(
      `{"sensorId":"sensor-${i % 16}","ts":${ts},"seq":${plan.firstSeq + i},"temperature":${(15 + random() * 20).toFixed(2)},"vibration":${(random() * 2).toFixed(3)}${operator},"thing":"${plan.thing}","ingest_ts":${ts + 50 + Math.floor(random() * 200)}}\n`,
    );
    if (lines.length === CHUNK_RECORDS) {
      const chunk = lines.join('');
      rawBytes.n += Buffer.byteLength(chunk);
      yield chunk;
      lines = [];
    }
  }
  if (lines.length > 0) {
    const chunk = lines.join('');
    rawBytes.n += Buffer.byteLength(chunk);
    yield chunk;
  }
}

/** Writes the objects; returns their paths, compressed and raw bytes. */
async function generate(
  dataDir: string,
  records: number,
): Promise<{ paths: string[]; bytes: number; rawBytes: number }> {
  const plans: ObjectPlan[] = [];
  const total = THINGS * HOURS * OBJECTS_PER_PARTITION;
  const seqs = new Map<string, number>();
  for (let o = 0; o < total; o++) {
    const thing = `gw-${pad2(o % THINGS)}`;
    const rest = Math.floor(o / THINGS);
    const n = Math.floor(records / total) + (o < records % total ? 1 : 0);
    const firstSeq = seqs.get(thing) ?? 0;
    seqs.set(thing, firstSeq + n);
    plans.push({ thing, hour: rest % HOURS, part: Math.floor(rest / HOURS), records: n, firstSeq });
  }
  const root = join(dataDir, 's3', LOCAL_DATA_BUCKET);
  const paths: string[] = [];
  const raw = { n: 0 };
  let next = 0;
  const writer = async () => {
    for (let i = next++; i < plans.length; i = next++) {
      const p = plans[i]!;
      const hh = pad2(p.hour);
      const dir = join(root, `lake/telemetry/thing=${p.thing}/dt=${DT}/hour=${hh}`);
      mkdirSync(dir, { recursive: true });
      const minute = pad2((p.part * 60) / OBJECTS_PER_PARTITION);
      const path = join(dir, `edgefleet-telemetry-1-${DT}-${hh}-${minute}-00-${randomUUID()}.gz`);
      await pipeline(Readable.from(ndjson(p, raw)), createGzip(), createWriteStream(path));
      paths.push(path);
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
  const bytes = paths.reduce((a, p) => a + statSync(p).size, 0);
  return { paths, bytes, rawBytes: raw.n };
}

type Groups = Map<string, { count: number; sum: number; max: number }>;

function times(roundsMs: number[]): LakeBenchTimes {
  return {
    medianMs: median(roundsMs),
    p50Ms: percentile(roundsMs, 50),
    minMs: Math.min(...roundsMs),
    maxMs: Math.max(...roundsMs),
    roundsMs,
  };
}

async function runLake(dataDir: string): Promise<{ ms: number; openMs: number; groups: Groups }> {
  const t0 = performance.now();
  const engine = await LakeEngine.open({ dataDir });
  const openMs = performance.now() - t0;
  try {
    const r = await engine.query(LAKE_BENCH_QUERY);
    const ms = performance.now() - t0;
    const groups: Groups = new Map();
    for (const [thing, dt, hour, count, avg, max] of r.rows) {
      groups.set(`${thing}/${dt}/${hour}`, {
        count: Number(count),
        sum: Number(avg) * Number(count),
        max: Number(max),
      });
    }
    return { ms, openMs, groups };
  } finally {
    engine.close();
  }
}

async function runBaseline(glob: string): Promise<{ ms: number; groups: Groups }> {
  const t0 = performance.now();
  const instance = await DuckDBInstance.create(':memory:', { autoinstall_known_extensions: 'false' });
  const connection = await instance.connect();
  try {
    const reader = await connection.runAndReadAll(
      `SELECT thing, dt, hour, count(*), avg(temperature), max(vibration)
       FROM read_json(${quoteString(glob)}, format='newline_delimited', compression='gzip',
         columns={sensorId: 'VARCHAR', ts: 'BIGINT', seq: 'BIGINT', temperature: 'DOUBLE', vibration: 'DOUBLE',
                  operatorId: 'VARCHAR', ingest_ts: 'BIGINT'},
         hive_partitioning=true, hive_types={thing: 'VARCHAR', dt: 'VARCHAR', hour: 'BIGINT'})
       GROUP BY ALL`,
    );
    const ms = performance.now() - t0;
    const groups: Groups = new Map();
    for (const [thing, dt, hour, count, avg, max] of reader.getRows()) {
      groups.set(`${thing}/${dt}/${hour}`, {
        count: Number(count),
        sum: Number(avg) * Number(count),
        max: Number(max),
      });
    }
    return { ms, groups };
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

/** The aggregate without DuckDB: each object gunzipped and its lines parsed, one after the other. */
async function runNodeLoop(paths: readonly string[]): Promise<{ ms: number; groups: Groups }> {
  const t0 = performance.now();
  const groups: Groups = new Map();
  for (const path of paths) {
    const m = /thing=([^/]+)\/dt=([^/]+)\/hour=(\d+)\//.exec(path.split('\\').join('/'));
    if (!m) throw new Error(`not a partitioned key: ${path}`);
    const key = `${m[1]}/${m[2]}/${Number(m[3])}`;
    let g = groups.get(key);
    if (!g) {
      g = { count: 0, sum: 0, max: Number.NEGATIVE_INFINITY };
      groups.set(key, g);
    }
    let rest = '';
    for await (const chunk of createReadStream(path).pipe(createGunzip()).setEncoding('utf8')) {
      const lines = (rest + (chunk as string)).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (line === '') continue;
        const r = JSON.parse(line) as { temperature: number; vibration: number };
        g.count++;
        g.sum += r.temperature;
        if (r.vibration > g.max) g.max = r.vibration;
      }
    }
    if (rest !== '') throw new Error(`${path}: the last line has no newline`);
  }
  return { ms: performance.now() - t0, groups };
}

/** The three runs must agree: same groups, counts, sums (to rounding) and maxima. */
function check(what: string, expected: Groups, actual: Groups, records: number): void {
  let total = 0;
  for (const [key, e] of expected) {
    const a = actual.get(key);
    if (!a || a.count !== e.count || Math.abs(a.sum - e.sum) > 1e-6 * Math.abs(e.sum) || a.max !== e.max) {
      throw new Error(`${what} disagrees on ${key}: ${JSON.stringify(a)} vs ${JSON.stringify(e)}`);
    }
    total += a.count;
  }
  if (actual.size !== expected.size || total !== records) {
    throw new Error(
      `${what}: ${actual.size} groups / ${total} records, expected ${expected.size} / ${records}`,
    );
  }
}

export async function benchLake(
  opts: { dataDir: string; records: number; rounds: number },
  log: (s: string) => void,
): Promise<LakeBenchResult> {
  const records = opts.records > 0 ? opts.records : DEFAULT_LAKE_RECORDS;
  const dataDir = resolve(opts.dataDir);
  const g0 = performance.now();
  const { paths, bytes, rawBytes } = await generate(dataDir, records);
  const generateMs = performance.now() - g0;
  log(
    `  wrote ${records} records in ${paths.length} objects: ${(bytes / 1e6).toFixed(1)} MB gzip (${(rawBytes / 1e6).toFixed(1)} MB NDJSON) in ${generateMs.toFixed(0)} ms`,
  );
  const glob = `${escapeGlob(join(dataDir, 's3', LOCAL_DATA_BUCKET).split('\\').join('/'))}/lake/telemetry/thing=*/dt=*/hour=*/*.gz`;

  const lakeMs: number[] = [];
  const openMs: number[] = [];
  const baselineMs: number[] = [];
  const nodeMs: number[] = [];
  let rows = 0;
  for (let round = 0; round < opts.rounds; round++) {
    const node = await runNodeLoop(paths);
    nodeMs.push(node.ms);
    const order = round % 2 === 0 ? (['lake', 'baseline'] as const) : (['baseline', 'lake'] as const);
    for (const side of order) {
      if (side === 'lake') {
        const r = await runLake(dataDir);
        check('lake query', node.groups, r.groups, records);
        lakeMs.push(r.ms);
        openMs.push(r.openMs);
        rows = r.groups.size;
      } else {
        const r = await runBaseline(glob);
        check('baseline', node.groups, r.groups, records);
        baselineMs.push(r.ms);
      }
    }
    log(
      `  round ${round + 1}: lake query ${lakeMs.at(-1)!.toFixed(0)} ms (open ${openMs.at(-1)!.toFixed(0)} ms), read_json ${baselineMs.at(-1)!.toFixed(0)} ms, node loop ${node.ms.toFixed(0)} ms`,
    );
  }
  const lake = times(lakeMs);
  const baseline = times(baselineMs);
  return {
    ...lake,
    records,
    objects: paths.length,
    bytes,
    rawBytes,
    generateMs,
    rounds: opts.rounds,
    query: LAKE_BENCH_QUERY,
    rows,
    recordsPerSec: records / (lake.medianMs / 1000),
    openMedianMs: median(openMs),
    baseline: {
      ...baseline,
      description: 'one hand-written read_json over the same objects (same columns, hive partitioning)',
    },
    ratio: lake.medianMs / baseline.medianMs,
    nodeLoop: { ...times(nodeMs), description: 'gunzip + JSON.parse + Map, one thread' },
  };
}

/** Prints the result as the other benchmarks do. */
export function printLakeTable(r: LakeBenchResult): void {
  printTable(
    `Lake query: ${r.records} telemetry records in ${r.objects} GZIP NDJSON objects (${(r.bytes / 1e6).toFixed(1)} MB), grouped aggregate, engine open + query (median of ${r.rounds} rounds; baseline = ${r.baseline.description}, same run)`,
    ['measure', 'median ms', 'min ms', 'max ms'],
    [
      ['lake query (open + views + query)', r.medianMs, r.minMs, r.maxMs],
      ['  of it engine open', r.openMedianMs, '', ''],
      ['baseline: read_json in a fresh DuckDB', r.baseline.medianMs, r.baseline.minMs, r.baseline.maxMs],
      ['ratio lake / baseline', r.ratio.toFixed(2), '', ''],
      [`reference: ${r.nodeLoop.description}`, r.nodeLoop.medianMs, r.nodeLoop.minMs, r.nodeLoop.maxMs],
      ['lake records/s', Math.round(r.recordsPerSec), '', ''],
    ],
  );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const records = Number(process.env.BENCH_LAKE_RECORDS ?? DEFAULT_LAKE_RECORDS);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
  const dataDir = mkdtempSync(join(tmpdir(), 'edgefleet-bench-lake-'));
  try {
    const log = (s: string) => process.stderr.write(`${s}\n`);
    log(`lake query benchmark: ${records} records, ${rounds} rounds`);
    printLakeTable(await benchLake({ dataDir, records, rounds }, log));
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
