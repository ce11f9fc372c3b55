/**
 * The local S3's event notifications to functions ("Amazon S3 Event Notifications", "Event message
 * structure"): the records a function receives for PutObject, CopyObject and CompleteMultipartUpload,
 * the prefix/suffix filters, delivery after the response (never blocking the request), retries of a
 * failed invocation, and the overlap check on configurations.
 */
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { Handler } from '../../cloud/functions/index.js';
import {
  encodeEventKey,
  NotificationConfigurationError,
  type S3EventRecord,
} from '../../cloud/local/s3/notifications.js';
import { LOCAL_DATA_BUCKET } from '../../cloud/rules/resources.js';
import { removeDir, startTestCloud, type TestCloud } from '../helpers/cloud.js';

let tc: TestCloud;
let s3: S3Client;

/** Records delivered to the test's function; `next` waits for one matching. */
const received: S3EventRecord[] = [];
const waiters: { pred: (r: S3EventRecord) => boolean; resolve: (r: S3EventRecord) => void }[] = [];
let behaviour: (record: S3EventRecord, attempt: number) => Promise<void> = async () => {};
const attempts = new Map<string, number>();

const sink: Handler = async (event) => {
  const records = (event as { Records: S3EventRecord[] }).Records;
  for (const r of records) {
    const n = (attempts.get(r.s3.object.key) ?? 0) + 1;
    attempts.set(r.s3.object.key, n);
    await behaviour(r, n);
    received.push(r);
    for (const w of [...waiters]) {
      if (w.pred(r)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(r);
      }
    }
  }
  return {};
};

function next(pred: (r: S3EventRecord) => boolean, timeoutMs = 10_000): Promise<S3EventRecord> {
  const already = received.find(pred);
  if (already) return Promise.resolve(already);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no matching S3 event')), timeoutMs);
    waiters.push({
      pred,
      resolve: (r) => {
        clearTimeout(timer);
        resolve(r);
      },
    });
  });
}

beforeAll(async () => {
  tc = await startTestCloud();
  s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
  tc.cloud.functions.registerHandler('s3-sink', sink);
  tc.cloud.s3Notifications.addLambdaConfiguration({
    id: 'incoming-text',
    bucket: LOCAL_DATA_BUCKET,
    events: ['s3:ObjectCreated:*'],
    prefix: 'incoming/',
    suffix: '.txt',
    functionName: 's3-sink',
  });
  tc.cloud.s3Notifications.addLambdaConfiguration({
    id: 'puts-only',
    bucket: LOCAL_DATA_BUCKET,
    events: ['s3:ObjectCreated:Put'],
    prefix: 'puts/',
    functionName: 's3-sink',
  });
});

afterAll(async () => {
  s3?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
});

describe('S3 event notifications', () => {
  test('a PUT delivers one record with the documented structure and a URL-encoded key', async () => {
    const key = 'incoming/a dir/ümlaut (1)+x.txt';
    const put = await s3.send(new PutObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: key, Body: 'hello' }));
    const record = await next((r) => r.s3.object.key === encodeEventKey(key));
    expect(record).toEqual({
      eventVersion: '2.1',
      eventSource: 'aws:s3',
      awsRegion: tc.cloud.options.region,
      eventTime: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
      eventName: 'ObjectCreated:Put',
      userIdentity: { principalId: expect.stringMatching(/^AWS:/) },
      requestParameters: { sourceIPAddress: '127.0.0.1' },
      responseElements: { 'x-amz-request-id': expect.any(String), 'x-amz-id-2': expect.any(String) },
      s3: {
        s3SchemaVersion: '1.0',
        configurationId: 'incoming-text',
        bucket: {
          name: LOCAL_DATA_BUCKET,
          ownerIdentity: { principalId: expect.any(String) },
          arn: `arn:aws:s3:::${LOCAL_DATA_BUCKET}`,
        },
        object: {
          key: 'incoming/a+dir/%C3%BCmlaut+%281%29%2Bx.txt',
          size: 5,
          eTag: put.ETag?.replace(/"/g, ''),
          sequencer: expect.stringMatching(/^[0-9A-F]+$/),
        },
      },
    });
    // Decoding as a form value gives the key back.
    expect(decodeURIComponent(record.s3.object.key.replace(/\+/g, ' '))).toBe(key);
  });

  test('filters by prefix, suffix and event type', async () => {
    await s3.send(new PutObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: 'incoming/skip.bin', Body: 'x' }));
    await s3.send(new PutObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: 'elsewhere/skip.txt', Body: 'x' }));
    await s3.send(new PutObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: 'puts/one', Body: 'x' }));
    // A copy into puts/ is ObjectCreated:Copy, which puts-only does not ask for.
    await s3.send(
      new CopyObjectCommand({
        Bucket: LOCAL_DATA_BUCKET,
        Key: 'puts/copied',
        CopySource: `${LOCAL_DATA_BUCKET}/puts/one`,
      }),
    );
    await s3.send(
      new CopyObjectCommand({
        Bucket: LOCAL_DATA_BUCKET,
        Key: 'incoming/copied.txt',
        CopySource: `${LOCAL_DATA_BUCKET}/puts/one`,
      }),
    );
    const copied = await next((r) => r.s3.object.key === 'incoming/copied.txt');
    expect(copied.eventName).toBe('ObjectCreated:Copy');
    await tc.cloud.s3Notifications.idle();
    const keys = received.map((r) => r.s3.object.key);
    expect(keys).toContain('puts/one');
    expect(keys).not.toContain('incoming/skip.bin');
    expect(keys).not.toContain('elsewhere/skip.txt');
    expect(keys).not.toContain('puts/copied');
  });

  test('CompleteMultipartUpload delivers ObjectCreated:CompleteMultipartUpload', async () => {
    const Key = 'incoming/multi.txt';
    const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket: LOCAL_DATA_BUCKET, Key }));
    const part1 = Buffer.alloc(5 * 1024 * 1024, 'a');
    const p1 = await s3.send(
      new UploadPartCommand({ Bucket: LOCAL_DATA_BUCKET, Key, UploadId, PartNumber: 1, Body: part1 }),
    );
    const p2 = await s3.send(
      new UploadPartCommand({ Bucket: LOCAL_DATA_BUCKET, Key, UploadId, PartNumber: 2, Body: 'tail' }),
    );
    const done = await s3.send(
      new CompleteMultipartUploadCommand({
        Bucket: LOCAL_DATA_BUCKET,
        Key,
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: p1.ETag },
            { PartNumber: 2, ETag: p2.ETag },
          ],
        },
      }),
    );
    const record = await next((r) => r.s3.object.key === Key);
    expect(record.eventName).toBe('ObjectCreated:CompleteMultipartUpload');
    expect(record.s3.object.size).toBe(part1.length + 4);
    expect(record.s3.object.eTag).toBe(done.ETag?.replace(/"/g, ''));
  });

  test('the PUT is answered before the function runs, and a slow function never blocks it', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let started = false;
    behaviour = async (r) => {
      if (r.s3.object.key !== 'incoming/slow.txt') return;
      started = true;
      await gate;
    };
    try {
      await s3.send(new PutObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: 'incoming/slow.txt', Body: 'x' }));
      // The PUT has been answered while the function is (or will be) waiting on the gate.
      expect(received.some((r) => r.s3.object.key === 'incoming/slow.txt')).toBe(false);
      const delivered = next((r) => r.s3.object.key === 'incoming/slow.txt');
      release();
      await delivered;
      expect(started).toBe(true);
    } finally {
      behaviour = async () => {};
    }
  });

  test('a failed invocation is retried', async () => {
    behaviour = async (r, attempt) => {
      if (r.s3.object.key === 'incoming/flaky.txt' && attempt === 1) throw new Error('transient failure');
    };
    try {
      await s3.send(
        new PutObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: 'incoming/flaky.txt', Body: 'x' }),
      );
      await next((r) => r.s3.object.key === 'incoming/flaky.txt');
      expect(attempts.get('incoming/flaky.txt')).toBe(2);
    } finally {
      behaviour = async () => {};
    }
  });

  test('configurations of a bucket may not overlap', () => {
    const add = (
      prefix: string,
      suffix?: string,
      events: ['s3:ObjectCreated:*'] | ['s3:ObjectCreated:Copy'] = ['s3:ObjectCreated:*'],
    ) =>
      tc.cloud.s3Notifications.addLambdaConfiguration({
        id: `probe-${prefix}-${suffix ?? ''}-${events[0]}`,
        bucket: LOCAL_DATA_BUCKET,
        events,
        prefix,
        ...(suffix !== undefined ? { suffix } : {}),
        functionName: 's3-sink',
      });
    expect(() => add('incoming/sub/')).toThrow(NotificationConfigurationError);
    expect(() => add('incoming/', '.txt')).toThrow(/overlap/);
    expect(() => add('frames/')).toThrow(/overlap/); // the frame analysis configuration
    const remove = add('incoming/', '.csv');
    remove();
    add('puts/', undefined, ['s3:ObjectCreated:Copy'])();
  });
});
