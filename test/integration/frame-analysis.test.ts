/**
 * Frame analysis end to end against the local cloud: a gateway-style frame upload into the data bucket
 * fires the local S3's event notification, the unchanged frame analysis function runs with its own
 * role's session, asks the local Rekognition about the image, writes the result object, publishes the
 * summary on `things/{thing}/analysis` and the alert through the local SNS, which records it and
 * publishes it on `alerts/{site}`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { MqttClient } from 'mqtt';
import pino from 'pino';
import {
  createFrameAnalysisHandler,
  type FrameResult,
} from '../../cloud/functions/frame-analysis/handler.js';
import type { LambdaContext } from '../../cloud/functions/index.js';
import { encodeEventKey } from '../../cloud/local/s3/notifications.js';
import type { SnsNotification } from '../../cloud/local/sns/topics.js';
import { ALERT_RULES_KEY, type AlertRulesDocumentInput } from '../../cloud/rules/alerts.js';
import {
  ALERTS_TOPIC_NAME,
  alertsTopicArn,
  LOCAL_DATA_BUCKET,
  LOCAL_RESULTS_BUCKET,
} from '../../cloud/rules/resources.js';
import {
  brokerTap,
  connectDevice,
  nextMessage,
  removeDir,
  startTestCloud,
  type TestCloud,
} from '../helpers/cloud.js';

const SAMPLE = new URL('../../node_modules/@vladmandic/face-api/demo/sample1.jpg', import.meta.url);
const THING = 'gw-dock';
const CAMERA = 'dock-3';
const SITE = 'plant-a';
/** 23:15 UTC: inside the rule's 22:00-06:00 window. */
const CAPTURED_AT = Date.parse('2025-03-01T23:15:00.000Z');
const FRAME_KEY = `frames/${THING}/${CAMERA}/dt=2025-03-01/hour=23/${CAPTURED_AT}-7.jpg`;
const RESULT_KEY = `results/${THING}/${CAMERA}/dt=2025-03-01/${CAPTURED_AT}-7.json`;
/** Analysis runs face-api models on the wasm backend: loading them takes a while on a cold start. */
const ANALYSIS_TIMEOUT_MS = 90_000;

const rules: AlertRulesDocumentInput = {
  things: { [THING]: SITE },
  rules: [
    {
      id: 'night-person-dock-3',
      site: SITE,
      camera: CAMERA,
      label: 'Person',
      minConfidence: 90,
      window: { from: '22:00', to: '06:00', timeZone: 'UTC' },
      severity: 'critical',
    },
    { id: 'cars-anywhere', site: SITE, label: 'Car', minConfidence: 50, severity: 'info' },
  ],
};

let tc: TestCloud;
let s3: S3Client;
let device: MqttClient;

const put = (bucket: string, key: string, body: string | Buffer, contentType: string) =>
  s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));

async function getJson<T>(bucket: string, key: string): Promise<T> {
  const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return JSON.parse((await out.Body?.transformToString('utf8')) ?? '') as T;
}

beforeAll(async () => {
  tc = await startTestCloud();
  s3 = new S3Client({ ...tc.cloud.sdkConfig(), forcePathStyle: true });
  const dev = await tc.provision(THING);
  device = await connectDevice(tc.cloud, dev, THING);
  await device.subscribeAsync(`things/${THING}/analysis`, { qos: 1 });
}, 60_000);

afterAll(async () => {
  device?.end(true);
  s3?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
});

describe('a new frame in the data bucket', () => {
  let result: FrameResult;

  test(
    'is analysed: result object, summary on the thing topic, alert through SNS on alerts/{site}',
    async () => {
      const alerts = brokerTap(tc.cloud, 'alerts/#');
      await put(LOCAL_RESULTS_BUCKET, ALERT_RULES_KEY, JSON.stringify(rules), 'application/json');
      const analysis = nextMessage<Record<string, unknown>>(
        device,
        `things/${THING}/analysis`,
        (m) => m.key === FRAME_KEY,
        ANALYSIS_TIMEOUT_MS,
      );
      const alert = alerts.next((m) => m.topic === `alerts/${SITE}`, ANALYSIS_TIMEOUT_MS);
      // The gateway's order: sidecar first, then the frame (whose creation is what S3 notifies).
      await put(
        LOCAL_DATA_BUCKET,
        FRAME_KEY.replace(/\.jpg$/, '.json'),
        JSON.stringify({
          thing: THING,
          camera: CAMERA,
          capturedAt: new Date(CAPTURED_AT).toISOString(),
          faces: 1,
          boxes: [],
          masking: 'blur',
          format: 'jpeg',
          width: 800,
          height: 600,
        }),
        'application/json',
      );
      await put(LOCAL_DATA_BUCKET, FRAME_KEY, readFileSync(SAMPLE), 'image/jpeg');

      const summary = await analysis;
      expect(summary).toMatchObject({ thing: THING, camera: CAMERA, resultKey: RESULT_KEY });
      expect(summary.capturedAt).toBe(new Date(CAPTURED_AT).toISOString());
      expect((summary.faces as number) > 0).toBe(true);
      expect(summary.alerts).toEqual([
        expect.objectContaining({ ruleId: 'night-person-dock-3', severity: 'critical' }),
      ]);

      const published = (await alert).body as unknown as SnsNotification;
      expect(published).toMatchObject({
        Type: 'Notification',
        TopicArn: alertsTopicArn(tc.cloud.options.region, tc.cloud.options.accountId),
        MessageAttributes: {
          site: { Type: 'String', Value: SITE },
          severity: { Type: 'String', Value: 'critical' },
        },
      });
      expect(JSON.parse(published.Message)).toMatchObject({
        ruleId: 'night-person-dock-3',
        thing: THING,
        camera: CAMERA,
        label: 'Person',
        key: FRAME_KEY,
        resultKey: RESULT_KEY,
      });
      alerts.off();

      result = await getJson<FrameResult>(LOCAL_RESULTS_BUCKET, RESULT_KEY);
      expect(result).toMatchObject({
        thing: THING,
        camera: CAMERA,
        site: SITE,
        key: FRAME_KEY,
        bucket: LOCAL_DATA_BUCKET,
        kind: 'frames',
        masking: 'blur',
        capturedAt: new Date(CAPTURED_AT).toISOString(),
      });
      const names = result.labels.map((l) => l.name);
      expect(names).toEqual(expect.arrayContaining(['Person', 'Face']));
      expect(result.faces.length).toBeGreaterThan(0);
      expect(result.matches).toBeUndefined();
      expect(result.alerts.map((a) => a.ruleId)).toEqual(['night-person-dock-3']);

      // The local SNS recorded the alert, append-only, in the data dir.
      const recorded = readFileSync(join(tc.dataDir, 'sns', 'messages', `${ALERTS_TOPIC_NAME}.jsonl`), 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { messageId: string; messageAttributes: Record<string, unknown> });
      expect(recorded.map((r) => r.messageId)).toContain(published.MessageId);
      expect(recorded[0]?.messageAttributes).toMatchObject({
        site: { DataType: 'String', StringValue: SITE },
      });
    },
    ANALYSIS_TIMEOUT_MS + 30_000,
  );

  describe('the handler, invoked directly with its own runtime', () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk, _enc, done) {
          lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
          done();
        },
      }),
    );
    const context: LambdaContext = {
      functionName: 'frame-analysis-test',
      functionVersion: '$LATEST',
      invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:frame-analysis-test',
      memoryLimitInMB: '512',
      awsRequestId: 'test',
      logGroupName: '/aws/lambda/frame-analysis-test',
      logStreamName: 'test',
      getRemainingTimeInMillis: () => 60_000,
    };
    const handler = () =>
      createFrameAnalysisHandler({
        region: tc.cloud.options.region,
        clientConfig: { endpoint: tc.cloud.endpoints.httpUrl, credentials: tc.cloud.sdkConfig().credentials },
        env: {
          RESULTS_BUCKET: LOCAL_RESULTS_BUCKET,
          ALERT_TOPIC_ARN: alertsTopicArn(tc.cloud.options.region, tc.cloud.options.accountId),
          ALERT_RULES_TTL_SECONDS: '0',
          S3_FORCE_PATH_STYLE: 'true',
        },
        logger,
      });
    const event = (key: string, eventName = 'ObjectCreated:Put') => ({
      Records: [
        {
          eventVersion: '2.1',
          eventSource: 'aws:s3',
          eventName,
          s3: { bucket: { name: LOCAL_DATA_BUCKET }, object: { key: encodeEventKey(key) } },
        },
      ],
    });

    test(
      'an invalid rules document: no alerts, an error naming the field, the same result key',
      async () => {
        const bad = { ...rules, rules: [{ ...rules.rules[0], window: { from: '25:00', to: '06:00' } }] };
        await put(LOCAL_RESULTS_BUCKET, ALERT_RULES_KEY, JSON.stringify(bad), 'application/json');
        const out = await handler()(event(FRAME_KEY), context);
        expect(out).toEqual({
          frames: [{ status: 'analysed', key: FRAME_KEY, resultKey: RESULT_KEY, alerts: 0 }],
        });
        const error = lines.find((l) => l.level === 50);
        expect(error?.field).toBe('rules.0.window.from');
        expect(String(error?.msg)).toContain('no alerts');
        const again = await getJson<FrameResult>(LOCAL_RESULTS_BUCKET, RESULT_KEY);
        expect(again.alerts).toEqual([]);
        expect(again.labels).toEqual(result.labels);
      },
      ANALYSIS_TIMEOUT_MS,
    );

    test(
      'a missing rules document: no alerts and a logged error, not a failed invocation',
      async () => {
        await s3.send(new DeleteObjectCommand({ Bucket: LOCAL_RESULTS_BUCKET, Key: ALERT_RULES_KEY }));
        lines.length = 0;
        const out = await handler()(event(FRAME_KEY), context);
        expect(out).toEqual({
          frames: [{ status: 'analysed', key: FRAME_KEY, resultKey: RESULT_KEY, alerts: 0 }],
        });
        const error = lines.find((l) => l.level === 50);
        expect(String(error?.msg)).toContain(ALERT_RULES_KEY);
        expect(String(error?.msg)).toContain('no alerts');
      },
      ANALYSIS_TIMEOUT_MS,
    );

    test('skips sidecars, other prefixes, deletions and keys outside the layout', async () => {
      const h = handler();
      const out = await h(
        {
          Records: [
            ...event(FRAME_KEY.replace(/\.jpg$/, '.json')).Records,
            ...event(`raw/${THING}/batch.ndjson.gz`).Records,
            ...event(FRAME_KEY, 'ObjectRemoved:Delete').Records,
            ...event(`frames/${THING}/my photo.jpg`).Records,
            { not: 'a record' },
          ],
        },
        context,
      );
      expect((out as { frames: { status: string; key: string }[] }).frames).toEqual([
        expect.objectContaining({ status: 'skipped', key: FRAME_KEY.replace(/\.jpg$/, '.json') }),
        expect.objectContaining({ status: 'skipped', key: `raw/${THING}/batch.ndjson.gz` }),
        expect.objectContaining({ status: 'skipped', key: FRAME_KEY }),
        expect.objectContaining({ status: 'skipped', key: `frames/${THING}/my photo.jpg` }),
      ]);
      expect(await h({ hello: 'world' }, context)).toEqual({ frames: [] });
    });
  });
});
