/**
 * The temporary-token pattern end to end in the local cloud: a gateway asks for credentials over MQTT,
 * the rule edgefleet_credentials runs the vending function (the same handler that runs on AWS Lambda),
 * which assumes the upload role with a session policy for that thing only; S3 then enforces it, and so
 * does Kinesis for the gateway log stream (put only, that stream only).
 */
import { randomUUID } from 'node:crypto';
import {
  GetShardIteratorCommand,
  KinesisClient,
  PutRecordCommand,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import {
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { MqttClient } from 'mqtt';
import { LOCAL_DATA_BUCKET } from '../../cloud/rules/resources.js';
import { GATEWAY_LOGS_STREAM, TELEMETRY_HR_STREAM } from '../../cloud/rules/streams.js';
import { credentialsTopics } from '../../protocol/credentials.js';
import {
  closed,
  connectDevice,
  nextMessage,
  removeDir,
  startTestCloud,
  type TestCloud,
  type TestDevice,
} from '../helpers/cloud.js';

interface Grant {
  requestId: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: string;
}

let tc: TestCloud;
let a: TestDevice;
let mqttA: MqttClient;

beforeAll(async () => {
  tc = await startTestCloud();
  a = await tc.provision('gw-a');
  // gw-b exists (a thing with its own prefixes) but never connects in these tests.
  await tc.provision('gw-b');
  mqttA = await connectDevice(tc.cloud, a, 'gw-a');
  await mqttA.subscribeAsync(credentialsTopics('gw-a').response, { qos: 1 });
});

afterAll(async () => {
  mqttA?.end(true);
  await tc.stop();
  removeDir(tc.dataDir);
});

async function requestCredentials(client: MqttClient, thing: string): Promise<Grant> {
  const requestId = randomUUID();
  const got = nextMessage<Grant>(
    client,
    credentialsTopics(thing).response,
    (m) => m.requestId === requestId,
    10_000,
  );
  await client.publishAsync(credentialsTopics(thing).request, JSON.stringify({ requestId }), { qos: 1 });
  return got;
}

function s3With(grant: Grant): S3Client {
  const cfg: S3ClientConfig = {
    region: tc.cloud.options.region,
    endpoint: tc.cloud.endpoints.httpUrl,
    forcePathStyle: true,
    credentials: {
      accessKeyId: grant.accessKeyId,
      secretAccessKey: grant.secretAccessKey,
      sessionToken: grant.sessionToken,
    },
  };
  return new S3Client(cfg);
}

const errorName = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: Error) => e.name,
  );

describe('credentials over MQTT', () => {
  it('a gateway gets short-lived credentials for its own prefixes', async () => {
    const grant = await requestCredentials(mqttA, 'gw-a');
    expect(grant.accessKeyId).toMatch(/^ASIA/);
    const expiresIn = Date.parse(grant.expiration) - Date.now();
    expect(expiresIn).toBeGreaterThan(55 * 60_000);
    expect(expiresIn).toBeLessThanOrEqual(60 * 60_000 + 5_000);

    const s3 = s3With(grant);
    await s3.send(
      new PutObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: 'raw/gw-a/t/one.json', Body: '{"ok":1}' }),
    );
    const back = await s3.send(
      new GetObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: 'raw/gw-a/t/one.json' }),
    );
    expect(await back.Body?.transformToString()).toBe('{"ok":1}');
    const list = await s3.send(new ListObjectsV2Command({ Bucket: LOCAL_DATA_BUCKET, Prefix: 'raw/gw-a/' }));
    expect(list.Contents?.map((c) => c.Key)).toContain('raw/gw-a/t/one.json');
    s3.destroy();
  });

  it("thing A's credentials cannot put, get or list under thing B's prefix, nor outside the data bucket", async () => {
    const s3 = s3With(await requestCredentials(mqttA, 'gw-a'));
    // An object of B's, written with the account's own credentials.
    const admin = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
    await admin.send(
      new PutObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: 'raw/gw-b/secret.json', Body: '{}' }),
    );
    admin.destroy();
    expect(
      await errorName(
        s3.send(new PutObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: 'raw/gw-b/x.json', Body: '{}' })),
      ),
    ).toBe('AccessDenied');
    expect(
      await errorName(
        s3.send(new GetObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: 'raw/gw-b/secret.json' })),
      ),
    ).toBe('AccessDenied');
    expect(
      await errorName(s3.send(new ListObjectsV2Command({ Bucket: LOCAL_DATA_BUCKET, Prefix: 'raw/gw-b/' }))),
    ).toBe('AccessDenied');
    expect(await errorName(s3.send(new ListObjectsV2Command({ Bucket: LOCAL_DATA_BUCKET })))).toBe(
      'AccessDenied',
    );
    expect(
      await errorName(
        s3.send(new PutObjectCommand({ Bucket: LOCAL_DATA_BUCKET, Key: 'curated/x.json', Body: '{}' })),
      ),
    ).toBe('AccessDenied');
    expect(
      await errorName(
        s3.send(new PutObjectCommand({ Bucket: 'another-bucket', Key: 'raw/gw-a/x', Body: '{}' })),
      ),
    ).toMatch(/AccessDenied|NoSuchBucket/);
    s3.destroy();
  });

  it('the credentials may put records into the gateway log stream, and nothing else in Kinesis', async () => {
    const grant = await requestCredentials(mqttA, 'gw-a');
    const kinesis = new KinesisClient({
      region: tc.cloud.options.region,
      endpoint: tc.cloud.endpoints.httpUrl,
      credentials: {
        accessKeyId: grant.accessKeyId,
        secretAccessKey: grant.secretAccessKey,
        sessionToken: grant.sessionToken,
      },
    });
    try {
      const line = { Data: Buffer.from('{"thing":"gw-a"}'), PartitionKey: 'gw-a/gateway' };
      const put = await kinesis.send(
        new PutRecordsCommand({ StreamName: GATEWAY_LOGS_STREAM, Records: [line, line] }),
      );
      expect(put.FailedRecordCount).toBe(0);
      expect(put.Records?.every((r) => r.SequenceNumber !== undefined)).toBe(true);
      await expect(
        kinesis.send(new PutRecordCommand({ StreamName: GATEWAY_LOGS_STREAM, ...line })),
      ).resolves.toHaveProperty('SequenceNumber');
      // Another stream of the account: denied.
      await expect(
        errorName(kinesis.send(new PutRecordsCommand({ StreamName: TELEMETRY_HR_STREAM, Records: [line] }))),
      ).resolves.toBe('AccessDeniedException');
      // Reading the log stream (other gateways' lines): denied.
      await expect(
        errorName(
          kinesis.send(
            new GetShardIteratorCommand({
              StreamName: GATEWAY_LOGS_STREAM,
              ShardId: 'shardId-000000000000',
              ShardIteratorType: 'TRIM_HORIZON',
            }),
          ),
        ),
      ).resolves.toBe('AccessDeniedException');
    } finally {
      kinesis.destroy();
    }
  });

  it("thing A cannot obtain credentials through B's request topic, nor listen on B's response topic", async () => {
    const intruder = await connectDevice(tc.cloud, a, 'gw-a');
    const gone = closed(intruder);
    intruder.publish(credentialsTopics('gw-b').request, JSON.stringify({ requestId: randomUUID() }), {
      qos: 1,
    });
    await gone;
    const listener = await connectDevice(tc.cloud, a, 'gw-a');
    const gone2 = closed(listener);
    listener.subscribe(credentialsTopics('gw-b').response, { qos: 1 });
    await gone2;
    // The intruders took over gw-a's client id; the gateway's own connection comes back.
    mqttA.end(true);
    mqttA = await connectDevice(tc.cloud, a, 'gw-a');
    await mqttA.subscribeAsync(credentialsTopics('gw-a').response, { qos: 1 });
  });

  it('the vending function refuses a request whose client id is not the thing in the topic', async () => {
    const handler = tc.cloud.functions.get('edgefleet-credential-vending');
    expect(handler).toBeDefined();
    const result = await handler!(
      { requestId: randomUUID(), clientId: 'gw-a', thingName: 'gw-b' },
      {
        functionName: 'edgefleet-credential-vending',
        functionVersion: '$LATEST',
        invokedFunctionArn: 'arn',
        memoryLimitInMB: '128',
        awsRequestId: randomUUID(),
        logGroupName: 'g',
        logStreamName: 's',
        getRemainingTimeInMillis: () => 1000,
      },
    );
    expect(result).toMatchObject({ status: 'refused' });
  });

  it('a malformed request gets no credentials and breaks nothing', async () => {
    await mqttA.publishAsync(credentialsTopics('gw-a').request, JSON.stringify({ requestId: 'not-a-uuid' }), {
      qos: 1,
    });
    const ok = await requestCredentials(mqttA, 'gw-a');
    expect(ok.accessKeyId).toMatch(/^ASIA/);
  });
});
