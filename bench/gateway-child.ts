/**
 * One measured run of the gateway ingest benchmark, in a process of its own so that its RSS is the
 * gateway's (bench/gateway.ts forks it through bin/run-ts.js with an IPC channel):
 *
 * - `pipeline`: the real Gateway (parseGatewayConfig, pseudonymization with a key file and a map file,
 *   the lmdb spool, batching) on a connected MemoryIotChannel, with an uploader that counts and
 *   discards. Producers keep `concurrency` ingest() calls in flight, each with one record as JSON bytes
 *   (as a local MQTT broker hands them over); latency is from the call to the resolved promise (the
 *   record is durable then). The run ends once every record was accepted and uploaded in a batch
 *   (the final partial batch, if any, by stop()).
 * - `baseline`: the same records (the same bytes, NDJSON) appended to one file with one fsync per
 *   batch of `batchRecords` records.
 *
 * The request comes as JSON in argv[2]; the result goes back with process.send().
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { MemoryIotChannel } from '../edge-component/adapters/memory-channel.js';
import { parseGatewayConfig } from '../edge-component/config.js';
import { Gateway } from '../edge-component/gateway.js';
import { tuneHeap } from '../edge-component/heap.js';
import type { UploadRequest, UploadResult } from '../edge-component/uploader.js';
import { percentile } from './stats.js';

export interface ChildRequest {
  mode: 'pipeline' | 'baseline';
  /**
   * `component`: the heap settings of the component's process (edge-component/heap.ts; the parent
   * passes its node options); `node`: Node's defaults.
   */
  heap: 'component' | 'node';
  /** A fresh directory for this run. */
  dir: string;
  records: number;
  concurrency: number;
  batchRecords: number;
  seed: number;
}

export interface ChildResult {
  mode: 'pipeline' | 'baseline';
  heap: ChildRequest['heap'];
  records: number;
  bytes: number;
  seconds: number;
  recordsPerSec: number;
  /** Ingest call -> durable (pipeline) or write+fsync of the record's batch (baseline). */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** VmHWM of /proc/self/status (peak RSS of the process), MB. */
  peakRssMB: number;
  /** Highest process.memoryUsage().rss sampled every 20 ms during the run, MB. */
  sampledPeakRssMB: number;
  /** Highest anonymous (heap, buffers) and file-backed (mapped files: code, the lmdb map) RSS sampled, MB. */
  peakRssAnonMB: number;
  peakRssFileMB: number;
  /** Highest V8 heap (committed) and ArrayBuffer (Buffers) sizes sampled, MB. */
  peakHeapTotalMB: number;
  peakArrayBuffersMB: number;
  uploadedRecords: number;
  uploadedBatches: number;
  /** Entries in the re-identification map at the end (distinct pseudonyms). */
  pseudonyms: number;
  deadlettered: number;
}

const MB = 1024 * 1024;

// ------------------------------------------------------------------ records

/** mulberry32: a small deterministic PRNG. */
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

const OPERATORS = 200;
const BADGES = 1000;
const PATIENTS = 2000;
const READINGS = 3;
const SAMPLES = 82;
const SAMPLE_POOL = 256;
const T0 = Date.UTC(2025, 0, 1);
const pad = (n: number, w: number) => String(n).padStart(w, '0');

/** Serialized vibration sample arrays, made once per seed (generating records must cost the producer little). */
const samplePools = new Map<number, string[]>();
function samplePool(seed: number): string[] {
  let pool = samplePools.get(seed);
  if (!pool) {
    const r = prng(seed);
    pool = [];
    for (let k = 0; k < SAMPLE_POOL; k++) {
      const samples: number[] = [];
      for (let j = 0; j < SAMPLES; j++) samples.push(Math.round(r() * 10_000) / 100);
      pool.push(JSON.stringify(samples));
    }
    samplePools.set(seed, pool);
  }
  return pool;
}

/**
 * Record `i` of run `seed`, about 1 KB of JSON, as bytes: a function of (seed, i) only, so the pipeline
 * and the baseline get the same bytes. IDs are low-entropy (a few hundred to a few thousand values),
 * so the pseudonym map grows early in the run and then mostly repeats.
 */
export function makeRecord(seed: number, i: number): Buffer {
  const r = prng((seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
  const int = (n: number) => Math.floor(r() * n);
  let readings = '';
  for (let k = 0; k < READINGS; k++) {
    const value = Math.round((20 + r() * 15) * 100) / 100;
    readings += `${k > 0 ? ',' : ''}{"sensor":"temp-${k + 1}","patientId":"P-${pad(int(PATIENTS), 5)}","value":${value},"unit":"C","quality":"${r() < 0.98 ? 'good' : 'suspect'}"}`;
  }
  const json =
    `{"deviceId":"press-${pad(int(24), 2)}","seq":${i},"ts":"${new Date(T0 + i * 10).toISOString()}",` +
    `"operatorId":"OP-${pad(int(OPERATORS), 4)}",` +
    `"badge":{"id":"B-${pad(int(BADGES), 5)}","site":"plant-3","zone":"line-${int(8) + 1}"},` +
    `"status":"${r() < 0.95 ? 'running' : 'idle'}","cycleTimeMs":${800 + int(400)},"spindleRpm":${1000 + int(2000)},` +
    `"readings":[${readings}],` +
    `"vibration":{"axis":"z","rateHz":1000,"samples":${samplePool(seed)[int(SAMPLE_POOL)]}},` +
    `"firmware":"4.2.17+build.20250101"}`;
  return Buffer.from(json);
}

// ------------------------------------------------------------------ measurement helpers

/** Fields of /proc/self/status in MB (NaN off Linux). */
function procStatusMB(): { hwm: number; anon: number; file: number } {
  let text = '';
  try {
    text = readFileSync('/proc/self/status', 'utf8');
  } catch {
    // not Linux
  }
  const kb = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(text);
    return m?.[1] ? Number(m[1]) / 1024 : Number.NaN;
  };
  return { hwm: kb('VmHWM'), anon: kb('RssAnon'), file: kb('RssFile') };
}

/** Samples the RSS every 20 ms: the highest total, and the anonymous and file-backed parts at their peaks. */
function rssSampler(): {
  stop(): { rss: number; anon: number; file: number; heapTotal: number; arrayBuffers: number };
} {
  let peak = 0;
  let anon = 0;
  let file = 0;
  let heapTotal = 0;
  let arrayBuffers = 0;
  const sample = () => {
    const m = process.memoryUsage();
    peak = Math.max(peak, m.rss);
    heapTotal = Math.max(heapTotal, m.heapTotal);
    arrayBuffers = Math.max(arrayBuffers, m.arrayBuffers);
    const s = procStatusMB();
    if (s.anon > anon) anon = s.anon;
    if (s.file > file) file = s.file;
  };
  sample();
  const timer = setInterval(sample, 20);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { rss: peak / MB, anon, file, heapTotal: heapTotal / MB, arrayBuffers: arrayBuffers / MB };
    },
  };
}

/** Runs `concurrency` producers that take record indices in order until all `records` are done. */
async function produce(
  records: number,
  concurrency: number,
  one: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < records) await one(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, records) }, worker));
}

function latencyFigures(lat: Float64Array) {
  const values = Array.from(lat);
  return {
    p50Ms: percentile(values, 50),
    p99Ms: percentile(values, 99),
    maxMs: values.reduce((a, b) => Math.max(a, b), 0),
  };
}

// ------------------------------------------------------------------ the runs

/** An uploader that counts and discards. */
class CountingUploader {
  records = 0;
  batches = 0;
  bytes = 0;

  async upload(req: UploadRequest): Promise<UploadResult> {
    const data = 'data' in req.source ? req.source.data : new Uint8Array(0);
    this.records += Number(req.metadata?.records ?? 0);
    this.batches++;
    this.bytes += data.byteLength;
    return {
      bucket: 'bench',
      key: req.key,
      bytes: data.byteLength,
      sha256: '',
      multipart: false,
      alreadyUploaded: false,
      attempts: 1,
    };
  }
}

async function runPipeline(req: ChildRequest): Promise<ChildResult> {
  const config = parseGatewayConfig(
    {
      thingName: 'bench-gateway',
      logLevel: 'silent',
      aws: { region: 'eu-central-1' },
      storage: { bucket: 'bench-bucket' },
      credentials: { source: 'tes' },
      pseudonymization: {
        fields: ['$.operatorId', '$.badge.id', '$.readings[*].patientId'],
        keyFile: 'pseudonym-keys.json',
        mapFile: 'pseudonym-map.jsonl',
      },
      spool: { dir: 'spool' },
      batching: { maxRecords: req.batchRecords, maxBytes: 8 * MB, maxAgeMs: 5000 },
    },
    { baseDir: req.dir },
  );
  if (req.heap === 'component') tuneHeap();
  const uploader = new CountingUploader();
  const channel = new MemoryIotChannel({ connected: true });
  const gateway = await Gateway.start(config, { channel, uploader, logger: pino({ level: 'silent' }) });
  const lat = new Float64Array(req.records);
  let bytes = 0;
  const rss = rssSampler();
  const t0 = performance.now();
  try {
    await produce(req.records, req.concurrency, async (i) => {
      const record = makeRecord(req.seed, i);
      bytes += record.byteLength;
      const s = performance.now();
      const r = await gateway.ingest(record);
      lat[i] = performance.now() - s;
      if (!r.accepted) throw new Error(`record ${i} was not accepted: ${r.reason}`);
    });
  } finally {
    // Cuts and uploads whatever is left (the open batch too) and closes the spool: the run ends when
    // every record is in an uploaded batch.
    await gateway.stop();
  }
  const seconds = (performance.now() - t0) / 1000;
  const sampled = rss.stop();
  if (gateway.counters.uploadedRecords !== req.records || uploader.records !== req.records) {
    throw new Error(
      `uploaded ${gateway.counters.uploadedRecords} (gateway) / ${uploader.records} (uploader) of ${req.records} records`,
    );
  }
  const map = readFileSync(config.pseudonymization!.mapFile, 'utf8');
  return {
    mode: 'pipeline',
    heap: req.heap,
    records: req.records,
    bytes,
    seconds,
    recordsPerSec: req.records / seconds,
    ...latencyFigures(lat),
    ...memoryFigures(sampled),
    uploadedRecords: gateway.counters.uploadedRecords,
    uploadedBatches: gateway.counters.uploadedBatches,
    pseudonyms: map.split('\n').length - 1,
    deadlettered: gateway.counters.deadlettered,
  };
}

/** The memory part of a result: the process's peak RSS and the sampled peaks. */
function memoryFigures(sampled: ReturnType<ReturnType<typeof rssSampler>['stop']>) {
  return {
    peakRssMB: procStatusMB().hwm,
    sampledPeakRssMB: sampled.rss,
    peakRssAnonMB: sampled.anon,
    peakRssFileMB: sampled.file,
    peakHeapTotalMB: sampled.heapTotal,
    peakArrayBuffersMB: sampled.arrayBuffers,
  };
}

async function runBaseline(req: ChildRequest): Promise<ChildResult> {
  const file = join(req.dir, 'baseline.ndjson');
  closeSync(openSync(file, 'w', 0o600));
  const fh = await open(file, 'a');
  const lat = new Float64Array(req.records);
  const newline = Buffer.from('\n');
  let bytes = 0;
  const rss = rssSampler();
  const t0 = performance.now();
  try {
    for (let first = 0; first < req.records; first += req.batchRecords) {
      const last = Math.min(req.records, first + req.batchRecords);
      const parts: Buffer[] = [];
      const started: number[] = [];
      for (let i = first; i < last; i++) {
        const record = makeRecord(req.seed, i);
        bytes += record.byteLength;
        started.push(performance.now());
        parts.push(record, newline);
      }
      await fh.writev(parts);
      await fh.sync();
      const done = performance.now();
      for (let i = first; i < last; i++) lat[i] = done - started[i - first]!;
    }
  } finally {
    await fh.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  const sampled = rss.stop();
  return {
    mode: 'baseline',
    heap: req.heap,
    records: req.records,
    bytes,
    seconds,
    recordsPerSec: req.records / seconds,
    ...latencyFigures(lat),
    ...memoryFigures(sampled),
    uploadedRecords: 0,
    uploadedBatches: Math.ceil(req.records / req.batchRecords),
    pseudonyms: 0,
    deadlettered: 0,
  };
}

async function main(): Promise<void> {
  const arg = process.argv[2];
  if (!arg || !process.send) throw new Error('bench/gateway-child.ts is started by bench/gateway.ts');
  const req = JSON.parse(arg) as ChildRequest;
  const result = req.mode === 'pipeline' ? await runPipeline(req) : await runBaseline(req);
  await new Promise<void>((resolve, reject) =>
    process.send!(result, undefined, {}, (err) => (err ? reject(err) : resolve())),
  );
  process.disconnect();
}

if (process.send) await main();
