/**
 * Kinesis benchmark: 500-byte readings through PutRecords (batches of 500, 8 calls in flight, records
 * that fail are put again, as producers must) into the local Kinesis, through the unchanged
 * `@aws-sdk/client-kinesis` over HTTP/2. The stream has enough shards that AWS's per-shard write quota
 * (1,000 records/s) is not what is measured. Baseline, in the same run: the same records appended to a
 * file with one fsync per batch of 500.
 *
 * Consumer lag: the same load again into a second stream that an event source mapping (one worker per
 * shard, batches of 100, as the high-rate telemetry mapping) feeds to the anomaly detection function.
 * Each record's lag is the time from its arrival in the stream to the start of the invocation that
 * receives it; the mapping's MillisBehindLatest is sampled every 100 ms; catch-up is the time from the
 * last put to the last record processed. Baseline for the lag, in the same run: the same consumer under
 * a light load (1,000 records/s, paced).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateStreamCommand, KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import type { Handler } from '../cloud/functions/index.js';
import { LocalCloud } from '../cloud/local/index.js';
import { EventSourceMapping, type KinesisEvent } from '../cloud/local/kinesis/consumer.js';
import { ANOMALY_DETECTION_FUNCTION_NAME } from '../cloud/rules/resources.js';
import { median, percentile } from './stats.js';
import { telemetryRecord } from './telemetry-record.mjs';

export interface KinesisBenchOptions {
  dataDir: string;
  records: number;
  rounds: number;
}

export interface KinesisBenchResult {
  records: number;
  shards: number;
  rounds: {
    recordsPerSec: number;
    baselineRecordsPerSec: number;
    retried: number;
    consumer: ConsumerLag;
    lightConsumer: ConsumerLag;
  }[];
  recordsPerSec: number;
  baselineRecordsPerSec: number;
  ratio: number;
  /** Medians over the rounds. */
  consumer: ConsumerLag;
  lightConsumer: ConsumerLag;
}

export interface ConsumerLag {
  /** PutRecords rate while the consumer runs. */
  putRecordsPerSec: number;
  /** Arrival in the stream to the start of the invocation, per record. */
  lagP50Ms: number;
  lagP99Ms: number;
  /** Largest MillisBehindLatest of any shard, sampled every 100 ms. */
  maxMillisBehind: number;
  /** From the last put to the last record processed. */
  catchUpMs: number;
  /** Records processed per second, first put to last record processed. */
  processedPerSec: number;
}

const SHARDS = 32;
const BATCH = 500;
const IN_FLIGHT = 8;
const THINGS = 256;
/** The light load of the lag baseline: records per second, put in batches of 100 every 100 ms. */
const LIGHT_RATE = 1000;
const LIGHT_RECORDS = 5000;

/** A reading as the high-rate telemetry rule puts it (`thing` added), padded to 500 bytes. */
function reading(i: number): Buffer {
  const r = JSON.parse(telemetryRecord(Math.floor(i / THINGS), 480)) as Record<string, unknown>;
  return Buffer.from(JSON.stringify({ thing: `gw-${i % THINGS}`, ...r }));
}

async function putAll(kinesis: KinesisClient, stream: string, records: Buffer[]): Promise<number> {
  let retried = 0;
  let next = 0;
  const worker = async () => {
    for (;;) {
      const start = next;
      next += BATCH;
      if (start >= records.length) return;
      let batch = records.slice(start, start + BATCH).map((data, i) => ({
        Data: data,
        PartitionKey: `gw-${(start + i) % THINGS}`,
      }));
      while (batch.length > 0) {
        const out = await kinesis.send(new PutRecordsCommand({ StreamName: stream, Records: batch }));
        if (!out.FailedRecordCount) break;
        batch = batch.filter((_, i) => out.Records?.[i]?.ErrorCode !== undefined);
        retried += batch.length;
      }
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return retried;
}

async function baseline(dir: string, records: Buffer[]): Promise<number> {
  mkdirSync(dir, { recursive: true });
  const fh = await open(join(dir, 'records.ndjson'), 'a');
  const started = performance.now();
  try {
    for (let i = 0; i < records.length; i += BATCH) {
      await fh.write(Buffer.concat(records.slice(i, i + BATCH).flatMap((r) => [r, Buffer.from('\n')])));
      await fh.datasync();
    }
  } finally {
    await fh.close();
  }
  return records.length / ((performance.now() - started) / 1000);
}

/** Puts `records` into a new stream that an event source mapping feeds to the anomaly detection function. */
async function consumerLag(
  cloud: LocalCloud,
  kinesis: KinesisClient,
  records: Buffer[],
  put: (stream: string) => Promise<unknown>,
  checkpointDir: string,
): Promise<ConsumerLag> {
  const stream = `bench-consumer-${randomUUID().slice(0, 8)}`;
  await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: SHARDS }));
  const fn = cloud.functions.get(ANOMALY_DETECTION_FUNCTION_NAME);
  if (!fn) throw new Error(`no function ${ANOMALY_DETECTION_FUNCTION_NAME}`);
  const lags: number[] = [];
  let done!: () => void;
  const allProcessed = new Promise<void>((resolve) => {
    done = resolve;
  });
  let lastProcessed = 0;
  const handler: Handler = async (event, context) => {
    const now = Date.now();
    const batch = (event as KinesisEvent).Records;
    for (const r of batch) lags.push(now - r.kinesis.approximateArrivalTimestamp * 1000);
    const result = await fn(event, context);
    if (lags.length >= records.length) {
      lastProcessed = Date.now();
      done();
    }
    return result;
  };
  const mapping = await EventSourceMapping.start({
    kinesis,
    notifier: cloud.kinesis,
    streamName: stream,
    functionName: ANOMALY_DETECTION_FUNCTION_NAME,
    handler,
    batchSize: 100,
    startingPosition: 'TRIM_HORIZON',
    retries: 2,
    bisect: true,
    reportBatchItemFailures: true,
    checkpointDir,
  });
  let maxMillisBehind = 0;
  const sampler = setInterval(() => {
    for (const v of Object.values(mapping.lag())) maxMillisBehind = Math.max(maxMillisBehind, v);
  }, 100);
  try {
    const started = performance.now();
    const startedAt = Date.now();
    await put(stream);
    const putEnded = Date.now();
    const putRecordsPerSec = records.length / ((performance.now() - started) / 1000);
    await allProcessed;
    return {
      putRecordsPerSec,
      lagP50Ms: percentile(lags, 50),
      lagP99Ms: percentile(lags, 99),
      maxMillisBehind,
      catchUpMs: Math.max(0, lastProcessed - putEnded),
      processedPerSec: records.length / ((lastProcessed - startedAt) / 1000),
    };
  } finally {
    clearInterval(sampler);
    await mapping.stop();
  }
}

/** Puts records at LIGHT_RATE: a batch of LIGHT_RATE / 10 every 100 ms. */
async function putPaced(kinesis: KinesisClient, stream: string, records: Buffer[]): Promise<void> {
  const per = LIGHT_RATE / 10;
  const started = performance.now();
  for (let i = 0; i < records.length; i += per) {
    const due = started + (i / per) * 100;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    await putAll(kinesis, stream, records.slice(i, i + per));
  }
}

function medianLag(xs: ConsumerLag[]): ConsumerLag {
  const m = (f: (x: ConsumerLag) => number) => median(xs.map(f));
  return {
    putRecordsPerSec: m((x) => x.putRecordsPerSec),
    lagP50Ms: m((x) => x.lagP50Ms),
    lagP99Ms: m((x) => x.lagP99Ms),
    maxMillisBehind: m((x) => x.maxMillisBehind),
    catchUpMs: m((x) => x.catchUpMs),
    processedPerSec: m((x) => x.processedPerSec),
  };
}

export async function benchKinesis(
  opts: KinesisBenchOptions,
  log: (s: string) => void,
): Promise<KinesisBenchResult> {
  const records = Array.from({ length: opts.records }, (_, i) => reading(i));
  const light = records.slice(0, LIGHT_RECORDS);
  const rounds: KinesisBenchResult['rounds'] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const baselineRecordsPerSec = await baseline(join(opts.dataDir, `baseline-${r}`), records);
    const cloud = await LocalCloud.start({
      dataDir: join(opts.dataDir, `round-${r}`),
      mqttPort: 0,
      httpPort: 0,
    });
    // One HTTP/2 session for all calls: the client's default opens a connection per request.
    const kinesis = new KinesisClient({
      ...cloud.sdkConfig(),
      requestHandler: { disableConcurrentStreams: false },
    });
    try {
      const stream = `bench-${randomUUID().slice(0, 8)}`;
      await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: SHARDS }));
      const started = performance.now();
      const retried = await putAll(kinesis, stream, records);
      const recordsPerSec = records.length / ((performance.now() - started) / 1000);
      const checkpoints = join(opts.dataDir, `round-${r}`, 'bench-consumers');
      const lightConsumer = await consumerLag(
        cloud,
        kinesis,
        light,
        (s) => putPaced(kinesis, s, light),
        checkpoints,
      );
      const consumer = await consumerLag(
        cloud,
        kinesis,
        records,
        (s) => putAll(kinesis, s, records),
        checkpoints,
      );
      rounds.push({ recordsPerSec, baselineRecordsPerSec, retried, consumer, lightConsumer });
      log(
        `  round ${r + 1}: PutRecords ${recordsPerSec.toFixed(0)} rec/s (${retried} records put again), file + fsync per batch ${baselineRecordsPerSec.toFixed(0)} rec/s`,
      );
      log(
        `    consumer under load: puts ${consumer.putRecordsPerSec.toFixed(0)} rec/s, lag p50 ${consumer.lagP50Ms} ms p99 ${consumer.lagP99Ms} ms, max MillisBehindLatest ${consumer.maxMillisBehind} ms, caught up ${consumer.catchUpMs} ms after the last put; at ${LIGHT_RATE} rec/s: lag p50 ${lightConsumer.lagP50Ms} ms p99 ${lightConsumer.lagP99Ms} ms`,
      );
    } finally {
      kinesis.destroy();
      await cloud.stop();
    }
  }
  const recordsPerSec = median(rounds.map((x) => x.recordsPerSec));
  const baselineRecordsPerSec = median(rounds.map((x) => x.baselineRecordsPerSec));
  return {
    records: opts.records,
    shards: SHARDS,
    rounds,
    recordsPerSec,
    baselineRecordsPerSec,
    ratio: recordsPerSec / baselineRecordsPerSec,
    consumer: medianLag(rounds.map((x) => x.consumer)),
    lightConsumer: medianLag(rounds.map((x) => x.lightConsumer)),
  };
}
