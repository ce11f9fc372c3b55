/**
 * The local SNS (query protocol) through the unchanged @aws-sdk/client-sns: CreateTopic, ListTopics,
 * Publish with message attributes, the documented errors, IAM authorization of role sessions, the
 * append-only record of messages, and the alerts topic's delivery on MQTT `alerts/{site}`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateTopicCommand,
  ListTopicsCommand,
  PublishCommand,
  SNSClient,
  type SNSServiceException,
} from '@aws-sdk/client-sns';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ALERTS_TOPIC_NAME, alertsTopicArn } from '../../cloud/rules/resources.js';
import { brokerTap, removeDir, startTestCloud, type TestCloud } from '../helpers/cloud.js';

let tc: TestCloud;
let sns: SNSClient;

beforeAll(async () => {
  tc = await startTestCloud();
  sns = new SNSClient(tc.cloud.sdkConfig());
});

afterAll(async () => {
  sns?.destroy();
  await tc?.stop();
  if (tc) removeDir(tc.dataDir);
});

async function failure(p: Promise<unknown>): Promise<SNSServiceException> {
  try {
    await p;
  } catch (err) {
    return err as SNSServiceException;
  }
  throw new Error('the request succeeded');
}

const arn = (name: string) => `arn:aws:sns:${tc.cloud.options.region}:${tc.cloud.options.accountId}:${name}`;

describe('topics', () => {
  test('CreateTopic answers the ARN and is idempotent', async () => {
    const a = await sns.send(new CreateTopicCommand({ Name: 'orders_v1-x' }));
    expect(a.TopicArn).toBe(arn('orders_v1-x'));
    const b = await sns.send(new CreateTopicCommand({ Name: 'orders_v1-x' }));
    expect(b.TopicArn).toBe(a.TopicArn);
  });

  test('CreateTopic refuses invalid names, FIFO topics and different attributes', async () => {
    for (const Name of ['', 'has space', 'dots.not.allowed', 'x'.repeat(257)]) {
      const err = await failure(sns.send(new CreateTopicCommand({ Name })));
      expect(err.name).toBe('InvalidParameterException');
      expect(err.$metadata.httpStatusCode).toBe(400);
    }
    expect((await failure(sns.send(new CreateTopicCommand({ Name: 'q.fifo' })))).message).toMatch(/FIFO/);
    await sns.send(new CreateTopicCommand({ Name: 'with-attrs', Attributes: { DisplayName: 'one' } }));
    const err = await failure(
      sns.send(new CreateTopicCommand({ Name: 'with-attrs', Attributes: { DisplayName: 'two' } })),
    );
    expect(err.name).toBe('InvalidParameterException');
  });

  test('ListTopics lists every topic, the seeded alerts topic included, 100 per page', async () => {
    for (let i = 0; i < 105; i++) await sns.send(new CreateTopicCommand({ Name: `page-${i}` }));
    const first = await sns.send(new ListTopicsCommand({}));
    expect(first.Topics).toHaveLength(100);
    expect(first.NextToken).toBeDefined();
    const second = await sns.send(new ListTopicsCommand({ NextToken: first.NextToken }));
    expect(second.NextToken).toBeUndefined();
    const all = [...(first.Topics ?? []), ...(second.Topics ?? [])].map((t) => t.TopicArn);
    expect(new Set(all).size).toBe(all.length);
    expect(all).toEqual(
      expect.arrayContaining([
        arn('orders_v1-x'),
        arn('page-104'),
        arn(ALERTS_TOPIC_NAME),
        arn('with-attrs'),
      ]),
    );
  });
});

describe('Publish', () => {
  test('records the message with its attributes, append-only per topic', async () => {
    const TopicArn = (await sns.send(new CreateTopicCommand({ Name: 'records' }))).TopicArn!;
    const out = await sns.send(
      new PublishCommand({
        TopicArn,
        Subject: 'Hello',
        Message: '{"a":1}',
        MessageAttributes: {
          site: { DataType: 'String', StringValue: 'plant-a' },
          count: { DataType: 'Number', StringValue: '3' },
          blob: { DataType: 'Binary', BinaryValue: Buffer.from([1, 2, 3]) },
          tags: { DataType: 'String.Array', StringValue: '["x","y"]' },
        },
      }),
    );
    expect(out.MessageId).toMatch(/^[0-9a-f-]{36}$/);
    await sns.send(new PublishCommand({ TopicArn, Message: 'second' }));
    const lines = readFileSync(join(tc.dataDir, 'sns', 'messages', 'records.jsonl'), 'utf8')
      .trim()
      .split('\n');
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({
        messageId: out.MessageId,
        topicArn: TopicArn,
        subject: 'Hello',
        message: '{"a":1}',
        messageAttributes: {
          site: { DataType: 'String', StringValue: 'plant-a' },
          count: { DataType: 'Number', StringValue: '3' },
          blob: { DataType: 'Binary', BinaryValue: Buffer.from([1, 2, 3]).toString('base64') },
          tags: { DataType: 'String.Array', StringValue: '["x","y"]' },
        },
        publisher: expect.stringMatching(/:root$/),
      }),
      expect.objectContaining({ message: 'second', messageAttributes: {} }),
    ]);
  });

  test('answers the documented errors', async () => {
    const TopicArn = (await sns.send(new CreateTopicCommand({ Name: 'errors' }))).TopicArn!;
    const missing = await failure(sns.send(new PublishCommand({ TopicArn: arn('nope'), Message: 'x' })));
    expect(missing.name).toBe('NotFoundException');
    expect(missing.$metadata.httpStatusCode).toBe(404);
    const empty = await failure(sns.send(new PublishCommand({ TopicArn, Message: '' })));
    expect(empty.name).toBe('InvalidParameterException');
    const tooLong = await failure(
      sns.send(new PublishCommand({ TopicArn, Message: 'x'.repeat(256 * 1024 + 1) })),
    );
    expect(tooLong.message).toMatch(/too long/);
    const subject = await failure(sns.send(new PublishCommand({ TopicArn, Message: 'x', Subject: 'a\nb' })));
    expect(subject.message).toMatch(/Subject/);
    const structure = await failure(
      sns.send(new PublishCommand({ TopicArn, Message: '{"email":"x"}', MessageStructure: 'json' })),
    );
    expect(structure.message).toMatch(/default/);
    const badType = await failure(
      sns.send(
        new PublishCommand({
          TopicArn,
          Message: 'x',
          MessageAttributes: { n: { DataType: 'Number', StringValue: 'twelve' } },
        }),
      ),
    );
    expect(badType.name).toBe('InvalidParameterValueException');
    const tooMany = await failure(
      sns.send(
        new PublishCommand({
          TopicArn,
          Message: 'x',
          MessageAttributes: Object.fromEntries(
            Array.from({ length: 11 }, (_, i) => [`a${i}`, { DataType: 'String', StringValue: 'v' }]),
          ),
        }),
      ),
    );
    expect(tooMany.name).toBe('InvalidParameterValueException');
  });

  test("authorizes sns:Publish on the topic ARN with the caller's role policies", async () => {
    const topic = alertsTopicArn(tc.cloud.options.region, tc.cloud.options.accountId);
    const other = (await sns.send(new CreateTopicCommand({ Name: 'not-for-functions' }))).TopicArn!;
    // The frame analysis function's role may publish alerts, and nothing else.
    const session = tc.cloud.iam.issueRoleSession('edgefleet-frame-analysis', 'sns-test');
    const asFunction = new SNSClient({
      region: tc.cloud.options.region,
      endpoint: tc.cloud.endpoints.httpUrl,
      credentials: {
        accessKeyId: session.accessKeyId,
        secretAccessKey: session.secretAccessKey,
        sessionToken: session.sessionToken!,
      },
    });
    try {
      await expect(
        asFunction.send(new PublishCommand({ TopicArn: topic, Message: 'ok' })),
      ).resolves.toBeDefined();
      const denied = await failure(asFunction.send(new PublishCommand({ TopicArn: other, Message: 'no' })));
      expect(denied.name).toBe('AuthorizationErrorException');
      expect(denied.$metadata.httpStatusCode).toBe(403);
      expect(denied.message).toContain('SNS:Publish');
      expect((await failure(asFunction.send(new ListTopicsCommand({})))).name).toBe(
        'AuthorizationErrorException',
      );
      expect((await failure(asFunction.send(new CreateTopicCommand({ Name: 'mine' })))).name).toBe(
        'AuthorizationErrorException',
      );
    } finally {
      asFunction.destroy();
    }
  });

  test('the alerts topic delivers each message on alerts/{site} as an SNS notification', async () => {
    const tap = brokerTap(tc.cloud, 'alerts/#');
    try {
      const TopicArn = alertsTopicArn(tc.cloud.options.region, tc.cloud.options.accountId);
      const next = tap.next((m) => m.topic === 'alerts/plant-b');
      const out = await sns.send(
        new PublishCommand({
          TopicArn,
          Subject: 'Intruder',
          Message: JSON.stringify({ ruleId: 'r1' }),
          MessageAttributes: {
            site: { DataType: 'String', StringValue: 'plant-b' },
            severity: { DataType: 'String', StringValue: 'critical' },
          },
        }),
      );
      const delivered = await next;
      expect(delivered.body).toEqual({
        Type: 'Notification',
        MessageId: out.MessageId,
        TopicArn,
        Subject: 'Intruder',
        Message: '{"ruleId":"r1"}',
        Timestamp: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
        MessageAttributes: {
          site: { Type: 'String', Value: 'plant-b' },
          severity: { Type: 'String', Value: 'critical' },
        },
      });
      // Without a usable site the message is recorded but not published on MQTT.
      await sns.send(
        new PublishCommand({
          TopicArn,
          Message: 'nowhere',
          MessageAttributes: { site: { DataType: 'String', StringValue: 'a/b' } },
        }),
      );
      await tc.cloud.sns.idle();
      expect(tap.seen.map((m) => m.topic)).toEqual(['alerts/plant-b']);
    } finally {
      tap.off();
    }
  });
});
