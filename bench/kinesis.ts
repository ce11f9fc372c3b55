/**
 * Kinesis benchmark: 500-byte records through PutRecords (batches of 500, 8 calls in flight, records
 * that fail are put again, as producers must) into the local Kinesis, through the unchanged
 * `@aws-sdk/client-kinesis` over HTTP/2. The stream has enough shards that AWS's per-shard write quota
 * (1,000 records/s) is not what is measured. Baseline, in the same run: the same records appended to a
 * file with one fsync per batch of 500.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateStreamCommand, KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { LocalCloud } from '../cloud/local/index.js';
import { median } from './stats.js';
import { telemetryRecord } from './telemetry-record.mjs';

export interface KinesisBenchOptions {
  dataDir: string;
  records: number;
  rounds: number;
}

export interface KinesisBenchResult {
  records: number;
  shards: number;
  rounds: { recordsPerSec: number; baselineRecordsPerSec: number; retried: number }[];
  recordsPerSec: number;
  baselineRecordsPerSec: number;
  ratio: number;
}

const SHARDS = 32;
const BATCH = 500;
const IN_FLIGHT = 8;

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
        PartitionKey: `sensor-${(start + i) % 256}`,
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

export async function benchKinesis(
  opts: KinesisBenchOptions,
  log: (s: string) => void,
): Promise<KinesisBenchResult> {
  const records = Array.from({ length: opts.records }, (_, i) => Buffer.from(telemetryRecord(i, 500)));
  const rounds: KinesisBenchResult['rounds'] = [];
  for (let r = 0; r < opts.rounds; r++) {
    const baselineRecordsPerSec = await baseline(join(opts.dataDir, `baseline-${r}`), records);
    const cloud = await LocalCloud.start({
      dataDir: join(opts.dataDir, `round-${r}`),
      mqttPort: 0,
      httpPort: 0,
    });
    const kinesis = new KinesisClient(cloud.sdkConfig());
    try {
      const stream = `bench-${randomUUID().slice(0, 8)}`;
      await kinesis.send(new CreateStreamCommand({ StreamName: stream, ShardCount: SHARDS }));
      const started = performance.now();
      const retried = await putAll(kinesis, stream, records);
      const recordsPerSec = records.length / ((performance.now() - started) / 1000);
      rounds.push({ recordsPerSec, baselineRecordsPerSec, retried });
      log(
        `  round ${r + 1}: PutRecords ${recordsPerSec.toFixed(0)} rec/s (${retried} records put again), file + fsync per batch ${baselineRecordsPerSec.toFixed(0)} rec/s`,
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
  };
}
