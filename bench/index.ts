/**
 * `npm run bench`: runs the benchmarks, prints tables, and writes JSON results to bench/results/.
 * Environment: BENCH_ROUNDS (default 5), BENCH_MESSAGES (per publisher per run, default 1000),
 * BENCH_SHADOW_UPDATES (default 300), BENCH_UPLOADS (objects per size, default 20; 32 MB objects: a
 * fifth of it), BENCH_CREDENTIALS (credential round trips, default 100), BENCH_RECORDS (records per
 * gateway ingest run, default 100000), BENCH_FRAMES (1920x1080 frames per frames round, default 24),
 * BENCH_LAKE_THINGS and BENCH_LAKE_RECORDS_PER_THING (lake ingest, default 4 x 5000 records of 500 B),
 * BENCH_LAKE_RECORDS (records the lake query aggregates, default 1000000),
 * BENCH_JITR_DEVICES (devices joining at once, default 100),
 * BENCH_FIRMWARE_GATEWAYS (simulated gateways of the firmware rollout, default 200),
 * BENCH_ANOMALY_READINGS (readings per detector round, default 200000),
 * BENCH_KINESIS_RECORDS (records per PutRecords round, default 100000),
 * BENCH_ONLY (broker | uploads | gateway | frames | lake | jitr | firmware | anomaly | kinesis).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchAnomaly } from './anomaly.js';
import { benchBroker } from './broker.js';
import { bundleScript, runScript } from './child.js';
import { benchFirmware } from './firmware.js';
import type { FramesBenchResult } from './frames.js';
import { benchGateway } from './gateway.js';
import { benchJitr } from './jitr.js';
import { benchKinesis } from './kinesis.js';
import { benchLake, printLakeTable } from './lake.js';
import { benchLakeIngest } from './lake-ingest.js';
import { printTable } from './stats.js';
import { benchUploads } from './uploads.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const int = (name: string, def: number) => {
  const v = Number(process.env[name] ?? def);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer`);
  return v;
};

const rounds = int('BENCH_ROUNDS', 5);
const messagesPerPublisher = int('BENCH_MESSAGES', 1000);
const shadowUpdates = int('BENCH_SHADOW_UPDATES', 300);
const uploadsPerSize = int('BENCH_UPLOADS', 20);
const credentialRequests = int('BENCH_CREDENTIALS', 100);
const gatewayRecords = int('BENCH_RECORDS', 100_000);
const framesPerRound = int('BENCH_FRAMES', 24);
const lakeThings = int('BENCH_LAKE_THINGS', 4);
const lakeRecordsPerThing = int('BENCH_LAKE_RECORDS_PER_THING', 5000);
const lakeQueryRecords = int('BENCH_LAKE_RECORDS', 1_000_000);
const jitrDevices = int('BENCH_JITR_DEVICES', 100);
const firmwareGateways = int('BENCH_FIRMWARE_GATEWAYS', 200);
const only = process.env.BENCH_ONLY;
const anomalyReadings = int('BENCH_ANOMALY_READINGS', 200_000);
const kinesisRecords = int('BENCH_KINESIS_RECORDS', 100_000);
const BENCHES = ['broker', 'uploads', 'gateway', 'frames', 'lake', 'jitr', 'firmware', 'anomaly', 'kinesis'];
if (only !== undefined && !BENCHES.includes(only)) {
  throw new Error(`BENCH_ONLY must be one of ${BENCHES.join(', ')}`);
}
const dataDir = mkdtempSync(join(tmpdir(), 'edgefleet-bench-'));
const log = (s: string) => process.stderr.write(`${s}\n`);
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: cpus().length,
};
const pct = (ratio: number) => `${(ratio * 100).toFixed(1)}%`;

try {
  if (only === undefined || only === 'broker') {
    log(
      `broker benchmark: ${rounds} rounds x ${messagesPerPublisher} messages per publisher, 10 -> 10 clients, 256 B`,
    );
    const r = await benchBroker(
      { dataDir: join(dataDir, 'broker'), rounds, messagesPerPublisher, shadowUpdates },
      log,
    );
    printTable(
      'Broker throughput over TLS (deliveries/s, median of rounds; baseline = plain aedes over TLS, no policy)',
      ['QoS', 'baseline msg/s', 'with IoT policies msg/s', 'ratio', 'target'],
      r.throughput.map((row) => [
        row.qos,
        row.baselineMsgsPerSec,
        row.policyMsgsPerSec,
        pct(row.ratio),
        '>= 80%',
      ]),
    );
    printTable(
      'Shadow update round-trip over MQTT (publish /update -> /update/accepted)',
      ['updates', 'p50 ms', 'p99 ms'],
      [[r.shadow.n, r.shadow.p50, r.shadow.p99]],
    );
    results.broker = { rounds, messagesPerPublisher, ...r };
  }
  if (only === undefined || only === 'uploads') {
    const counts = {
      small: uploadsPerSize,
      medium: uploadsPerSize,
      large: Math.max(2, Math.round(uploadsPerSize / 5)),
    };
    log(
      `upload benchmark: ${counts.small} x 64 KB, ${counts.medium} x 1 MB, ${counts.large} x 32 MB; ${credentialRequests} credential round trips`,
    );
    const u = await benchUploads({ dataDir: join(dataDir, 'uploads'), counts, credentialRequests }, log);
    printTable(
      'Edge uploader into the local S3 vs fs.writeFile + fsync (MB/s, median per object)',
      ['size', 'objects', 'uploader MB/s', 'writeFile+fsync MB/s', 'ratio'],
      u.uploads.map((r) => [r.label, r.count, r.uploaderMBps, r.fsMBps, pct(r.ratio)]),
    );
    printTable(
      'Credential round trip over MQTT (request -> rule -> vending function -> STS -> response)',
      ['requests', 'p50 ms', 'p99 ms'],
      [[u.credentials.n, u.credentials.p50, u.credentials.p99]],
    );
    results.uploads = u;
  }
  if (only === undefined || only === 'gateway') {
    log(
      `gateway ingest benchmark: ${rounds} rounds x ${gatewayRecords} records of ~1 KB, pipeline and baseline each in a child process`,
    );
    const g = await benchGateway({ dataDir: join(dataDir, 'gateway'), records: gatewayRecords, rounds }, log);
    printTable(
      `Gateway ingest -> pseudonymize -> durable spool -> batch (${g.records} records of ${Math.round(g.recordBytes)} B, ${g.concurrency} in flight, batches of ${g.batchRecords}; median of ${g.rounds} rounds; baseline = append the same bytes to a file, one fsync per batch)`,
      ['measure', 'value', 'target'],
      [
        ['pipeline records/s', g.pipelineRecordsPerSec, `>= ${g.targets.recordsPerSec}`],
        ['baseline records/s (append + fsync per batch)', g.baselineRecordsPerSec, ''],
        ['ratio pipeline / baseline', pct(g.ratio), ''],
        ['ingest -> durable p50 ms', g.latency.p50Ms, ''],
        ['ingest -> durable p99 ms', g.latency.p99Ms, ''],
        ['gateway peak RSS MB (VmHWM of the pipeline process)', g.peakRssMB, `< ${g.targets.rssMB}`],
        [
          '  of it anonymous / file-backed (sampled peaks)',
          `${g.peakRssAnonMB.toFixed(0)} / ${g.peakRssFileMB.toFixed(0)}`,
          '',
        ],
        [
          '  V8 heap / Buffers (sampled peaks)',
          `${g.peakHeapTotalMB.toFixed(0)} / ${g.peakArrayBuffersMB.toFixed(0)}`,
          '',
        ],
        ['  floor: baseline process (same modules loaded)', g.baselinePeakRssMB.toFixed(0), ''],
        ["with Node's default heap settings: records/s", g.nodeDefaultHeap.recordsPerSec, ''],
        [
          '  its p99 ms / peak RSS MB',
          `${g.nodeDefaultHeap.p99Ms.toFixed(1)} / ${g.nodeDefaultHeap.peakRssMB.toFixed(0)}`,
          '',
        ],
        [
          'targets met (records/s, RSS)',
          `${g.targets.recordsPerSecMet ? 'yes' : 'NO'} / ${g.targets.rssMet ? 'yes' : 'NO'}`,
          '',
        ],
      ],
    );
    results.gateway = g;
  }
  if (only === undefined || only === 'frames') {
    // In a child process running the compiled code with the component's environment (bench/child.ts).
    const f = await runScript<FramesBenchResult>(
      await bundleScript(new URL('./frames-child.ts', import.meta.url), 'frames-child'),
      { frames: framesPerRound, rounds },
    );
    printTable(
      `Camera frames, ${f.width}x${f.height} JPEG, one camera (median of ${f.rounds} rounds of ${f.frames} frames; baseline = bare sharp decode + encode of the same frames, same run)`,
      ['measure', 'value', 'target'],
      [
        ['bare sharp decode+encode frames/s', f.bareFps.toFixed(1), ''],
        ['pipeline without detection frames/s (decode, resize, encode)', f.pipelineFps.toFixed(1), ''],
        ['ratio pipeline / bare sharp', pct(f.ratio), `>= ${pct(f.targets.ratio)}`],
        [
          '  with the change detector on: frames/s (ratio)',
          `${f.changeDetectorFps.toFixed(1)} (${pct(f.changeDetectorRatio)})`,
          '',
        ],
        [
          `pipeline with face detection + blur frames/s (${f.facesPerFrame.toFixed(1)} faces/frame)`,
          f.detectionFps.toFixed(2),
          `>= ${f.targets.detectionFps}`,
        ],
        ['peak RSS MB (VmHWM of the bench process)', f.peakRssMB.toFixed(0), `< ${f.targets.rssMB}`],
        ['  of it before the face models were loaded', f.rssBeforeModelsMB.toFixed(0), ''],
        [
          'targets met (ratio, detection, RSS)',
          `${f.targets.ratioMet ? 'yes' : 'NO'} / ${f.targets.detectionMet ? 'yes' : 'NO'} / ${f.targets.rssMet ? 'yes' : 'NO'}`,
          '',
        ],
      ],
    );
    results.frames = f;
  }
  if (only === undefined || only === 'lake') {
    log(
      `lake ingest benchmark: ${rounds} rounds x ${lakeThings} things x ${lakeRecordsPerThing} records of 500 B, MQTT -> rule -> Firehose -> S3`,
    );
    const li = await benchLakeIngest(
      {
        dataDir: join(dataDir, 'lake-ingest'),
        rounds,
        things: lakeThings,
        recordsPerThing: lakeRecordsPerThing,
      },
      log,
    );
    printTable(
      'Lake ingest (records/s, median of rounds; baseline = the same records gzip NDJSON to files directly)',
      ['measure', 'value'],
      [
        ['records per round (500 B each)', li.records],
        ['MQTT publish -> rule -> Firehose -> S3 objects, rec/s', li.pipelineRecordsPerSec.toFixed(0)],
        ['baseline: gzip NDJSON straight to files, rec/s', li.baselineRecordsPerSec.toFixed(0)],
        ['ratio pipeline / baseline', pct(li.ratio)],
        ['objects written per round (Firehose)', li.objectsPerRound],
        ['peak RSS MB (bench process: local cloud + load worker)', li.peakRssMB.toFixed(0)],
      ],
    );
    results.lakeIngest = li;
    log(`lake query benchmark: ${rounds} rounds over ${lakeQueryRecords} records`);
    const lq = await benchLake(
      { dataDir: join(dataDir, 'lake-query'), records: lakeQueryRecords, rounds },
      log,
    );
    printLakeTable(lq);
    results.lakeQuery = lq;
  }
  if (only === undefined || only === 'jitr') {
    log(`JITR benchmark: ${rounds} rounds x ${jitrDevices} new devices joining at once`);
    const j = await benchJitr({ dataDir: join(dataDir, 'jitr'), devices: jitrDevices, rounds }, log);
    printTable(
      'JITR: first connection attempt -> first accepted publish (PUBACK), per device (median of rounds; baseline = devices provisioned beforehand)',
      ['measure', 'JITR', 'provisioned beforehand'],
      [
        ['devices at once', j.devices, j.devices],
        ['p50 ms', j.p50Ms.toFixed(0), j.baselineP50Ms.toFixed(0)],
        ['p99 ms', j.p99Ms.toFixed(0), j.baselineP99Ms.toFixed(0)],
        ['all devices in, ms', j.allMs.toFixed(0), ''],
        ['connection attempts per device (median)', j.attemptsMedian, 1],
        ['ratio p50 JITR / provisioned', j.ratioP50.toFixed(1), ''],
      ],
    );
    results.jitr = j;
  }
  if (only === undefined || only === 'firmware') {
    log(`firmware rollout benchmark: ${rounds} rounds x ${firmwareGateways} simulated gateways at once`);
    const fw = await benchFirmware(
      { dataDir: join(dataDir, 'firmware'), gateways: firmwareGateways, rounds },
      log,
    );
    printTable(
      'Firmware rollout through the firmware named shadow (median of rounds; real agents: verify, download, stage, switch, report)',
      ['measure', 'value'],
      [
        ['simulated gateways (one wave)', fw.gateways],
        ['firmware size, KiB', fw.firmwareBytes / 1024],
        ['time until all report succeeded, ms', fw.allSucceededMs.toFixed(0)],
        ['firmware shadow updates handled per second', fw.shadowUpdatesPerSec.toFixed(0)],
        [
          'local cloud RSS before -> peak during the rollout, MB',
          `${fw.cloudRssBeforeMB.toFixed(0)} -> ${fw.cloudPeakRssMB.toFixed(0)}`,
        ],
        ['peak RSS of the process running the agents, MB', fw.gatewaysProcessRssMB.toFixed(0)],
      ],
    );
    results.firmware = fw;
  }
  if (only === undefined || only === 'anomaly') {
    log(`anomaly detector benchmark: ${rounds} rounds x ${anomalyReadings} readings`);
    results.anomaly = await benchAnomaly({ readings: anomalyReadings, rounds }, log);
  }
  if (only === undefined || only === 'kinesis') {
    log(`Kinesis benchmark: ${rounds} rounds x ${kinesisRecords} records of 500 B through PutRecords`);
    const k = await benchKinesis({ dataDir: join(dataDir, 'kinesis'), records: kinesisRecords, rounds }, log);
    printTable(
      'Kinesis PutRecords (records/s, median of rounds; baseline = the same records appended to a file, fsync per batch of 500)',
      ['measure', 'value'],
      [
        ['records per round (500 B, batches of 500, 8 in flight)', k.records],
        [`PutRecords into the local Kinesis (${k.shards} shards), rec/s`, k.recordsPerSec.toFixed(0)],
        ['baseline: file append + fsync per batch, rec/s', k.baselineRecordsPerSec.toFixed(0)],
        ['ratio', pct(k.ratio)],
      ],
    );
    const c = k.consumer;
    const l = k.lightConsumer;
    printTable(
      'Kinesis consumer lag (event source mapping, batches of 100, into the anomaly detection function; median of rounds; baseline = the same consumer at 1,000 rec/s)',
      ['measure', 'under load', 'baseline (1,000 rec/s)', 'ratio'],
      [
        ['records put, rec/s', c.putRecordsPerSec.toFixed(0), l.putRecordsPerSec.toFixed(0), ''],
        ['records processed, rec/s', c.processedPerSec.toFixed(0), l.processedPerSec.toFixed(0), ''],
        [
          'lag p50, arrival to invocation (ms)',
          c.lagP50Ms,
          l.lagP50Ms,
          (c.lagP50Ms / Math.max(1, l.lagP50Ms)).toFixed(1),
        ],
        ['lag p99 (ms)', c.lagP99Ms, l.lagP99Ms, (c.lagP99Ms / Math.max(1, l.lagP99Ms)).toFixed(1)],
        ['max MillisBehindLatest (ms)', c.maxMillisBehind, l.maxMillisBehind, ''],
        ['caught up after the last put (ms)', c.catchUpMs, l.catchUpMs, ''],
      ],
    );
    results.kinesis = k;
  }
  mkdirSync(join(process.cwd(), 'bench', 'results'), { recursive: true });
  const file = join(process.cwd(), 'bench', 'results', 'bench.json');
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  log(`results written to ${file}`);
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
