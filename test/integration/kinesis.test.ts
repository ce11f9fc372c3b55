/**
 * The local Kinesis Data Streams through the unchanged `@aws-sdk/client-kinesis` on a real HTTP endpoint:
 * stream management, per-partition-key ordering, the MD5 shard mapping, every shard iterator type, the
 * PutRecords limits, throttling with partial failures, MillisBehindLatest, iterator expiry, retention,
 * and records surviving a restart of the local cloud. Tests that need a clock or low quotas run a
 * LocalKinesis with an injected clock and limits on its own HTTP endpoint.
 *
 * The SDK's Kinesis client speaks HTTP/2 (without TLS to an `http://` endpoint); the local endpoint
 * takes it on the same port as HTTP/1.1.
 */
import { createHash } from 'node:crypto';
import {
  type _Record,
  CreateStreamCommand,
  DeleteStreamCommand,
  DescribeStreamSummaryCommand,
  ExpiredIteratorException,
  GetRecordsCommand,
  type GetRecordsCommandOutput,
  GetShardIteratorCommand,
  type GetShardIteratorCommandInput,
  IncreaseStreamRetentionPeriodCommand,
  InvalidArgumentException,
  KinesisClient,
  ListShardsCommand,
  ListStreamsCommand,
  ProvisionedThroughputExceededException,
  PutRecordCommand,
  PutRecordsCommand,
  ResourceInUseException,
  ResourceNotFoundException,
  ValidationException,
} from '@aws-sdk/client-kinesis';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { rootOnlyAuthorizer } from '../../cloud/local/authz.js';
import { CredentialStore } from '../../cloud/local/credentials.js';
import { HttpEndpoint } from '../../cloud/local/http/server.js';
import { LocalKinesis, type LocalKinesisDeps } from '../../cloud/local/kinesis/index.js';
import { removeDir, startTestCloud, type TestCloud, tempDir } from '../helpers/cloud.js';

const REGION = 'us-east-1';
const ACCOUNT = '123456789012';
const text = (s: string) => new TextEncoder().encode(s);
const str = (b: Uint8Array | undefined) => new TextDecoder().decode(b);

async function iterator(kc: KinesisClient, input: GetShardIteratorCommandInput): Promise<string> {
  const out = await kc.send(new GetShardIteratorCommand(input));
  if (!out.ShardIterator) throw new Error('no iterator');
  return out.ShardIterator;
}

/** Reads a shard from an iterator until it is caught up. */
async function readAll(kc: KinesisClient, start: string, limit = 100): Promise<_Record[]> {
  const out: _Record[] = [];
  let it: string | undefined = start;
  while (it) {
    const r: GetRecordsCommandOutput = await kc.send(
      new GetRecordsCommand({ ShardIterator: it, Limit: limit }),
    );
    out.push(...(r.Records ?? []));
    it = r.NextShardIterator;
    if ((r.Records ?? []).length === 0 || r.MillisBehindLatest === 0) break;
  }
  return out;
}

describe('local Kinesis through the local cloud', () => {
  let dataDir: string;
  let tc: TestCloud;
  let kc: KinesisClient;

  beforeAll(async () => {
    dataDir = tempDir('edgefleet-kinesis-');
    tc = await startTestCloud(dataDir);
    kc = new KinesisClient(tc.cloud.sdkConfig());
  });

  afterAll(async () => {
    kc.destroy();
    await tc.stop();
    removeDir(dataDir);
  });

  it('creates, describes, lists and deletes streams', async () => {
    await kc.send(new CreateStreamCommand({ StreamName: 'mgmt', ShardCount: 3 }));
    await expect(kc.send(new CreateStreamCommand({ StreamName: 'mgmt', ShardCount: 1 }))).rejects.toThrow(
      ResourceInUseException,
    );
    const { StreamDescriptionSummary: d } = await kc.send(
      new DescribeStreamSummaryCommand({ StreamName: 'mgmt' }),
    );
    expect(d).toMatchObject({
      StreamName: 'mgmt',
      StreamARN: `arn:aws:kinesis:${tc.cloud.options.region}:${tc.cloud.options.accountId}:stream/mgmt`,
      StreamStatus: 'ACTIVE',
      StreamModeDetails: { StreamMode: 'PROVISIONED' },
      RetentionPeriodHours: 24,
      OpenShardCount: 3,
    });
    expect(d?.StreamCreationTimestamp).toBeInstanceOf(Date);
    // The ARN names the stream as well as its name does.
    const byArn = await kc.send(new DescribeStreamSummaryCommand({ StreamARN: d?.StreamARN }));
    expect(byArn.StreamDescriptionSummary?.StreamName).toBe('mgmt');
    const listed = await kc.send(new ListStreamsCommand({}));
    expect(listed.StreamNames).toContain('mgmt');
    expect(listed.StreamSummaries?.find((s) => s.StreamName === 'mgmt')?.StreamARN).toBe(d?.StreamARN);
    const shards = await kc.send(new ListShardsCommand({ StreamName: 'mgmt', MaxResults: 2 }));
    expect(shards.Shards?.map((s) => s.ShardId)).toEqual(['shardId-000000000000', 'shardId-000000000001']);
    const rest = await kc.send(new ListShardsCommand({ NextToken: shards.NextToken }));
    expect(rest.Shards?.map((s) => s.ShardId)).toEqual(['shardId-000000000002']);
    expect(rest.NextToken).toBeUndefined();
    await expect(kc.send(new CreateStreamCommand({ StreamName: 'bad name', ShardCount: 1 }))).rejects.toThrow(
      /StreamName/,
    );
    await expect(
      kc.send(new CreateStreamCommand({ StreamName: 'od', StreamModeDetails: { StreamMode: 'ON_DEMAND' } })),
    ).resolves.toBeDefined();
    const od = await kc.send(new ListShardsCommand({ StreamName: 'od' }));
    expect(od.Shards).toHaveLength(4);
    await kc.send(new DeleteStreamCommand({ StreamName: 'mgmt' }));
    await kc.send(new DeleteStreamCommand({ StreamName: 'od' }));
    await expect(kc.send(new DescribeStreamSummaryCommand({ StreamName: 'mgmt' }))).rejects.toThrow(
      ResourceNotFoundException,
    );
  });

  it('keeps the records of a partition key in order on its shard', async () => {
    await tc.cloud.kinesis.ensureStream('ordered', 2);
    const sent: string[] = [];
    for (let batch = 0; batch < 3; batch++) {
      const records = Array.from({ length: 100 }, (_, i) => {
        const v = `rec-${batch * 100 + i}`;
        sent.push(v);
        return { Data: text(v), PartitionKey: 'device-42' };
      });
      const out = await kc.send(new PutRecordsCommand({ StreamName: 'ordered', Records: records }));
      expect(out.FailedRecordCount).toBe(0);
    }
    const single = await kc.send(
      new PutRecordCommand({ StreamName: 'ordered', Data: text('rec-300'), PartitionKey: 'device-42' }),
    );
    sent.push('rec-300');
    const shardId = single.ShardId ?? '';
    const got = await readAll(
      kc,
      await iterator(kc, { StreamName: 'ordered', ShardId: shardId, ShardIteratorType: 'TRIM_HORIZON' }),
      64,
    );
    expect(got.map((r) => str(r.Data))).toEqual(sent);
    expect(got.every((r) => r.PartitionKey === 'device-42')).toBe(true);
    const seqs = got.map((r) => BigInt(r.SequenceNumber ?? '0'));
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]! > seqs[i - 1]!).toBe(true);
    expect(got.at(-1)?.SequenceNumber).toBe(single.SequenceNumber);
    expect(single.SequenceNumber).toMatch(/^\d{56}$/);
    expect(got[0]?.ApproximateArrivalTimestamp).toBeInstanceOf(Date);
  });

  it('maps partition keys to shards by their MD5 and honours ExplicitHashKey', async () => {
    await tc.cloud.kinesis.ensureStream('hashed', 4);
    const { Shards } = await kc.send(new ListShardsCommand({ StreamName: 'hashed' }));
    const ranges = (Shards ?? []).map((s) => ({
      id: s.ShardId,
      start: BigInt(s.HashKeyRange?.StartingHashKey ?? '-1'),
      end: BigInt(s.HashKeyRange?.EndingHashKey ?? '-1'),
    }));
    // Contiguous ranges covering the whole 128-bit space.
    expect(ranges[0]?.start).toBe(0n);
    expect(ranges.at(-1)?.end).toBe((1n << 128n) - 1n);
    for (let i = 1; i < ranges.length; i++) expect(ranges[i]?.start).toBe((ranges[i - 1]?.end ?? 0n) + 1n);
    const keys = Array.from({ length: 60 }, (_, i) => `key-${i}-é`);
    const out = await kc.send(
      new PutRecordsCommand({
        StreamName: 'hashed',
        Records: [
          ...keys.map((k) => ({ Data: text(k), PartitionKey: k })),
          { Data: text('explicit'), PartitionKey: 'x', ExplicitHashKey: (ranges[2]?.start ?? 0n).toString() },
        ],
      }),
    );
    const expected = keys.map((k) => {
      const h = BigInt(`0x${createHash('md5').update(k, 'utf8').digest('hex')}`);
      return ranges.find((r) => h >= r.start && h <= r.end)?.id;
    });
    expect(out.Records?.slice(0, keys.length).map((r) => r.ShardId)).toEqual(expected);
    expect(new Set(expected).size).toBe(4);
    expect(out.Records?.at(-1)?.ShardId).toBe(ranges[2]?.id);
  });

  it('serves every shard iterator type', async () => {
    await tc.cloud.kinesis.ensureStream('iters', 1);
    const ShardId = 'shardId-000000000000';
    const put = await kc.send(
      new PutRecordsCommand({
        StreamName: 'iters',
        Records: ['a', 'b', 'c', 'd', 'e'].map((v) => ({ Data: text(v), PartitionKey: v })),
      }),
    );
    const seqs = (put.Records ?? []).map((r) => r.SequenceNumber ?? '');
    const read = async (input: Omit<GetShardIteratorCommandInput, 'ShardId' | 'StreamName'>) =>
      (await readAll(kc, await iterator(kc, { StreamName: 'iters', ShardId, ...input }))).map((r) =>
        str(r.Data),
      );
    expect(await read({ ShardIteratorType: 'TRIM_HORIZON' })).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(await read({ ShardIteratorType: 'AT_SEQUENCE_NUMBER', StartingSequenceNumber: seqs[2] })).toEqual([
      'c',
      'd',
      'e',
    ]);
    expect(
      await read({ ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: seqs[2] }),
    ).toEqual(['d', 'e']);
    expect(await read({ ShardIteratorType: 'AT_TIMESTAMP', Timestamp: new Date(0) })).toEqual([
      'a',
      'b',
      'c',
      'd',
      'e',
    ]);
    expect(
      await read({ ShardIteratorType: 'AT_TIMESTAMP', Timestamp: new Date(Date.now() + 60_000) }),
    ).toEqual([]);
    const latest = await iterator(kc, { StreamName: 'iters', ShardId, ShardIteratorType: 'LATEST' });
    const empty = await kc.send(new GetRecordsCommand({ ShardIterator: latest }));
    expect(empty.Records).toEqual([]);
    expect(empty.MillisBehindLatest).toBe(0);
    await kc.send(new PutRecordCommand({ StreamName: 'iters', Data: text('f'), PartitionKey: 'f' }));
    const next = await kc.send(new GetRecordsCommand({ ShardIterator: empty.NextShardIterator }));
    expect(next.Records?.map((r) => str(r.Data))).toEqual(['f']);
    // Sequence numbers must belong to the shard; iterators must be the service's own.
    await expect(
      read({ ShardIteratorType: 'AT_SEQUENCE_NUMBER', StartingSequenceNumber: '12345' }),
    ).rejects.toThrow(InvalidArgumentException);
    await expect(read({ ShardIteratorType: 'AT_SEQUENCE_NUMBER' })).rejects.toThrow(/StartingSequenceNumber/);
    await expect(
      kc.send(new GetRecordsCommand({ ShardIterator: `${latest.slice(0, -2)}xx` })),
    ).rejects.toThrow(InvalidArgumentException);
    await expect(
      kc.send(
        new GetShardIteratorCommand({
          StreamName: 'iters',
          ShardId: 'shardId-000000000009',
          ShardIteratorType: 'LATEST',
        }),
      ),
    ).rejects.toThrow(ResourceNotFoundException);
  });

  it('enforces the PutRecords limits', async () => {
    await tc.cloud.kinesis.ensureStream('limits', 1);
    const many = Array.from({ length: 501 }, () => ({ Data: text('x'), PartitionKey: 'k' }));
    await expect(kc.send(new PutRecordsCommand({ StreamName: 'limits', Records: many }))).rejects.toThrow(
      ValidationException,
    );
    const big = new Uint8Array(1_000_000);
    const sixMb = Array.from({ length: 6 }, (_, i) => ({ Data: big, PartitionKey: `k${i}` }));
    await expect(kc.send(new PutRecordsCommand({ StreamName: 'limits', Records: sixMb }))).rejects.toThrow(
      InvalidArgumentException,
    );
    await expect(
      kc.send(
        new PutRecordCommand({ StreamName: 'limits', Data: new Uint8Array(1024 * 1024), PartitionKey: 'k' }),
      ),
    ).rejects.toThrow(InvalidArgumentException);
    await expect(
      kc.send(new PutRecordCommand({ StreamName: 'limits', Data: text('x'), PartitionKey: 'k'.repeat(257) })),
    ).rejects.toThrow(/PartitionKey/);
    // 256 Unicode characters, 512 UTF-16 code units.
    await expect(
      kc.send(
        new PutRecordCommand({ StreamName: 'limits', Data: text('x'), PartitionKey: '😀'.repeat(256) }),
      ),
    ).resolves.toMatchObject({ ShardId: 'shardId-000000000000' });
  });

  it('serves its streams and records again after a restart', async () => {
    await tc.cloud.kinesis.ensureStream('durable', 2);
    const put = await kc.send(
      new PutRecordsCommand({
        StreamName: 'durable',
        Records: Array.from({ length: 20 }, (_, i) => ({ Data: text(`d${i}`), PartitionKey: `p${i % 3}` })),
      }),
    );
    const before = new Map<string, string[]>();
    for (const [i, r] of (put.Records ?? []).entries()) {
      before.set(r.ShardId ?? '', [...(before.get(r.ShardId ?? '') ?? []), `d${i}`]);
    }
    kc.destroy();
    await tc.stop();
    tc = await startTestCloud(dataDir);
    kc = new KinesisClient(tc.cloud.sdkConfig());
    for (const [ShardId, values] of before) {
      const got = await readAll(
        kc,
        await iterator(kc, { StreamName: 'durable', ShardId, ShardIteratorType: 'TRIM_HORIZON' }),
      );
      expect(got.map((r) => str(r.Data))).toEqual(values);
      const again = await kc.send(
        new PutRecordCommand({
          StreamName: 'durable',
          Data: text('after'),
          PartitionKey: 'p0',
          ExplicitHashKey: '0',
        }),
      );
      if (again.ShardId === ShardId) {
        expect(BigInt(again.SequenceNumber ?? '0') > BigInt(got.at(-1)?.SequenceNumber ?? '0')).toBe(true);
      }
    }
  });
});

describe('local Kinesis with an injected clock and quotas', () => {
  let dataDir: string;
  let credentials: CredentialStore;
  let http: HttpEndpoint;
  let kinesis: LocalKinesis;
  let kc: KinesisClient;
  let clock = Date.UTC(2025, 0, 1);
  const deps = (): LocalKinesisDeps => ({
    dataDir,
    region: REGION,
    accountId: ACCOUNT,
    authorizer: rootOnlyAuthorizer,
    now: () => clock,
    limits: { writeRecordsPerSecond: 3, writeBytesPerSecond: 1000 },
  });

  beforeAll(async () => {
    dataDir = tempDir('edgefleet-kinesis-clock-');
    credentials = new CredentialStore(dataDir, ACCOUNT);
    http = new HttpEndpoint({
      credentials,
      logger: pino({ level: 'silent' }),
      health: () => ({}),
    });
    kinesis = await LocalKinesis.open(deps());
    http.register(kinesis.route());
    const port = await http.listen(0, '127.0.0.1');
    kc = new KinesisClient({
      region: REGION,
      endpoint: `http://127.0.0.1:${port}`,
      maxAttempts: 1,
      credentials: {
        accessKeyId: credentials.root.accessKeyId,
        secretAccessKey: credentials.root.secretAccessKey,
      },
    });
    await kinesis.ensureStream('clocked', 1);
  });

  afterAll(async () => {
    kc.destroy();
    await kinesis.close();
    await http.close();
    removeDir(dataDir);
  });

  const tick = (ms: number) => {
    clock += ms;
  };
  const ShardId = 'shardId-000000000000';

  it('throttles writes per shard: PutRecords fails records one by one, PutRecord throws', async () => {
    tick(1000);
    const out = await kc.send(
      new PutRecordsCommand({
        StreamName: 'clocked',
        Records: ['r0', 'r1', 'r2', 'r3', 'r4'].map((v) => ({ Data: text(v), PartitionKey: 'k' })),
      }),
    );
    expect(out.FailedRecordCount).toBe(2);
    expect(out.Records?.map((r) => r.ErrorCode ?? r.ShardId)).toEqual([
      ShardId,
      ShardId,
      ShardId,
      'ProvisionedThroughputExceededException',
      'ProvisionedThroughputExceededException',
    ]);
    expect(out.Records?.[3]?.ErrorMessage).toMatch(/Rate exceeded for shard shardId-000000000000/);
    await expect(
      kc.send(new PutRecordCommand({ StreamName: 'clocked', Data: text('r5'), PartitionKey: 'k' })),
    ).rejects.toThrow(ProvisionedThroughputExceededException);
    tick(1000);
    // The byte quota: 1,000 bytes a second, data plus partition key.
    const bytes = await kc.send(
      new PutRecordsCommand({
        StreamName: 'clocked',
        Records: [
          { Data: new Uint8Array(600), PartitionKey: 'k' },
          { Data: new Uint8Array(600), PartitionKey: 'k' },
          { Data: new Uint8Array(300), PartitionKey: 'k' },
        ],
      }),
    );
    expect(bytes.Records?.map((r) => r.ErrorCode ?? 'ok')).toEqual([
      'ok',
      'ProvisionedThroughputExceededException',
      'ok',
    ]);
    tick(1000);
    await expect(
      kc.send(new PutRecordCommand({ StreamName: 'clocked', Data: text('r5'), PartitionKey: 'k' })),
    ).resolves.toMatchObject({ ShardId });
  });

  it('reports MillisBehindLatest and notifies subscribers', async () => {
    await kinesis.ensureStream('behind', 1);
    const start = await iterator(kc, { StreamName: 'behind', ShardId, ShardIteratorType: 'LATEST' });
    tick(1000);
    const arrived = new Promise<string>((resolve) => {
      const off = kinesis.subscribe('behind', ShardId, (e) => {
        off();
        resolve(e.lastSequenceNumber);
      });
    });
    const put = await kc.send(
      new PutRecordsCommand({
        StreamName: 'behind',
        Records: ['a', 'b', 'c'].map((v) => ({ Data: text(v), PartitionKey: 'k' })),
      }),
    );
    expect(await arrived).toBe(put.Records?.[2]?.SequenceNumber);
    tick(10_000);
    const first = await kc.send(new GetRecordsCommand({ ShardIterator: start, Limit: 1 }));
    expect(first.Records?.map((r) => str(r.Data))).toEqual(['a']);
    expect(first.MillisBehindLatest).toBe(10_000);
    const rest = await kc.send(new GetRecordsCommand({ ShardIterator: first.NextShardIterator, Limit: 10 }));
    expect(rest.Records?.map((r) => str(r.Data))).toEqual(['b', 'c']);
    expect(rest.MillisBehindLatest).toBe(0);
    expect(rest.Records?.[0]?.ApproximateArrivalTimestamp?.getTime()).toBe(clock - 10_000);
  });

  it('expires iterators after 5 minutes', async () => {
    const it = await iterator(kc, { StreamName: 'clocked', ShardId, ShardIteratorType: 'TRIM_HORIZON' });
    tick(5 * 60_000);
    await expect(kc.send(new GetRecordsCommand({ ShardIterator: it }))).resolves.toBeDefined();
    tick(1);
    await expect(kc.send(new GetRecordsCommand({ ShardIterator: it }))).rejects.toThrow(
      ExpiredIteratorException,
    );
  });

  it('reads from a timestamp and trims records past the retention period', async () => {
    await kinesis.ensureStream('retained', 1);
    tick(1000);
    const t1 = clock;
    await kc.send(new PutRecordCommand({ StreamName: 'retained', Data: text('old'), PartitionKey: 'k' }));
    tick(3_600_000);
    const t2 = clock;
    await kc.send(new PutRecordCommand({ StreamName: 'retained', Data: text('new'), PartitionKey: 'k' }));
    const fromTs = async (ms: number) =>
      (
        await readAll(
          kc,
          await iterator(kc, {
            StreamName: 'retained',
            ShardId,
            ShardIteratorType: 'AT_TIMESTAMP',
            Timestamp: new Date(ms),
          }),
        )
      ).map((r) => str(r.Data));
    expect(await fromTs(t1)).toEqual(['old', 'new']);
    expect(await fromTs(t1 + 1)).toEqual(['new']);
    expect(await fromTs(t2 + 1)).toEqual([]);
    // 24 hours after the first record it is gone; TRIM_HORIZON starts at the oldest kept one.
    tick(23 * 3_600_000 + 1);
    const trim = async () =>
      (
        await readAll(
          kc,
          await iterator(kc, { StreamName: 'retained', ShardId, ShardIteratorType: 'TRIM_HORIZON' }),
        )
      ).map((r) => str(r.Data));
    expect(await trim()).toEqual(['new']);
    await kc.send(
      new IncreaseStreamRetentionPeriodCommand({ StreamName: 'retained', RetentionPeriodHours: 48 }),
    );
    tick(3_600_000);
    expect(await trim()).toEqual(['new']);
    // Reopening trims what has expired for good and keeps the rest.
    await kinesis.close();
    kinesis = await LocalKinesis.open(deps());
    http.register(kinesis.route());
    expect(await trim()).toEqual(['new']);
  });
});
