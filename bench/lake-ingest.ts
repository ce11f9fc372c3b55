/**
 * Lake ingest benchmark: telemetry records (500 bytes of JSON each) published over MQTT/TLS on
 * `dt/{thing}/telemetry` (QoS 1, one record per message) go through the rule `edgefleet_telemetry`
 * (AWS IoT SQL, the firehose action's signed PutRecord) into the local Firehose (journal, buffers,
 * dynamic partitioning by thing, GZIP) and out as objects in the local S3. A run ends when every record
 * is in an object (the buffers are flushed once the publishes are acknowledged and the rules are idle);
 * the objects are read back and counted.
 *
 * Baseline, in the same run: the same records, gzip'd as NDJSON and written straight to files, one per
 * thing (what a process that owned the disk could do at best).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Worker } from 'node:worker_threads';
import { gunzipSync, gzip } from 'node:zlib';
import { LocalCloud } from '../cloud/local/index.js';
import { provisionThing, readDeviceFiles } from '../cloud/local/provision.js';
import { LOCAL_DATA_BUCKET } from '../cloud/rules/resources.js';
import { median } from './stats.js';
import { telemetryRecord } from './telemetry-record.mjs';

const gzipAsync = promisify(gzip);

export interface LakeIngestOptions {
  dataDir: string;
  rounds: number;
  things: number;
  recordsPerThing: number;
  recordBytes?: number;
}

export interface LakeIngestResult {
  records: number;
  recordBytes: number;
  rounds: { pipelineRecordsPerSec: number; baselineRecordsPerSec: number; objects: number }[];
  pipelineRecordsPerSec: number;
  baselineRecordsPerSec: number;
  ratio: number;
  objectsPerRound: number;
  peakRssMB: number;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, name.name);
    if (name.isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

function countRecords(files: string[]): number {
  let n = 0;
  for (const f of files) {
    const text = gunzipSync(readFileSync(f)).toString('utf8');
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  }
  return n;
}

async function pipelineRound(dir: string, opts: Required<LakeIngestOptions>) {
  const cloud = await LocalCloud.start({
    dataDir: dir,
    mqttPort: 0,
    httpPort: 0,
    // Objects come from the flush at the end, not from the interval.
    telemetryBuffering: { intervalInSeconds: 900, sizeInMBs: 128 },
  });
  try {
    const things = Array.from({ length: opts.things }, (_, i) => `bench-lake-${i}`);
    const tlsFor: Record<string, { cert: string; key: string; ca: string }> = {};
    for (const thing of things) {
      const out = join(dir, 'devices', thing);
      await provisionThing({ thingName: thing, outDir: out }, cloud);
      const d = await readDeviceFiles(out);
      tlsFor[thing] = { cert: d.cert, key: d.key, ca: d.ca };
    }
    const worker = new Worker(new URL('./telemetry-load.mjs', import.meta.url), {
      workerData: {
        url: cloud.endpoints.mqttUrl,
        things,
        records: opts.recordsPerThing,
        recordBytes: opts.recordBytes,
        window: 64,
        tlsFor,
      },
    });
    const started = performance.now();
    const load = await new Promise<{ elapsedMs: number; published: number }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    }).finally(() => worker.terminate());
    await cloud.rules.idle();
    await cloud.firehose.flush();
    await cloud.firehose.idle();
    const seconds = (performance.now() - started) / 1000;
    const files = filesUnder(join(dir, 's3', LOCAL_DATA_BUCKET, 'lake', 'telemetry'));
    const delivered = countRecords(files);
    if (delivered !== load.published) {
      throw new Error(`lake ingest: ${load.published} records published, ${delivered} in the lake`);
    }
    return { recordsPerSec: delivered / seconds, objects: files.length };
  } finally {
    await cloud.stop();
  }
}

async function baselineRound(dir: string, opts: Required<LakeIngestOptions>) {
  mkdirSync(dir, { recursive: true });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: opts.things }, async (_, k) => {
      const lines: string[] = [];
      for (let i = 0; i < opts.recordsPerThing; i++) lines.push(telemetryRecord(i, opts.recordBytes), '\n');
      await writeFile(join(dir, `bench-lake-${k}.ndjson.gz`), await gzipAsync(lines.join('')));
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const written = readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
  return { recordsPerSec: (opts.things * opts.recordsPerThing) / seconds, bytes: written };
}

export async function benchLakeIngest(
  options: LakeIngestOptions,
  log: (s: string) => void,
): Promise<LakeIngestResult> {
  const opts: Required<LakeIngestOptions> = { recordBytes: 500, ...options };
  const rounds: LakeIngestResult['rounds'] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const base = await baselineRound(join(opts.dataDir, `baseline-${r}`), opts);
    const pipe = await pipelineRound(join(opts.dataDir, `pipeline-${r}`), opts);
    rmSync(join(opts.dataDir, `baseline-${r}`), { recursive: true, force: true });
    rmSync(join(opts.dataDir, `pipeline-${r}`), { recursive: true, force: true });
    rounds.push({
      pipelineRecordsPerSec: pipe.recordsPerSec,
      baselineRecordsPerSec: base.recordsPerSec,
      objects: pipe.objects,
    });
    log(
      `  round ${r + 1}: MQTT -> rule -> Firehose -> S3 ${pipe.recordsPerSec.toFixed(0)} rec/s (${pipe.objects} objects), direct gzip ${base.recordsPerSec.toFixed(0)} rec/s`,
    );
  }
  const pipelineRecordsPerSec = median(rounds.map((r) => r.pipelineRecordsPerSec));
  const baselineRecordsPerSec = median(rounds.map((r) => r.baselineRecordsPerSec));
  return {
    records: opts.things * opts.recordsPerThing,
    recordBytes: opts.recordBytes,
    rounds,
    pipelineRecordsPerSec,
    baselineRecordsPerSec,
    ratio: pipelineRecordsPerSec / baselineRecordsPerSec,
    objectsPerRound: median(rounds.map((r) => r.objects)),
    peakRssMB: process.resourceUsage().maxRSS / 1024,
  };
}
