/**
 * The `kinesis` rule action against the local Kinesis: "Kinesis Data Streams" puts each message with
 * the partition key rendered from its template (`${topic(2)}`: one thing's messages share a shard and
 * keep their order), and an action that fails goes to the error action.
 */
import {
  CreateStreamCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
} from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import pino from 'pino';
import { HandlerRegistry } from '../../cloud/functions/index.js';
import { RulesEngine } from '../../cloud/local/rules-engine.js';
import { parseRuleDefinitions } from '../../cloud/rules/definitions.js';
import { eventually, removeDir, startTestCloud, type TestCloud } from '../helpers/cloud.js';

let tc: TestCloud;
let kinesis: KinesisClient;
let rules: RulesEngine;
const errors: string[] = [];

beforeAll(async () => {
  tc = await startTestCloud();
  kinesis = new KinesisClient(tc.cloud.sdkConfig());
  await kinesis.send(new CreateStreamCommand({ StreamName: 'hr-telemetry', ShardCount: 4 }));
  tc.cloud.broker.subscribe('test/errors', (_t, payload) => errors.push(payload.toString()));
  rules = RulesEngine.start({
    broker: tc.cloud.broker,
    rules: parseRuleDefinitions([
      {
        name: 'test_kinesis',
        sql: "SELECT *, topic(2) AS thing FROM 'hr/+/telemetry'",
        actions: [{ type: 'kinesis', streamName: 'hr-telemetry', partitionKey: '${topic(2)}' }],
        errorAction: { type: 'republish', topic: 'test/errors' },
      },
      {
        name: 'test_kinesis_missing',
        sql: "SELECT * FROM 'hr/missing'",
        actions: [{ type: 'kinesis', streamName: 'no-such-stream', partitionKey: 'k' }],
        errorAction: { type: 'republish', topic: 'test/errors' },
      },
    ]),
    handlers: new HandlerRegistry(),
    aws: tc.cloud.sdkConfig(),
    region: tc.cloud.options.region,
    accountId: tc.cloud.options.accountId,
    logger: pino({ level: 'silent' }),
  });
});

afterAll(async () => {
  await rules?.stop();
  kinesis?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
});

async function readAll(): Promise<{ shard: string; key: string; data: Record<string, unknown> }[]> {
  const out: { shard: string; key: string; data: Record<string, unknown> }[] = [];
  const shards = await kinesis.send(new ListShardsCommand({ StreamName: 'hr-telemetry' }));
  for (const s of shards.Shards ?? []) {
    const it = await kinesis.send(
      new GetShardIteratorCommand({
        StreamName: 'hr-telemetry',
        ShardId: s.ShardId!,
        ShardIteratorType: 'TRIM_HORIZON',
      }),
    );
    const r = await kinesis.send(new GetRecordsCommand({ ShardIterator: it.ShardIterator! }));
    for (const rec of r.Records ?? []) {
      out.push({
        shard: s.ShardId!,
        key: rec.PartitionKey!,
        data: JSON.parse(Buffer.from(rec.Data!).toString()) as Record<string, unknown>,
      });
    }
  }
  return out;
}

it('puts each message with its thing as the partition key, in order per thing', async () => {
  for (let i = 0; i < 20; i++) {
    for (const thing of ['gw-a', 'gw-b', 'gw-c']) {
      await tc.cloud.broker.publish(`hr/${thing}/telemetry`, JSON.stringify({ seq: i, value: i * 2 }), 1);
    }
  }
  await rules.idle();
  const records = await eventually(async () => {
    const r = await readAll();
    return r.length === 60 ? r : undefined;
  }, 'all 60 records in the stream');
  for (const thing of ['gw-a', 'gw-b', 'gw-c']) {
    const mine = records.filter((r) => r.key === thing);
    expect(mine.map((r) => r.data.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(new Set(mine.map((r) => r.shard)).size).toBe(1);
    expect(mine.every((r) => r.data.thing === thing)).toBe(true);
  }
  expect(errors).toHaveLength(0);
});

it('sends a failed put (no such stream) to the error action', async () => {
  await tc.cloud.broker.publish('hr/missing', JSON.stringify({ x: 1 }), 1);
  await rules.idle();
  const err = await eventually(
    () => errors.find((e) => e.includes('test_kinesis_missing')),
    'the error message',
  );
  const body = JSON.parse(err) as { failures: { failedAction: string; errorMessage: string }[] };
  expect(body.failures[0]).toMatchObject({ failedAction: 'KinesisAction' });
  expect(body.failures[0]!.errorMessage).toMatch(/ResourceNotFoundException/);
});
