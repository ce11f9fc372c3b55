/**
 * The edgefleet CDK stack and the function that builds the app around it.
 *
 * The stack is environment-agnostic (no account/region): everything region- or account-specific is a
 * CloudFormation pseudo parameter, so `cdk synth` needs no credentials and no context lookups.
 */
import { App, type AppProps, Aws, CfnOutput, Duration, Stack, type StackProps, Tags } from 'aws-cdk-lib';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as rekognition from 'aws-cdk-lib/aws-rekognition';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { RULES } from '../rules/definitions.js';
import { TELEMETRY_DELIVERY_STREAM } from '../rules/lake.js';
import { DEVICE_POLICY_NAME, devicePolicyDocument } from '../rules/policies.js';
import { FACE_COLLECTION_ID } from '../rules/resources.js';
import { TELEMETRY_HR_STREAM } from '../rules/streams.js';
import { ProjectFunctions } from './functions.js';
import { DataLake } from './lake.js';
import { TopicRules } from './rules.js';
import { GatewayLogStream, HighRateTelemetry } from './streams.js';

/** Construct id of the one stack of the app (also its CloudFormation stack name). */
export const STACK_ID = 'Edgefleet';

/** Prefix under which S3 writes the data lake's server access logs in the log bucket. */
export const DATA_LAKE_ACCESS_LOG_PREFIX = 'data-lake/';

/** Prefix under which S3 writes the results bucket's server access logs in the log bucket. */
export const RESULTS_ACCESS_LOG_PREFIX = 'results/';

/** Prefix under which S3 writes the firmware bucket's server access logs in the log bucket. */
export const FIRMWARE_ACCESS_LOG_PREFIX = 'firmware/';

export interface EdgefleetStackProps extends StackProps {
  /** Name of the IoT policy attached to every gateway certificate (default {@link DEVICE_POLICY_NAME}). */
  readonly devicePolicyName?: string;
}

export class EdgefleetStack extends Stack {
  /** Customer managed key that encrypts the data lake. */
  readonly dataLakeKey: kms.Key;
  /** The data lake: gateway batches, Firehose output and analysed frames. */
  readonly dataLakeBucket: s3.Bucket;
  /** Destination of the data lake's S3 server access logs. */
  readonly accessLogsBucket: s3.Bucket;
  /** `AWS::IoT::Policy` attached to gateway certificates (by JITR activation). */
  readonly devicePolicy: iot.CfnPolicy;
  /** High-rate telemetry: the Kinesis stream, the anomaly detection function and their mapping. */
  readonly highRateTelemetry: HighRateTelemetry;
  /** The Kinesis stream gateways ship their log lines to (with the upload role's sessions). */
  readonly gatewayLogs: GatewayLogStream;
  /** The project's IoT rules (cloud/rules), with their roles and permissions. */
  readonly topicRules: TopicRules;
  /** The project's Lambda functions and the gateways' upload role. */
  readonly functions: ProjectFunctions;
  /** Frame analysis results and the operators' alert rules (`config/alert-rules.json`). */
  readonly resultsBucket: s3.Bucket;
  /** Customer managed key of the firmware bucket (operators who presign download URLs need kms:Decrypt). */
  readonly firmwareKey: kms.Key;
  /** Firmware artifacts (`firmware/{target}/{version}/{sha256}.bin`) and signed manifests (`manifests/`). */
  readonly firmwareBucket: s3.Bucket;
  /** Customer managed key of the alerts topic. */
  readonly alertsKey: kms.Key;
  /** Alerts raised by the frame analysis function's rules. */
  readonly alertsTopic: sns.Topic;
  /** The Rekognition face collection identification frames are searched against. */
  readonly faceCollection: rekognition.CfnCollection;
  /** Firehose delivery into the lake, its Glue tables and views, and the Athena workgroup. */
  readonly dataLake: DataLake;

  constructor(scope: Construct, id: string, props: EdgefleetStackProps = {}) {
    const { devicePolicyName = DEVICE_POLICY_NAME, ...stackProps } = props;
    super(scope, id, {
      description: 'edgefleet: data lake, IoT policy, rules and functions for Greengrass gateways',
      ...stackProps,
    });

    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogsBucket', {
      // S3 log delivery writes into this bucket; SSE-S3 is the default encryption it supports
      // without extra key policy grants. The bucket has no access logs of its own (it would log
      // its own log deliveries); cdk-nag's S1 accepts that for a bucket that is a log destination.
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      lifecycleRules: [
        { id: 'expire-access-logs', expiration: Duration.days(365) },
        { id: 'expire-old-log-versions', noncurrentVersionExpiration: Duration.days(30) },
      ],
    });

    this.dataLakeKey = new kms.Key(this, 'DataLakeKey', {
      description: 'edgefleet data lake encryption key',
      enableKeyRotation: true,
    });

    // Data and results: KMS (the data-lake key), private, TLS-only, versioned, with access logs.
    const secureBucket = (
      id: string,
      accessLogPrefix: string,
      lifecycleRules: s3.LifecycleRule[],
      extra: Partial<s3.BucketProps> = {},
    ) =>
      new s3.Bucket(this, id, {
        encryption: s3.BucketEncryption.KMS,
        encryptionKey: this.dataLakeKey,
        bucketKeyEnabled: true,
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        enforceSSL: true,
        minimumTLSVersion: 1.2,
        versioned: true,
        serverAccessLogsBucket: this.accessLogsBucket,
        serverAccessLogsPrefix: accessLogPrefix,
        lifecycleRules,
        ...extra,
      });
    this.dataLakeBucket = secureBucket(
      'DataLakeBucket',
      DATA_LAKE_ACCESS_LOG_PREFIX,
      [
        // Gateways upload large batches and frames with multipart uploads over flaky links.
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
      {
        // The lake's storage tiers (DataLake, LAKE_TRANSITIONS) leave objects under 128 KiB in STANDARD.
        transitionDefaultMinimumObjectSize: s3.TransitionDefaultMinimumObjectSize.ALL_STORAGE_CLASSES_128_K,
      },
    );
    this.resultsBucket = secureBucket('ResultsBucket', RESULTS_ACCESS_LOG_PREFIX, [
      // A result is rewritten when a frame is analysed again; older versions are not needed for long.
      { id: 'expire-old-result-versions', noncurrentVersionExpiration: Duration.days(30) },
    ]);

    // Firmware: its own key, so that who may presign download URLs (kms:Decrypt) is decided apart from
    // who may read the lake. A presigned URL carries the signer's permissions, so the operator who runs
    // a rollout needs s3:GetObject on the artifacts and kms:Decrypt on this key.
    this.firmwareKey = new kms.Key(this, 'FirmwareKey', {
      description: 'edgefleet firmware bucket encryption key',
      enableKeyRotation: true,
    });
    this.firmwareBucket = secureBucket(
      'FirmwareBucket',
      FIRMWARE_ACCESS_LOG_PREFIX,
      [
        // Manifests are written once per version; overwritten or deleted objects are kept a while for audit.
        { id: 'expire-old-firmware-versions', noncurrentVersionExpiration: Duration.days(90) },
        // Big artifacts go up as multipart uploads.
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(7) },
      ],
      { encryptionKey: this.firmwareKey },
    );

    this.alertsKey = new kms.Key(this, 'AlertsKey', {
      description: 'edgefleet alerts topic encryption key',
      enableKeyRotation: true,
    });
    this.alertsTopic = new sns.Topic(this, 'AlertsTopic', {
      displayName: 'edgefleet alerts',
      masterKey: this.alertsKey,
      enforceSSL: true,
    });

    this.faceCollection = new rekognition.CfnCollection(this, 'FaceCollection', {
      collectionId: FACE_COLLECTION_ID,
    });

    this.devicePolicy = new iot.CfnPolicy(this, 'DevicePolicy', {
      policyName: devicePolicyName,
      // Aws.REGION / Aws.ACCOUNT_ID are tokens; CDK renders the ARNs with Fn::Join, which leaves the
      // IoT policy variables (`${iot:Connection.Thing.ThingName}`) untouched.
      policyDocument: devicePolicyDocument(Aws.REGION, Aws.ACCOUNT_ID),
    });

    this.gatewayLogs = new GatewayLogStream(this, 'GatewayLogs');

    this.functions = new ProjectFunctions(this, 'Functions', {
      logStream: this.gatewayLogs.stream,
      dataBucket: this.dataLakeBucket,
      dataKey: this.dataLakeKey,
      resultsBucket: this.resultsBucket,
      alertsTopic: this.alertsTopic,
      alertsKey: this.alertsKey,
      devicePolicy: this.devicePolicy,
    });

    this.dataLake = new DataLake(this, 'DataLake', {
      dataBucket: this.dataLakeBucket,
      dataKey: this.dataLakeKey,
      resultsBucket: this.resultsBucket,
      accessLogsBucket: this.accessLogsBucket,
    });

    this.highRateTelemetry = new HighRateTelemetry(this, 'HighRateTelemetry');

    this.topicRules = new TopicRules(this, 'TopicRules', {
      rules: RULES,
      functions: this.functions.functions,
      deliveryStreams: { [TELEMETRY_DELIVERY_STREAM]: this.dataLake.telemetryDeliveryStream.attrArn },
      dataStreams: { [TELEMETRY_HR_STREAM]: this.highRateTelemetry.stream.streamArn },
    });

    new CfnOutput(this, 'DataLakeBucketName', {
      description: 'Name of the S3 data lake bucket',
      value: this.dataLakeBucket.bucketName,
    });
    new CfnOutput(this, 'DataLakeKeyArn', {
      description: 'ARN of the KMS key that encrypts the data lake',
      value: this.dataLakeKey.keyArn,
    });
    new CfnOutput(this, 'ResultsBucketName', {
      description:
        'Name of the results bucket: frame analysis results, alert rules (config/alert-rules.json), JITR allow-list and CRLs (config/jitr/)',
      value: this.resultsBucket.bucketName,
    });
    new CfnOutput(this, 'FirmwareBucketName', {
      description:
        'Name of the firmware bucket: artifacts (firmware/{target}/{version}/{sha256}.bin) and signed manifests (manifests/{target}/{version}.json)',
      value: this.firmwareBucket.bucketName,
    });
    new CfnOutput(this, 'AlertsTopicArn', {
      description: 'ARN of the SNS topic alerts are published to',
      value: this.alertsTopic.topicArn,
    });
    new CfnOutput(this, 'TelemetryDeliveryStreamName', {
      description: 'Name of the Firehose delivery stream of streaming telemetry (lake/telemetry/)',
      value: this.dataLake.telemetryDeliveryStream.ref,
    });
    new CfnOutput(this, 'LakeDatabaseName', {
      description:
        'Glue database (Athena schema) of the data lake views: telemetry, events, frames, analysis',
      value: this.dataLake.database.ref,
    });
    new CfnOutput(this, 'AthenaWorkGroupName', {
      description: 'Athena workgroup to query the data lake in (results encrypted, settings enforced)',
      value: this.dataLake.workGroup.ref,
    });
    new CfnOutput(this, 'LakePartitionRegistrarArn', {
      description: 'State machine that registers the partitions of new lake objects in Glue',
      value: this.dataLake.partitionRegistrar.stateMachineArn,
    });
    new CfnOutput(this, 'GatewayLogStreamName', {
      description: 'Name of the Kinesis stream gateways ship their log lines to',
      value: this.gatewayLogs.stream.streamName,
    });
    new CfnOutput(this, 'DevicePolicyName', {
      description: 'Name of the IoT policy attached to gateway certificates',
      value: this.devicePolicy.ref,
    });
  }
}

export interface BuildAppOptions {
  /** Props of the CDK App (outdir, context, ...). The CLI passes cdk.json's context through the environment. */
  readonly appProps?: AppProps;
  /** Props of the stack. */
  readonly stackProps?: EdgefleetStackProps;
}

export interface EdgefleetApp {
  readonly app: App;
  readonly stack: EdgefleetStack;
}

/**
 * Builds the app with its stack, without synthesizing it and without validation plugins, so that
 * tests can synthesize it in-process exactly like `cloud/cdk/app.ts` does under the CDK CLI.
 */
export function buildApp(options: BuildAppOptions = {}): EdgefleetApp {
  const app = new App(options.appProps);
  const stack = new EdgefleetStack(app, STACK_ID, options.stackProps);
  Tags.of(app).add('project', 'edgefleet');
  return { app, stack };
}
