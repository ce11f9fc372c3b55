/**
 * High-rate telemetry in the CDK app: the encrypted Kinesis stream the rule puts to, the anomaly
 * detection function and the event source mapping with bisect, retries, ReportBatchItemFailures and an
 * encrypted SQS on-failure destination. The gateway log stream: encrypted, put-only for the upload role,
 * named to the vending function.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { buildApp, type EdgefleetStack } from '../../cloud/cdk/stack.js';
import {
  GATEWAY_LOGS_SHARDS,
  GATEWAY_LOGS_STREAM,
  TELEMETRY_HR_MAPPING,
  TELEMETRY_HR_SHARDS,
  TELEMETRY_HR_STREAM,
} from '../../cloud/rules/streams.js';

let outdir: string;
let stack: EdgefleetStack;
let template: Template;

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'edgefleet-cdk-streams-'));
  const context = (
    JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as { context: object }
  ).context;
  const built = buildApp({ appProps: { outdir, context } });
  stack = built.stack;
  template = Template.fromJSON(built.app.synth().getStackArtifact(stack.artifactId).template as object);
});

afterAll(() => {
  rmSync(outdir, { recursive: true, force: true });
});

const ref = (c: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(c.node.defaultChild as Parameters<EdgefleetStack['getLogicalId']>[0]);

describe('high-rate telemetry', () => {
  test('the stream is KMS-encrypted with the documented shard count', () => {
    template.hasResourceProperties('AWS::Kinesis::Stream', {
      ShardCount: TELEMETRY_HR_SHARDS,
      StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
    });
  });

  test('the mapping bisects, retries, reports item failures and sends failures to the encrypted queue', () => {
    const m = TELEMETRY_HR_MAPPING;
    template.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
      EventSourceArn: { 'Fn::GetAtt': [ref(stack.highRateTelemetry.stream), 'Arn'] },
      FunctionName: { Ref: ref(stack.highRateTelemetry.function) },
      StartingPosition: m.startingPosition,
      BatchSize: m.batchSize,
      MaximumRetryAttempts: m.retries,
      BisectBatchOnFunctionError: true,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      DestinationConfig: {
        OnFailure: { Destination: { 'Fn::GetAtt': [ref(stack.highRateTelemetry.failureQueue), 'Arn'] } },
      },
    });
    template.hasResourceProperties('AWS::SQS::Queue', {
      KmsMasterKeyId: { 'Fn::GetAtt': [ref(stack.highRateTelemetry.key), 'Arn'] },
    });
  });

  test('the rule puts to the stream through a role allowed kinesis:PutRecord on it only', () => {
    const role = stack.topicRules.roles.get('edgefleet_telemetry_hr/kinesis');
    expect(role).toBeDefined();
    template.hasResourceProperties('AWS::Kinesis::Stream', { Name: TELEMETRY_HR_STREAM });
    template.hasResourceProperties('AWS::IoT::TopicRule', {
      TopicRulePayload: Match.objectLike({
        Sql: "SELECT *, topic(2) AS thing FROM 'dt/+/telemetry-hr'",
        Actions: [
          {
            Kinesis: Match.objectLike({
              StreamName: TELEMETRY_HR_STREAM,
              RoleArn: { 'Fn::GetAtt': [ref(role!), 'Arn'] },
              PartitionKey: '${topic(2)}',
            }),
          },
        ],
      }),
    });
    template.hasResourceProperties('AWS::IAM::Role', {
      Policies: [
        {
          PolicyName: 'kinesis',
          PolicyDocument: Match.objectLike({
            Statement: [
              Match.objectLike({
                Action: 'kinesis:PutRecord',
                Resource: { 'Fn::GetAtt': [ref(stack.highRateTelemetry.stream), 'Arn'] },
              }),
            ],
          }),
        },
      ],
    });
  });
});

describe('gateway log stream', () => {
  const streamArn = () => ({ 'Fn::GetAtt': [ref(stack.gatewayLogs.stream), 'Arn'] });

  test('is KMS-encrypted with the AWS managed key (no key grant for producers) and named for the gateways', () => {
    template.hasResourceProperties('AWS::Kinesis::Stream', {
      Name: GATEWAY_LOGS_STREAM,
      ShardCount: GATEWAY_LOGS_SHARDS,
      StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
      RetentionPeriodHours: 24,
    });
    expect(template.findOutputs('GatewayLogStreamName').GatewayLogStreamName?.Value).toEqual({
      Ref: ref(stack.gatewayLogs.stream),
    });
  });

  test('the upload role may put records into it, and nothing else of Kinesis', () => {
    const role = template.findResources('AWS::IAM::Role')[ref(stack.functions.uploadRole)];
    if (!role) throw new Error('no upload role in the template');
    const policies = (
      role.Properties as { Policies: { PolicyName: string; PolicyDocument: { Statement: unknown[] } }[] }
    ).Policies;
    const uploads = policies.find((p) => p.PolicyName === 'uploads');
    const kinesisStatements = (uploads?.PolicyDocument.Statement ?? []).filter((st) =>
      JSON.stringify(st).includes('kinesis:'),
    );
    expect(kinesisStatements).toEqual([
      { Effect: 'Allow', Action: ['kinesis:PutRecord', 'kinesis:PutRecords'], Resource: streamArn() },
    ]);
  });

  test('the vending function gets its ARN for the session policy', () => {
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ LOG_STREAM_ARN: streamArn() }) },
    });
  });
});
