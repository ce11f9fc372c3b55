/**
 * The local Amazon Data Firehose through the unchanged `@aws-sdk/client-firehose` and `@aws-sdk/client-s3`
 * on a real HTTP endpoint (the local S3 with IAM beside it): stream management, PutRecord and
 * PutRecordBatch with their documented limits and partial failures, delivery by buffer size and by
 * buffer interval, GZIP and the object names, dynamic partitioning with the error output of records it
 * cannot place, retries of writes the delivery role may not make, and a restart that loses no record.
 */
import { Writable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import {
  CreateDeliveryStreamCommand,
  type CreateDeliveryStreamCommandInput,
  DeleteDeliveryStreamCommand,
  DescribeDeliveryStreamCommand,
  FirehoseClient,
  InvalidArgumentException,
  ListDeliveryStreamsCommand,
  PutRecordBatchCommand,
  PutRecordCommand,
  ResourceInUseException,
  ResourceNotFoundException,
  ServiceUnavailableException,
} from '@aws-sdk/client-firehose';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { CredentialStore } from '../../cloud/local/credentials.js';
import { LocalFirehose, type LocalFirehoseDeps } from '../../cloud/local/firehose/index.js';
import { HttpEndpoint } from '../../cloud/local/http/server.js';
import { Iam } from '../../cloud/local/iam.js';
import { s3Route } from '../../cloud/local/s3/route.js';
import { TELEMETRY_DELIVERY } from '../../cloud/rules/lake.js';
import { eventually, removeDir, tempDir } from '../helpers/cloud.js';

const REGION = 'us-east-1';
const ACCOUNT = '123456789012';
const BUCKET = 'firehose-lake';
const ROLE = 'firehose-delivery';
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/${ROLE}`;
const BUCKET_ARN = `arn:aws:s3:::${BUCKET}`;
const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

interface Stack {
  dataDir: string;
  endpoint: string;
  iam: Iam;
  firehose: LocalFirehose;
  fh: FirehoseClient;
  s3: S3Client;
  logs: string[];
  /** Closes the Firehose and opens it again on the same data dir. */
  reopen(): Promise<void>;
  stop(): Promise<void>;
}

/** An HTTP endpoint serving the local S3 and the local Firehose, as the local cloud wires them. */
async function startStack(extra: Partial<LocalFirehoseDeps> = {}): Promise<Stack> {
  const dataDir = tempDir('edgefleet-firehose-');
  const credentials = new CredentialStore(dataDir, ACCOUNT);
  const iam = new Iam({ dataDir, region: REGION, accountId: ACCOUNT, credentials });
  iam.putRole({
    roleName: ROLE,
    trustPolicy: {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Principal: { Service: 'firehose.amazonaws.com' }, Action: 'sts:AssumeRole' },
      ],
    },
    policies: {
      lake: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 's3:PutObject', Resource: `${BUCKET_ARN}/*` }],
      },
    },
  });
  const logs: string[] = [];
  const logger = pino(
    { level: 'warn' },
    new Writable({
      write(chunk, _enc, cb) {
        logs.push(String(chunk));
        cb();
      },
    }),
  );
  const http = new HttpEndpoint({ credentials, logger, health: () => ({}) });
  http.register(s3Route({ dataDir, buckets: [BUCKET], authorizer: iam, region: REGION }));
  const port = await http.listen(0, '127.0.0.1');
  const endpoint = `http://127.0.0.1:${port}`;
  const root = {
    accessKeyId: credentials.root.accessKeyId,
    secretAccessKey: credentials.root.secretAccessKey,
  };
  const deps: LocalFirehoseDeps = {
    dataDir,
    region: REGION,
    accountId: ACCOUNT,
    authorizer: iam,
    logger,
    retry: { baseMs: 20, maxMs: 200 },
    s3ForRole: async (roleArn) => {
      const role = iam.getRoleByArn(roleArn);
      if (!role) throw new Error(`no role ${roleArn}`);
      const s = iam.issueRoleSession(role.roleName, 'firehose-delivery');
      return new S3Client({
        region: REGION,
        endpoint,
        forcePathStyle: true,
        maxAttempts: 1,
        credentials: {
          accessKeyId: s.accessKeyId,
          secretAccessKey: s.secretAccessKey,
          sessionToken: s.sessionToken!,
        },
      });
    },
    ...extra,
  };
  const stack: Stack = {
    dataDir,
    endpoint,
    iam,
    firehose: await LocalFirehose.open(deps),
    fh: new FirehoseClient({ region: REGION, endpoint, credentials: root, maxAttempts: 1 }),
    s3: new S3Client({ region: REGION, endpoint, credentials: root, forcePathStyle: true }),
    logs,
    async reopen() {
      await stack.firehose.close();
      stack.firehose = await LocalFirehose.open(deps);
      http.register(stack.firehose.route());
    },
    async stop() {
      stack.fh.destroy();
      stack.s3.destroy();
      await stack.firehose.close();
      await http.close();
      removeDir(dataDir);
    },
  };
  http.register(stack.firehose.route());
  return stack;
}

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  await stack?.stop();
});

function s3Stream(
  name: string,
  dest: Partial<CreateDeliveryStreamCommandInput['ExtendedS3DestinationConfiguration']> = {},
) {
  return new CreateDeliveryStreamCommand({
    DeliveryStreamName: name,
    DeliveryStreamType: 'DirectPut',
    ExtendedS3DestinationConfiguration: {
      RoleARN: ROLE_ARN,
      BucketARN: BUCKET_ARN,
      BufferingHints: { SizeInMBs: 1, IntervalInSeconds: 900 },
      ...dest,
    },
  });
}

async function keysUnder(s: Stack, prefix: string): Promise<string[]> {
  const out = await s.s3.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

async function body(s: Stack, key: string): Promise<Buffer> {
  const out = await s.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return Buffer.from(await out.Body!.transformToByteArray());
}

/** Waits until `count` objects are under `prefix` (no event announces an object written to S3). */
function objectsUnder(s: Stack, prefix: string, count = 1, timeoutMs = 15_000): Promise<string[]> {
  return eventually(
    async () => {
      const keys = await keysUnder(s, prefix);
      return keys.length >= count ? keys : undefined;
    },
    `${count} object(s) under ${prefix}`,
    timeoutMs,
  );
}

async function rejection(p: Promise<unknown>): Promise<Error & { name: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('the request succeeded');
}

describe('stream management', () => {
  it('creates, describes, lists and deletes delivery streams', async () => {
    const created = await stack.fh.send(s3Stream('mgmt-a', { Prefix: 'mgmt/', CompressionFormat: 'GZIP' }));
    expect(created.DeliveryStreamARN).toBe(`arn:aws:firehose:${REGION}:${ACCOUNT}:deliverystream/mgmt-a`);
    await expect(stack.fh.send(s3Stream('mgmt-a'))).rejects.toBeInstanceOf(ResourceInUseException);
    await stack.fh.send(
      new CreateDeliveryStreamCommand({
        DeliveryStreamName: 'mgmt-b',
        S3DestinationConfiguration: { RoleARN: ROLE_ARN, BucketARN: BUCKET_ARN },
      }),
    );
    await stack.fh.send(s3Stream('mgmt-c'));

    const d = (await stack.fh.send(new DescribeDeliveryStreamCommand({ DeliveryStreamName: 'mgmt-a' })))
      .DeliveryStreamDescription!;
    expect(d.DeliveryStreamStatus).toBe('ACTIVE');
    expect(d.DeliveryStreamType).toBe('DirectPut');
    expect(d.VersionId).toBe('1');
    expect(d.CreateTimestamp).toBeInstanceOf(Date);
    expect(d.HasMoreDestinations).toBe(false);
    expect(d.Destinations).toHaveLength(1);
    const dest = d.Destinations![0]!;
    expect(dest.DestinationId).toBe('destinationId-000000000001');
    expect(dest.ExtendedS3DestinationDescription).toMatchObject({
      RoleARN: ROLE_ARN,
      BucketARN: BUCKET_ARN,
      Prefix: 'mgmt/',
      BufferingHints: { SizeInMBs: 1, IntervalInSeconds: 900 },
      CompressionFormat: 'GZIP',
      EncryptionConfiguration: { NoEncryptionConfig: 'NoEncryption' },
    });
    // The deprecated S3DestinationConfiguration gets the documented defaults: 5 MiB, 300 s, UNCOMPRESSED.
    const b = (await stack.fh.send(new DescribeDeliveryStreamCommand({ DeliveryStreamName: 'mgmt-b' })))
      .DeliveryStreamDescription!.Destinations![0]!;
    expect(b.S3DestinationDescription).toMatchObject({
      BufferingHints: { SizeInMBs: 5, IntervalInSeconds: 300 },
      CompressionFormat: 'UNCOMPRESSED',
    });
    expect(b.ExtendedS3DestinationDescription).toBeUndefined();

    const first = await stack.fh.send(
      new ListDeliveryStreamsCommand({ Limit: 2, ExclusiveStartDeliveryStreamName: 'mgmt-' }),
    );
    expect(first.DeliveryStreamNames).toEqual(['mgmt-a', 'mgmt-b']);
    expect(first.HasMoreDeliveryStreams).toBe(true);
    const rest = await stack.fh.send(
      new ListDeliveryStreamsCommand({ Limit: 2, ExclusiveStartDeliveryStreamName: 'mgmt-b' }),
    );
    expect(rest.DeliveryStreamNames?.[0]).toBe('mgmt-c');

    await stack.fh.send(new DeleteDeliveryStreamCommand({ DeliveryStreamName: 'mgmt-c' }));
    await expect(
      stack.fh.send(new DescribeDeliveryStreamCommand({ DeliveryStreamName: 'mgmt-c' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
    await expect(
      stack.fh.send(new DeleteDeliveryStreamCommand({ DeliveryStreamName: 'mgmt-c' })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it('refuses bad configurations with InvalidArgumentException naming the field', async () => {
    const bad = async (cmd: CreateDeliveryStreamCommand) => {
      const err = await rejection(stack.fh.send(cmd));
      expect(err).toBeInstanceOf(InvalidArgumentException);
      return err.message;
    };
    expect(await bad(s3Stream('bad', { BufferingHints: { SizeInMBs: 0, IntervalInSeconds: 60 } }))).toBe(
      'ExtendedS3DestinationConfiguration.BufferingHints.SizeInMBs: must be at least 1',
    );
    expect(await bad(s3Stream('bad', { Prefix: 'x/!{timestamp:yyyy}/' }))).toBe(
      "ExtendedS3DestinationConfiguration.ErrorOutputPrefix can't be null when ExtendedS3DestinationConfiguration.Prefix contains expressions",
    );
    expect(await bad(s3Stream('bad', { CompressionFormat: 'Snappy' }))).toMatch(
      /CompressionFormat: Snappy is not supported by the local Firehose/,
    );
    expect(await bad(s3Stream('bad', { BucketARN: 'my-bucket' }))).toBe(
      'ExtendedS3DestinationConfiguration.BucketARN: must be an S3 bucket ARN (arn:aws:s3:::bucket)',
    );
    expect(await bad(s3Stream('bad name'))).toBe('DeliveryStreamName: must match [a-zA-Z0-9._-]+');
    expect(
      await bad(
        new CreateDeliveryStreamCommand({
          DeliveryStreamName: 'bad',
          DeliveryStreamType: 'KinesisStreamAsSource',
          ExtendedS3DestinationConfiguration: { RoleARN: ROLE_ARN, BucketARN: BUCKET_ARN },
        }),
      ),
    ).toMatch(/DeliveryStreamType KinesisStreamAsSource is not supported/);
    await expect(
      stack.fh.send(new PutRecordCommand({ DeliveryStreamName: 'nope', Record: { Data: Buffer.from('x') } })),
    ).rejects.toBeInstanceOf(ResourceNotFoundException);
  });

  it('authorizes every call as the caller', async () => {
    // The delivery role may write to the bucket but not use Firehose.
    const s = stack.iam.issueRoleSession(ROLE, 'not-a-producer');
    const client = new FirehoseClient({
      region: REGION,
      endpoint: stack.endpoint,
      maxAttempts: 1,
      credentials: {
        accessKeyId: s.accessKeyId,
        secretAccessKey: s.secretAccessKey,
        sessionToken: s.sessionToken!,
      },
    });
    try {
      const err = await rejection(
        client.send(
          new PutRecordCommand({ DeliveryStreamName: 'mgmt-a', Record: { Data: Buffer.from('x') } }),
        ),
      );
      expect(err.name).toBe('AccessDeniedException');
      expect(err.message).toBe(
        `User: arn:aws:sts::${ACCOUNT}:assumed-role/${ROLE}/not-a-producer is not authorized to perform: firehose:PutRecord on resource: arn:aws:firehose:${REGION}:${ACCOUNT}:deliverystream/mgmt-a`,
      );
    } finally {
      client.destroy();
    }
  });
});

describe('PutRecord, PutRecordBatch and delivery', () => {
  it('delivers by buffer interval: the object appears about IntervalInSeconds after the first record', async () => {
    await stack.fh.send(
      s3Stream('interval', { Prefix: 'interval/', BufferingHints: { SizeInMBs: 1, IntervalInSeconds: 1 } }),
    );
    const put = await stack.fh.send(
      new PutRecordCommand({ DeliveryStreamName: 'interval', Record: { Data: Buffer.from('one\n') } }),
    );
    expect(put.RecordId).toMatch(/^[A-Za-z0-9+/=]{40,}$/);
    expect(put.Encrypted).toBe(false);
    await stack.fh.send(
      new PutRecordCommand({ DeliveryStreamName: 'interval', Record: { Data: Buffer.from('two\n') } }),
    );
    const [key] = await objectsUnder(stack, 'interval/');
    // <prefix>yyyy/MM/dd/HH/ (no timestamp in the Prefix), then the documented object name.
    expect(key).toMatch(
      new RegExp(
        `^interval/\\d{4}/\\d{2}/\\d{2}/\\d{2}/interval-1-\\d{4}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-${UUID}$`,
      ),
    );
    expect((await body(stack, key!)).toString()).toBe('one\ntwo\n');
  });

  it('delivers by buffer size without waiting for the interval', async () => {
    await stack.fh.send(s3Stream('size', { Prefix: 'size/' }));
    const records = [0, 1, 2].map((i) => ({ Data: Buffer.alloc(400_000, 97 + i) }));
    const out = await stack.fh.send(
      new PutRecordBatchCommand({ DeliveryStreamName: 'size', Records: records }),
    );
    expect(out.FailedPutCount).toBe(0);
    expect(out.RequestResponses).toHaveLength(3);
    for (const r of out.RequestResponses!) expect(r.RecordId).toBeTruthy();
    // 1.2 MB reached the 1 MiB buffer; the interval is 900 s.
    const [key] = await objectsUnder(stack, 'size/');
    expect(Buffer.compare(await body(stack, key!), Buffer.concat(records.map((r) => r.Data)))).toBe(0);
  });

  it('writes GZIP objects (.gz, or the FileExtension) with AppendDelimiterToRecord', async () => {
    const delimited = {
      ProcessingConfiguration: { Enabled: true, Processors: [{ Type: 'AppendDelimiterToRecord' as const }] },
      CompressionFormat: 'GZIP' as const,
    };
    await stack.fh.send(s3Stream('gz', { Prefix: 'gz/', ...delimited }));
    await stack.fh.send(s3Stream('gz-ext', { Prefix: 'gz-ext/', FileExtension: '.ndjson.gz', ...delimited }));
    const lines = Array.from({ length: 20 }, (_, i) => JSON.stringify({ i, v: 'x'.repeat(i) }));
    for (const name of ['gz', 'gz-ext']) {
      await stack.fh.send(
        new PutRecordBatchCommand({
          DeliveryStreamName: name,
          Records: lines.slice(0, 10).map((l) => ({ Data: Buffer.from(l) })),
        }),
      );
      for (const l of lines.slice(10)) {
        await stack.fh.send(
          new PutRecordCommand({ DeliveryStreamName: name, Record: { Data: Buffer.from(l) } }),
        );
      }
    }
    await stack.firehose.flush();
    const [gz] = await keysUnder(stack, 'gz/');
    expect(gz).toMatch(new RegExp(`/gz-1-[0-9-]{19}-${UUID}\\.gz$`));
    expect(gunzipSync(await body(stack, gz!)).toString()).toBe(`${lines.join('\n')}\n`);
    const [ext] = await keysUnder(stack, 'gz-ext/');
    expect(ext).toMatch(new RegExp(`/gz-ext-1-[0-9-]{19}-${UUID}\\.ndjson\\.gz$`));
    expect(gunzipSync(await body(stack, ext!)).toString()).toBe(`${lines.join('\n')}\n`);
  });

  it('enforces the PutRecordBatch limits: 500 records, 1,000 KiB a record, 4 MiB a call', async () => {
    await stack.fh.send(s3Stream('limits', { Prefix: 'limits/' }));
    const tooMany = await rejection(
      stack.fh.send(
        new PutRecordBatchCommand({
          DeliveryStreamName: 'limits',
          Records: Array.from({ length: 501 }, () => ({ Data: Buffer.from('x') })),
        }),
      ),
    );
    expect(tooMany).toBeInstanceOf(InvalidArgumentException);
    expect(tooMany.message).toBe('Records: must contain at most 500 records');
    const tooLarge = await rejection(
      stack.fh.send(
        new PutRecordBatchCommand({
          DeliveryStreamName: 'limits',
          Records: [{ Data: Buffer.from('ok') }, { Data: Buffer.alloc(1_024_001) }],
        }),
      ),
    );
    expect(tooLarge).toBeInstanceOf(InvalidArgumentException);
    expect(tooLarge.message).toBe(
      'Records.2.Data: must be at most 1024000 bytes (1,000 KiB) before base64 encoding',
    );
    const tooMuch = await rejection(
      stack.fh.send(
        new PutRecordBatchCommand({
          DeliveryStreamName: 'limits',
          Records: Array.from({ length: 5 }, () => ({ Data: Buffer.alloc(1_000_000) })),
        }),
      ),
    );
    expect(tooMuch).toBeInstanceOf(InvalidArgumentException);
    expect(tooMuch.message).toMatch(/at most 4194304 bytes \(4 MiB\)/);
    const single = await rejection(
      stack.fh.send(
        new PutRecordCommand({ DeliveryStreamName: 'limits', Record: { Data: Buffer.alloc(1_024_001) } }),
      ),
    );
    expect(single).toBeInstanceOf(InvalidArgumentException);
    expect(single.message).toMatch(/^Record\.Data: must be at most 1024000 bytes/);
    // Nothing of the refused calls was accepted.
    await stack.firehose.flush();
    expect(await keysUnder(stack, 'limits/')).toEqual([]);
  });

  it('answers records over the throughput quota one by one (FailedPutCount, ErrorCode, ErrorMessage)', async () => {
    // A Firehose whose clock stands still, so the quota window is the same for every call.
    const at = Date.parse('2024-05-06T07:08:09Z');
    const quota = await startStack({ limits: { recordsPerSecond: 10 }, now: () => at });
    try {
      await quota.fh.send(s3Stream('quota', { Prefix: 'quota/' }));
      const out = await quota.fh.send(
        new PutRecordBatchCommand({
          DeliveryStreamName: 'quota',
          Records: Array.from({ length: 15 }, (_, i) => ({ Data: Buffer.from(`${i},`) })),
        }),
      );
      expect(out.FailedPutCount).toBe(5);
      expect(out.RequestResponses).toHaveLength(15);
      for (const [i, r] of out.RequestResponses!.entries()) {
        if (i < 10) expect(r).toEqual({ RecordId: expect.any(String) });
        else expect(r).toEqual({ ErrorCode: 'ServiceUnavailableException', ErrorMessage: 'Slow down.' });
      }
      await expect(
        quota.fh.send(
          new PutRecordCommand({ DeliveryStreamName: 'quota', Record: { Data: Buffer.from('x') } }),
        ),
      ).rejects.toBeInstanceOf(ServiceUnavailableException);
      await quota.firehose.flush();
      const keys = await keysUnder(quota, 'quota/');
      expect(keys).toEqual([
        expect.stringMatching(new RegExp(`^quota/2024/05/06/07/quota-1-2024-05-06-07-08-09-${UUID}$`)),
      ]);
      expect((await body(quota, keys[0]!)).toString()).toBe('0,1,2,3,4,5,6,7,8,9,');
    } finally {
      await quota.stop();
    }
  });
});

describe('dynamic partitioning', () => {
  const partitioned = (name: string, prefix: string, errorPrefix: string, query: string) =>
    s3Stream(name, {
      Prefix: prefix,
      ErrorOutputPrefix: errorPrefix,
      BufferingHints: { SizeInMBs: 64, IntervalInSeconds: 900 },
      DynamicPartitioningConfiguration: { Enabled: true },
      ProcessingConfiguration: {
        Enabled: true,
        Processors: [
          {
            Type: 'MetadataExtraction',
            Parameters: [
              { ParameterName: 'MetadataExtractionQuery', ParameterValue: query },
              { ParameterName: 'JsonParsingEngine', ParameterValue: 'JQ-1.6' },
            ],
          },
          { Type: 'AppendDelimiterToRecord' },
        ],
      },
    });

  it('delivers one object per partition and failed records to the error prefix', async () => {
    await stack.fh.send(
      partitioned(
        'dp',
        'dp/customer_id=!{partitionKeyFromQuery:customer_id}/device=!{partitionKeyFromQuery:device}/',
        'dp-errors/!{firehose:error-output-type}/!{timestamp:yyyy}/',
        '{customer_id: .customer_id, device: .type.device}',
      ),
    );
    const rec = (customer: string, device: string, n: number) =>
      JSON.stringify({ type: { device }, customer_id: customer, n });
    const good = [rec('A', 'mobile', 1), rec('B', 'desktop', 2), rec('A', 'mobile', 3)];
    const badData = ['not json', JSON.stringify({ type: { device: 'tv' } })];
    const out = await stack.fh.send(
      new PutRecordBatchCommand({
        DeliveryStreamName: 'dp',
        Records: [good[0]!, badData[0]!, good[1]!, badData[1]!, good[2]!].map((d) => ({
          Data: Buffer.from(d),
        })),
      }),
    );
    // Partitioning happens after the records are accepted: the call itself succeeds.
    expect(out.FailedPutCount).toBe(0);
    const before = Date.now();
    await stack.firehose.flush();
    const a = await keysUnder(stack, 'dp/customer_id=A/device=mobile/');
    expect(a).toEqual([
      expect.stringMatching(new RegExp(`^dp/customer_id=A/device=mobile/dp-1-[0-9-]{19}-${UUID}$`)),
    ]);
    expect((await body(stack, a[0]!)).toString()).toBe(`${good[0]}\n${good[2]}\n`);
    const b = await keysUnder(stack, 'dp/customer_id=B/device=desktop/');
    expect((await body(stack, b[0]!)).toString()).toBe(`${good[1]}\n`);

    const errors = await keysUnder(stack, 'dp-errors/');
    expect(errors).toEqual([
      expect.stringMatching(new RegExp(`^dp-errors/processing-failed/\\d{4}/dp-1-[0-9-]{19}-${UUID}$`)),
    ]);
    const lines = (await body(stack, errors[0]!)).toString().trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    const failed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(Object.keys(failed[0]!)).toEqual([
      'attemptsMade',
      'arrivalTimestamp',
      'errorCode',
      'errorMessage',
      'attemptEndingTimestamp',
      'rawData',
    ]);
    expect(failed[0]).toMatchObject({
      attemptsMade: 1,
      errorCode: 'DynamicPartitioning.MetadataExtractionFailed',
      errorMessage: 'Non JSON record provided',
    });
    expect(failed[1]).toMatchObject({
      errorCode: 'DynamicPartitioning.MetadataExtractionFailed',
      errorMessage: "The partition key 'customer_id' evaluated to null",
    });
    for (const [i, f] of failed.entries()) {
      expect(Buffer.from(f.rawData as string, 'base64').toString()).toBe(badData[i]);
      expect(f.arrivalTimestamp).toBeLessThanOrEqual(before);
      expect(f.attemptEndingTimestamp).toBeGreaterThanOrEqual(f.arrivalTimestamp as number);
    }
  });

  it('partitions the documented example record by customer, device and its event time', async () => {
    await stack.fh.send(
      partitioned(
        'dp-doc',
        'doc/customer_id=!{partitionKeyFromQuery:customer_id}/device=!{partitionKeyFromQuery:device}/year=!{partitionKeyFromQuery:year}/month=!{partitionKeyFromQuery:month}/day=!{partitionKeyFromQuery:day}/hour=!{partitionKeyFromQuery:hour}/',
        'doc-errors/!{firehose:error-output-type}/',
        '{customer_id: .customer_id, device: .type.device, year: .event_timestamp| strftime("%Y"), month: .event_timestamp| strftime("%m"), day: .event_timestamp| strftime("%d"), hour: .event_timestamp| strftime("%H")}',
      ),
    );
    const record = {
      type: { device: 'mobile', event: 'user_clicked_submit_button' },
      customer_id: '1234567890',
      event_timestamp: 1565382027,
      region: 'sample_region',
    };
    await stack.fh.send(
      new PutRecordCommand({
        DeliveryStreamName: 'dp-doc',
        Record: { Data: Buffer.from(JSON.stringify(record)) },
      }),
    );
    await stack.firehose.flush();
    expect(await keysUnder(stack, 'doc/')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^doc/customer_id=1234567890/device=mobile/year=2019/month=08/day=09/hour=20/dp-doc-1-[0-9-]{19}-${UUID}$`,
        ),
      ),
    ]);
  });
});

describe("the project's telemetry stream", () => {
  it('accepts TELEMETRY_DELIVERY as the local cloud seeds it, idempotently, and partitions by thing', async () => {
    const t = TELEMETRY_DELIVERY;
    const input: CreateDeliveryStreamCommandInput = {
      DeliveryStreamName: t.name,
      DeliveryStreamType: 'DirectPut',
      ExtendedS3DestinationConfiguration: {
        RoleARN: ROLE_ARN,
        BucketARN: BUCKET_ARN,
        Prefix: t.prefix,
        ErrorOutputPrefix: t.errorOutputPrefix,
        CompressionFormat: t.compression,
        BufferingHints: {
          SizeInMBs: t.bufferingHints.sizeInMBs,
          IntervalInSeconds: t.bufferingHints.intervalInSeconds,
        },
        DynamicPartitioningConfiguration: { Enabled: true },
        ProcessingConfiguration: {
          Enabled: true,
          Processors: [
            {
              Type: 'MetadataExtraction',
              Parameters: [
                { ParameterName: 'MetadataExtractionQuery', ParameterValue: t.metadataExtractionQuery },
                { ParameterName: 'JsonParsingEngine', ParameterValue: t.metadataExtractionJqEngine },
              ],
            },
          ],
        },
      },
    };
    await stack.firehose.ensureDeliveryStream(input);
    await stack.firehose.ensureDeliveryStream(input);
    const good = `${JSON.stringify({ thing: 'gw-1', temperature: 21.5 })}\n`;
    const bad = `${JSON.stringify({ temperature: 3 })}\n`;
    const before = Date.now();
    await stack.fh.send(
      new PutRecordBatchCommand({
        DeliveryStreamName: t.name,
        Records: [{ Data: Buffer.from(good) }, { Data: Buffer.from(bad) }],
      }),
    );
    await stack.firehose.flush();
    const day = new Date(before).toISOString().slice(0, 10);
    const [key] = await keysUnder(stack, 'lake/telemetry/thing=gw-1/');
    expect(key).toMatch(
      new RegExp(`^lake/telemetry/thing=gw-1/dt=${day}/hour=\\d{2}/${t.name}-1-[0-9-]{19}-${UUID}\\.gz$`),
    );
    expect(gunzipSync(await body(stack, key!)).toString()).toBe(good);
    const [failed] = await keysUnder(stack, 'lake/errors/telemetry/processing-failed/');
    expect(failed).toMatch(new RegExp(`dt=${day}/hour=\\d{2}/${t.name}-1-[0-9-]{19}-${UUID}\\.gz$`));
    const line = JSON.parse(gunzipSync(await body(stack, failed!)).toString()) as { rawData: string };
    expect(Buffer.from(line.rawData, 'base64').toString()).toBe(bad);
  });
});

describe('delivery failures and restarts', () => {
  it('retries a write the role may not make until it may, dropping nothing', async () => {
    await stack.fh.send(
      s3Stream('denied', { Prefix: 'denied/', BufferingHints: { SizeInMBs: 1, IntervalInSeconds: 0 } }),
    );
    stack.iam.putRolePolicy(ROLE, 'deny-denied', {
      Version: '2012-10-17',
      Statement: [{ Effect: 'Deny', Action: 's3:PutObject', Resource: `${BUCKET_ARN}/denied/*` }],
    });
    await stack.fh.send(
      new PutRecordCommand({ DeliveryStreamName: 'denied', Record: { Data: Buffer.from('kept') } }),
    );
    await eventually(
      () =>
        stack.logs.some((l) => l.includes('Firehose delivery to S3 failed; retrying')) ? true : undefined,
      'a logged failed delivery',
    );
    expect(await keysUnder(stack, 'denied/')).toEqual([]);
    stack.iam.deleteRolePolicy(ROLE, 'deny-denied');
    const [key] = await objectsUnder(stack, 'denied/');
    expect((await body(stack, key!)).toString()).toBe('kept');
  });

  it('keeps accepted records across a restart and delivers them with their arrival time', async () => {
    await stack.fh.send(s3Stream('restart', { Prefix: 'restart/' }));
    await stack.fh.send(
      s3Stream('restart-soon', { Prefix: 'soon/', BufferingHints: { SizeInMBs: 1, IntervalInSeconds: 1 } }),
    );
    const arrivedBefore = Date.now();
    await stack.fh.send(
      new PutRecordCommand({ DeliveryStreamName: 'restart', Record: { Data: Buffer.from('a,') } }),
    );
    await stack.fh.send(
      new PutRecordBatchCommand({
        DeliveryStreamName: 'restart',
        Records: ['b,', 'c,', 'd,'].map((d) => ({ Data: Buffer.from(d) })),
      }),
    );
    const arrivedAfter = Date.now();
    await stack.fh.send(
      new PutRecordCommand({ DeliveryStreamName: 'restart-soon', Record: { Data: Buffer.from('s') } }),
    );
    // Closed before the 1 s interval of restart-soon: nothing is in S3 yet.
    await stack.reopen();
    expect(await keysUnder(stack, 'restart/')).toEqual([]);
    // The stream definitions survived.
    const d = await stack.fh.send(new DescribeDeliveryStreamCommand({ DeliveryStreamName: 'restart' }));
    expect(d.DeliveryStreamDescription?.DeliveryStreamName).toBe('restart');
    // restart-soon is delivered per its hints (its oldest record is already due or nearly so).
    const [soon] = await objectsUnder(stack, 'soon/');
    expect((await body(stack, soon!)).toString()).toBe('s');
    await stack.fh.send(
      new PutRecordCommand({ DeliveryStreamName: 'restart', Record: { Data: Buffer.from('e,') } }),
    );
    await stack.firehose.flush();
    const keys = await keysUnder(stack, 'restart/');
    expect(keys).toHaveLength(1);
    expect((await body(stack, keys[0]!)).toString()).toBe('a,b,c,d,e,');
    // The prefix's hour and the name's time are those of the oldest record, which arrived before the restart.
    const hours = [arrivedBefore, arrivedAfter].map((t) =>
      new Date(t).toISOString().slice(0, 13).replace(/[-T]/g, '/'),
    );
    expect(hours.map((h) => `restart/${h}/restart-1-`)).toContain(
      keys[0]!.slice(0, 'restart/yyyy/MM/dd/HH/restart-1-'.length),
    );
    // Delivered records left the journal: another restart delivers nothing again.
    await stack.reopen();
    await stack.firehose.flush();
    expect(await keysUnder(stack, 'restart/')).toHaveLength(1);
    expect(await keysUnder(stack, 'soon/')).toHaveLength(1);
  });
});
