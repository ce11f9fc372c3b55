/**
 * The local Kinesis event source mapping (cloud/local/kinesis/consumer.ts), as "Using AWS Lambda with
 * Amazon Kinesis" describes Lambda's: ordered batches per shard, checkpoints, bisection of a failed
 * batch down to the poison record, the on-failure destination, and ReportBatchItemFailures.
 */
import { join } from 'node:path';
import { CreateStreamCommand, KinesisClient, PutRecordsCommand } from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Handler } from '../../cloud/functions/index.js';
import {
  EventSourceMapping,
  type EventSourceMappingOptions,
  type KinesisEvent,
  type KinesisFailureRecord,
} from '../../cloud/local/kinesis/consumer.js';
import { brokerTap, connectDevice, removeDir, startTestCloud, type TestCloud } from '../helpers/cloud.js';

let tc: TestCloud;
let kinesis: KinesisClient;
const mappings: EventSourceMapping[] = [];

beforeAll(async () => {
  tc = await startTestCloud();
  kinesis = new KinesisClient(tc.cloud.sdkConfig());
});

afterAll(async () => {
  for (const m of mappings) await m.stop();
  kinesis?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
});

interface Item {
  key: string;
  i: number;
  poison?: boolean;
}

async function createStream(name: string, shards: number): Promise<void> {
  await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
}

async function put(stream: string, items: Item[]): Promise<void> {
  const r = await kinesis.send(
    new PutRecordsCommand({
      StreamName: stream,
      Records: items.map((it) => ({ PartitionKey: it.key, Data: Buffer.from(JSON.stringify(it)) })),
    }),
  );
  expect(r.FailedRecordCount ?? 0).toBe(0);
}

function itemsOf(event: unknown): { item: Item; seq: string; shard: string }[] {
  return (event as KinesisEvent).Records.map((r) => ({
    item: JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString('utf8')) as Item,
    seq: r.kinesis.sequenceNumber,
    shard: r.eventID.split(':')[0]!,
  }));
}

/** A promise resolved by `check` the first time it returns true; rejected after `ms`. */
function until(what: string, ms = 10_000) {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  return {
    promise,
    check(ok: boolean) {
      if (!ok) return;
      clearTimeout(timer);
      resolve();
    },
  };
}

async function start(
  stream: string,
  handler: Handler,
  extra: Partial<EventSourceMappingOptions> = {},
): Promise<EventSourceMapping> {
  const m = await EventSourceMapping.start({
    kinesis,
    notifier: tc.cloud.kinesis,
    streamName: stream,
    functionName: 'test-consumer',
    handler,
    startingPosition: 'TRIM_HORIZON',
    checkpointDir: join(tc.dataDir, 'kinesis-consumers'),
    region: tc.cloud.options.region,
    accountId: tc.cloud.options.accountId,
    retryDelayMs: 0,
    ...extra,
  });
  mappings.push(m);
  return m;
}

describe('EventSourceMapping', () => {
  it('delivers each shard in order, in batches of at most BatchSize, with the documented event shape', async () => {
    await createStream('c-order', 2);
    const batches: { item: Item; seq: string; shard: string }[][] = [];
    let first: KinesisEvent | undefined;
    const all = until('60 records');
    await start(
      'c-order',
      async (event) => {
        first ??= event as KinesisEvent;
        batches.push(itemsOf(event));
        all.check(batches.flat().length >= 60);
        return {};
      },
      { batchSize: 7 },
    );
    for (let i = 0; i < 20; i++) {
      await put(
        'c-order',
        ['a', 'b', 'c'].map((key) => ({ key, i })),
      );
    }
    await all.promise;
    expect(batches.every((b) => b.length >= 1 && b.length <= 7)).toBe(true);
    expect(new Set(batches.flatMap((b) => b.map((r) => r.shard))).size).toBeGreaterThan(0);
    for (const batch of batches) expect(new Set(batch.map((r) => r.shard)).size).toBe(1);
    const flat = batches.flat();
    for (const key of ['a', 'b', 'c']) {
      expect(flat.filter((r) => r.item.key === key).map((r) => r.item.i)).toEqual(
        Array.from({ length: 20 }, (_, i) => i),
      );
    }
    for (const shard of new Set(flat.map((r) => r.shard))) {
      const seqs = flat.filter((r) => r.shard === shard).map((r) => BigInt(r.seq));
      for (let k = 1; k < seqs.length; k++) expect(seqs[k]! > seqs[k - 1]!).toBe(true);
    }
    const rec = first!.Records[0]!;
    expect(rec).toMatchObject({
      eventSource: 'aws:kinesis',
      eventVersion: '1.0',
      eventName: 'aws:kinesis:record',
      awsRegion: tc.cloud.options.region,
      eventSourceARN: `arn:aws:kinesis:${tc.cloud.options.region}:${tc.cloud.options.accountId}:stream/c-order`,
      kinesis: { kinesisSchemaVersion: '1.0', partitionKey: expect.any(String) },
    });
    expect(rec.eventID).toBe(`${rec.eventID.split(':')[0]}:${rec.kinesis.sequenceNumber}`);
    expect(typeof rec.kinesis.approximateArrivalTimestamp).toBe('number');
  });

  it('fills a batch within the batching window', async () => {
    await createStream('c-window', 1);
    const sizes: number[] = [];
    const all = until('12 records');
    await start(
      'c-window',
      async (event) => {
        sizes.push((event as KinesisEvent).Records.length);
        all.check(sizes.reduce((a, b) => a + b, 0) >= 12);
        return {};
      },
      { batchSize: 5, windowMs: 300 },
    );
    await put(
      'c-window',
      Array.from({ length: 12 }, (_, i) => ({ key: 'k', i })),
    );
    await all.promise;
    expect(sizes.slice(0, 2)).toEqual([5, 5]);
  });

  it('resumes after its checkpoint across a restart', async () => {
    await createStream('c-resume', 1);
    const seen: number[] = [];
    const firstFive = until('first 5 records');
    const m1 = await start('c-resume', async (event) => {
      for (const r of itemsOf(event)) seen.push(r.item.i);
      firstFive.check(seen.length >= 5);
      return {};
    });
    await put(
      'c-resume',
      Array.from({ length: 5 }, (_, i) => ({ key: 'k', i })),
    );
    await firstFive.promise;
    await m1.stop();
    await put(
      'c-resume',
      Array.from({ length: 5 }, (_, i) => ({ key: 'k', i: i + 5 })),
    );
    const after: number[] = [];
    const rest = until('the next 5 records');
    await start('c-resume', async (event) => {
      for (const r of itemsOf(event)) after.push(r.item.i);
      rest.check(after.length >= 5);
      return {};
    });
    await rest.promise;
    expect(seen).toEqual([0, 1, 2, 3, 4]);
    expect(after).toEqual([5, 6, 7, 8, 9]);
  });

  it('isolates a poison record by bisection, sends it to the on-failure destination and moves on', async () => {
    await createStream('c-poison', 1);
    const processed: number[] = [];
    const failures: KinesisFailureRecord[] = [];
    let poisonSeq: string | undefined;
    const done = until('the records after the poison one');
    const m = await start(
      'c-poison',
      async (event) => {
        const items = itemsOf(event);
        const bad = items.find((r) => r.item.poison);
        if (bad) {
          poisonSeq = bad.seq;
          throw new Error(`cannot process record ${bad.item.i}`);
        }
        for (const r of items) processed.push(r.item.i);
        done.check(processed.includes(9) && failures.length === 1);
        return {};
      },
      {
        batchSize: 10,
        retries: 1,
        bisect: true,
        onFailure: (record) => {
          failures.push(record);
          done.check(processed.includes(9));
        },
      },
    );
    await put(
      'c-poison',
      Array.from({ length: 10 }, (_, i) => ({ key: 'k', i, ...(i === 4 ? { poison: true } : {}) })),
    );
    await done.promise;
    expect(processed).toEqual([0, 1, 2, 3, 5, 6, 7, 8, 9]);
    expect(failures).toHaveLength(1);
    const f = failures[0]!;
    expect(f).toMatchObject({
      requestContext: { condition: 'RetryAttemptsExhausted', approximateInvokeCount: 2 },
      responseContext: { functionError: 'Unhandled' },
      version: '1.0',
      KinesisBatchInfo: {
        shardId: 'shardId-000000000000',
        startSequenceNumber: poisonSeq,
        endSequenceNumber: poisonSeq,
        batchSize: 1,
        streamArn: expect.stringMatching(/:stream\/c-poison$/),
      },
      errorInfo: { errorType: 'Error', errorMessage: 'cannot process record 4' },
    });
    await m.idle();
    expect(Object.values(m.checkpoint())).toHaveLength(1);
    expect(m.lag()).toEqual({ 'shardId-000000000000': expect.any(Number) });
  });

  it('honours ReportBatchItemFailures: retries from the lowest failed record', async () => {
    await createStream('c-partial', 1);
    const deliveries: number[][] = [];
    let failedOnce = false;
    const done = until('all records');
    await start(
      'c-partial',
      async (event) => {
        const items = itemsOf(event);
        deliveries.push(items.map((r) => r.item.i));
        const three = items.find((r) => r.item.i === 3);
        done.check(items.some((r) => r.item.i === 5) && failedOnce);
        if (three && !failedOnce) {
          failedOnce = true;
          return { batchItemFailures: [{ itemIdentifier: three.seq }] };
        }
        done.check(items.some((r) => r.item.i === 5));
        return { batchItemFailures: [] };
      },
      { batchSize: 10, retries: 2, reportBatchItemFailures: true },
    );
    await put(
      'c-partial',
      Array.from({ length: 6 }, (_, i) => ({ key: 'k', i })),
    );
    await done.promise;
    expect(deliveries).toEqual([
      [0, 1, 2, 3, 4, 5],
      [3, 4, 5],
    ]);
  });
});

describe('high-rate telemetry end to end', () => {
  it('streams the readings of a device through the rule and the mapping, and publishes the anomaly on alerts/{site}', async () => {
    const alerts = brokerTap(tc.cloud, 'alerts/plant-7');
    const base = Date.UTC(2026, 0, 1);
    const spikeAt = 120;
    // A provisioned device with the default device policy, over mutual TLS.
    const device = await connectDevice(tc.cloud, await tc.provision('gw-hr-1'), 'gw-hr-1');
    try {
      for (let i = 0; i <= spikeAt; i++) {
        const temperature = i === spikeAt ? 45 : 20 + 0.3 * Math.sin(i * 1.7) + 0.2 * Math.cos(i * 0.9);
        await device.publishAsync(
          'dt/gw-hr-1/telemetry-hr',
          JSON.stringify({
            sensorId: 's1',
            ts: base + i * 1000,
            temperature,
            vibration: 1 + 0.05 * Math.sin(i * 2.3),
            site: 'plant-7',
          }),
          { qos: 1 },
        );
      }
      // A malformed reading is skipped without holding up the shard.
      await device.publishAsync('dt/gw-hr-1/telemetry-hr', '{"sensorId": 5}', { qos: 1 });
      const alert = await alerts.next(
        (m) => m.body.metric === 'temperature' && m.body.ts === base + spikeAt * 1000,
        20_000,
      );
      expect(alert.body).toMatchObject({
        thing: 'gw-hr-1',
        deviceId: 'gw-hr-1/s1',
        metric: 'temperature',
        value: 45,
        kind: expect.any(String),
        expected: expect.any(Number),
      });
      expect(alert.body.score as number).toBeGreaterThanOrEqual(1);
    } finally {
      alerts.off();
      await device.endAsync();
    }
  });
});
