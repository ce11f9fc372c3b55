/**
 * High-rate telemetry: the Kinesis data stream the `edgefleet_telemetry_hr` rule puts to (KMS
 * server-side encryption with the `aws/kinesis` key, so neither the rule's role nor the mapping needs a
 * key grant), the anomaly detection function, and the event source mapping between them (bisect on
 * error, bounded retries, ReportBatchItemFailures), whose on-failure destination is an SQS queue
 * encrypted with its own customer managed key. And the gateway log stream (`GatewayLogStream`), which
 * gateways' log shippers put their log lines into.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Arn, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ALERTS_TOPIC_PREFIX, ANOMALY_DETECTION_FUNCTION_NAME } from '../rules/resources.js';
import {
  GATEWAY_LOGS_SHARDS,
  GATEWAY_LOGS_STREAM,
  TELEMETRY_HR_MAPPING,
  TELEMETRY_HR_SHARDS,
  TELEMETRY_HR_STREAM,
} from '../rules/streams.js';
import { flattenForNag } from './rules.js';

const here = fileURLToPath(new URL('.', import.meta.url));

export class HighRateTelemetry extends Construct {
  readonly key: kms.Key;
  readonly stream: kinesis.Stream;
  readonly function: nodejs.NodejsFunction;
  /** Where the mapping sends the records the function could not process. */
  readonly failureQueue: sqs.Queue;

  /**
   * The failure queue as the mapping's on-failure destination, granting exactly what sending needs
   * (SqsDlq would grant the key's wildcard actions kms:GenerateDataKey* and kms:ReEncrypt*).
   */
  private failureDestination(): lambda.IEventSourceDlq {
    const queue = this.failureQueue;
    const key = this.key;
    return {
      bind: (_mapping, handler) => {
        handler.addToRolePolicy(
          new iam.PolicyStatement({
            actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'],
            resources: [queue.queueArn],
          }),
        );
        handler.addToRolePolicy(
          new iam.PolicyStatement({
            actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
            resources: [key.keyArn],
          }),
        );
        return { destination: queue.queueArn };
      },
    };
  }

  constructor(scope: Construct, id: string) {
    super(scope, id);
    const stack = Stack.of(this);
    this.key = new kms.Key(this, 'Key', {
      description: 'edgefleet high-rate telemetry failure queue encryption key',
      enableKeyRotation: true,
    });
    // Named as the rule's kinesis action names it (cloud/rules/streams.ts).
    this.stream = new kinesis.Stream(this, 'Stream', {
      streamName: TELEMETRY_HR_STREAM,
      shardCount: TELEMETRY_HR_SHARDS,
      encryption: kinesis.StreamEncryption.MANAGED,
      retentionPeriod: Duration.hours(24),
    });
    this.failureQueue = new sqs.Queue(this, 'FailureQueue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: this.key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    const logGroup = new logs.LogGroup(this, 'AnomalyDetectionLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
    });
    const role = new iam.Role(this, 'AnomalyDetectionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Execution role of the anomaly detection function',
    });
    const alertsArn = Arn.format(
      { service: 'iot', resource: 'topic', resourceName: `${ALERTS_TOPIC_PREFIX}*` },
      stack,
    );
    const policy = new iam.Policy(this, 'AnomalyDetectionPolicy', {
      statements: [
        new iam.PolicyStatement({ actions: ['iot:Publish'], resources: [alertsArn] }),
        new iam.PolicyStatement({
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [`${logGroup.logGroupArn}:*`],
        }),
      ],
    });
    role.attachInlinePolicy(policy);
    this.function = new nodejs.NodejsFunction(this, 'AnomalyDetection', {
      functionName: `${stack.stackName}-${ANOMALY_DETECTION_FUNCTION_NAME}`,
      entry: join(here, '..', 'functions', 'anomaly-detection', 'lambda.ts'),
      handler: 'handler',
      runtime: lambda.determineLatestNodeRuntime(this),
      architecture: lambda.Architecture.ARM_64,
      role,
      logGroup,
      timeout: Duration.seconds(60),
      memorySize: 512,
      bundling: { format: nodejs.OutputFormat.CJS, target: 'node20', minify: true, sourceMap: false },
    });
    this.function.node.addDependency(policy);
    const m = TELEMETRY_HR_MAPPING;
    this.function.addEventSource(
      new sources.KinesisEventSource(this.stream, {
        startingPosition: lambda.StartingPosition[m.startingPosition],
        batchSize: m.batchSize,
        maxBatchingWindow: Duration.seconds(m.windowSeconds),
        retryAttempts: m.retries,
        bisectBatchOnError: m.bisect,
        reportBatchItemFailures: m.reportBatchItemFailures,
        onFailure: this.failureDestination(),
      }),
    );

    const ack = (resource: unknown, reason: string) =>
      Validations.of(policy).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${flattenForNag(stack.resolve(resource))}]`,
        reason,
      });
    ack(
      alertsArn,
      'Alerts go to the site of each reading (alerts/{site}); the site is known only per record',
    );
    ack(
      `${logGroup.logGroupArn}:*`,
      "Lambda names a log stream per execution environment, always inside this function's own log group",
    );
    Validations.of(this.failureQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason:
        'This queue is itself the on-failure destination of the event source mapping; a dead-letter queue behind it would have no consumer either',
    });
  }
}

/**
 * The gateway log stream: gateways put their log lines into it with PutRecords, with the temporary
 * credentials of the upload role (whose policy and session policies name this stream). Server-side
 * encryption uses the `aws/kinesis` key: with the AWS managed key a producer needs no KMS permission
 * (a customer managed key would need kms:GenerateDataKey for every producer, here every gateway
 * session, and cdk-nag's KDS3 asks for the managed key).
 */
export class GatewayLogStream extends Construct {
  readonly stream: kinesis.Stream;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    // Named as the gateways' configuration defaults to (protocol/logs.ts).
    this.stream = new kinesis.Stream(this, 'Stream', {
      streamName: GATEWAY_LOGS_STREAM,
      shardCount: GATEWAY_LOGS_SHARDS,
      encryption: kinesis.StreamEncryption.MANAGED,
      retentionPeriod: Duration.hours(24),
    });
  }
}
