/**
 * The project's Lambda functions (cloud/functions), each with its own execution role, plus the upload
 * role that gateway credentials are sessions of.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Arn, Aws, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as iot from 'aws-cdk-lib/aws-iot';
import type * as kinesis from 'aws-cdk-lib/aws-kinesis';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { credentialsTopics } from '../../protocol/credentials.js';
import { JITR_ACTIVATION_FUNCTION_NAME, JITR_CRL_PREFIX, jitrActivationRolePolicy } from '../rules/jitr.js';
import {
  EVENT_ACK_FUNCTION_NAME,
  eventAckRolePolicy,
  FACE_COLLECTION_ID,
  FRAME_ANALYSIS_FUNCTION_NAME,
  FRAME_PREFIXES,
  frameAnalysisRolePolicy,
  UPLOAD_ROLE_NAME,
  uploadRolePolicy,
  VENDED_CREDENTIALS_SECONDS,
  VENDING_FUNCTION_NAME,
} from '../rules/resources.js';
import { flattenForNag } from './rules.js';

const here = fileURLToPath(new URL('.', import.meta.url));

export interface ProjectFunctionsProps {
  readonly dataBucket: s3.IBucket;
  readonly dataKey: kms.IKey;
  /** Frame analysis results and alert rules; encrypted with `dataKey`. */
  readonly resultsBucket: s3.IBucket;
  readonly alertsTopic: sns.ITopic;
  readonly alertsKey: kms.IKey;
  /** The IoT policy JITR activation attaches to new certificates (it must exist before activations). */
  readonly devicePolicy: iot.CfnPolicy;
  /** The gateway log stream: upload-role sessions may put records into it (LOG_STREAM_ARN of vending). */
  readonly logStream: kinesis.IStream;
}

export class ProjectFunctions extends Construct {
  /** Functions by name, for the lambda actions of the topic rules. */
  readonly functions: Record<string, lambda.IFunction>;
  /** The role whose sessions gateways upload with. */
  readonly uploadRole: iam.Role;

  constructor(scope: Construct, id: string, props: ProjectFunctionsProps) {
    super(scope, id);
    const stack = Stack.of(this);

    const vendingLogs = new logs.LogGroup(this, 'CredentialVendingLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
    });
    const vendingRole = new iam.Role(this, 'CredentialVendingRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Execution role of the credential vending function',
    });

    this.uploadRole = new iam.Role(this, 'UploadRole', {
      roleName: `${stack.stackName}-${UPLOAD_ROLE_NAME}`,
      assumedBy: new iam.ArnPrincipal(vendingRole.roleArn),
      maxSessionDuration: Duration.seconds(Math.max(3600, VENDED_CREDENTIALS_SECONDS)),
      description: 'Gateway uploads: sessions are narrowed to one thing by the session policy',
      inlinePolicies: {
        uploads: iam.PolicyDocument.fromJson(
          uploadRolePolicy(props.dataBucket.bucketName, Aws.PARTITION, props.logStream.streamArn),
        ),
        dataKey: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
              resources: [props.dataKey.keyArn],
            }),
          ],
        }),
      },
    });

    const responseTopicArn = Arn.format(
      { service: 'iot', resource: 'topic', resourceName: credentialsTopics('*').response },
      stack,
    );
    const vendingPolicy = new iam.Policy(this, 'CredentialVendingPolicy', {
      statements: [
        new iam.PolicyStatement({ actions: ['sts:AssumeRole'], resources: [this.uploadRole.roleArn] }),
        new iam.PolicyStatement({ actions: ['iot:Publish'], resources: [responseTopicArn] }),
        new iam.PolicyStatement({
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [`${vendingLogs.logGroupArn}:*`],
        }),
      ],
    });
    vendingRole.attachInlinePolicy(vendingPolicy);

    const fn = (
      id: string,
      name: string,
      dir: string,
      role: iam.IRole,
      logGroup: logs.ILogGroup,
      environment: Record<string, string>,
      size: { timeout?: Duration; memorySize?: number } = {},
    ) =>
      new nodejs.NodejsFunction(this, id, {
        functionName: `${stack.stackName}-${name}`,
        entry: join(here, '..', 'functions', dir, 'lambda.ts'),
        handler: 'handler',
        runtime: lambda.determineLatestNodeRuntime(this),
        architecture: lambda.Architecture.ARM_64,
        role,
        logGroup,
        timeout: size.timeout ?? Duration.seconds(10),
        memorySize: size.memorySize ?? 256,
        environment,
        // CommonJS output: bundled CommonJS dependencies (pino, the SDK) keep their require() calls working.
        bundling: { format: nodejs.OutputFormat.CJS, target: 'node20', minify: true, sourceMap: false },
      });

    const vending = fn(
      'CredentialVending',
      VENDING_FUNCTION_NAME,
      'credential-vending',
      vendingRole,
      vendingLogs,
      {
        UPLOAD_ROLE_ARN: this.uploadRole.roleArn,
        DATA_BUCKET: props.dataBucket.bucketName,
        CREDENTIALS_DURATION_SECONDS: String(VENDED_CREDENTIALS_SECONDS),
        AWS_PARTITION: Aws.PARTITION,
        LOG_STREAM_ARN: props.logStream.streamArn,
      },
    );

    // Event acknowledgements: each event is written once under events/ and acknowledged to the gateway.
    const ackLogs = new logs.LogGroup(this, 'EventAckLogs', { retention: logs.RetentionDays.ONE_MONTH });
    const ackRole = new iam.Role(this, 'EventAckRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Execution role of the event acknowledgement function',
    });
    const ackPolicy = new iam.Policy(this, 'EventAckPolicy', {
      document: iam.PolicyDocument.fromJson(
        eventAckRolePolicy(props.dataBucket.bucketName, Aws.REGION, Aws.ACCOUNT_ID, Aws.PARTITION),
      ),
      statements: [
        new iam.PolicyStatement({ actions: ['kms:GenerateDataKey'], resources: [props.dataKey.keyArn] }),
        new iam.PolicyStatement({
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [`${ackLogs.logGroupArn}:*`],
        }),
      ],
    });
    ackRole.attachInlinePolicy(ackPolicy);
    const eventAckFn = fn('EventAck', EVENT_ACK_FUNCTION_NAME, 'event-ack', ackRole, ackLogs, {
      DATA_BUCKET: props.dataBucket.bucketName,
    });

    // Frame analysis: S3 invokes it for new frames; Rekognition, results, summaries and alerts.
    const analysisLogs = new logs.LogGroup(this, 'FrameAnalysisLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
    });
    const analysisRole = new iam.Role(this, 'FrameAnalysisRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Execution role of the frame analysis function',
    });
    const analysisPolicy = new iam.Policy(this, 'FrameAnalysisPolicy', {
      document: iam.PolicyDocument.fromJson(
        frameAnalysisRolePolicy({
          dataBucket: props.dataBucket.bucketName,
          resultsBucket: props.resultsBucket.bucketName,
          topicArn: props.alertsTopic.topicArn,
          region: Aws.REGION,
          account: Aws.ACCOUNT_ID,
          partition: Aws.PARTITION,
        }),
      ),
      statements: [
        // Frames and rules are read (also by Rekognition, with the function's permissions) and results
        // written under the data key; the alerts topic's key encrypts what the function publishes.
        new iam.PolicyStatement({
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: [props.dataKey.keyArn, props.alertsKey.keyArn],
        }),
        new iam.PolicyStatement({
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [`${analysisLogs.logGroupArn}:*`],
        }),
      ],
    });
    analysisRole.attachInlinePolicy(analysisPolicy);
    const frameAnalysisFn = fn(
      'FrameAnalysis',
      FRAME_ANALYSIS_FUNCTION_NAME,
      'frame-analysis',
      analysisRole,
      analysisLogs,
      {
        RESULTS_BUCKET: props.resultsBucket.bucketName,
        ALERT_TOPIC_ARN: props.alertsTopic.topicArn,
        FACE_COLLECTION_ID,
      },
      { timeout: Duration.seconds(60), memorySize: 512 },
    );
    // The policy must exist before S3 can invoke the function with it.
    frameAnalysisFn.node.addDependency(analysisPolicy);
    for (const prefix of FRAME_PREFIXES) {
      props.dataBucket.addEventNotification(
        s3.EventType.OBJECT_CREATED,
        new s3n.LambdaDestination(frameAnalysisFn),
        { prefix },
      );
    }

    // JITR activation: the rule edgefleet_jitr invokes it for every certificate registered just in time.
    const devicePolicyName = props.devicePolicy.policyName;
    if (devicePolicyName === undefined) throw new Error('the device policy must have a name');
    const jitrLogs = new logs.LogGroup(this, 'JitrActivationLogs', {
      retention: logs.RetentionDays.ONE_MONTH,
    });
    const jitrRole = new iam.Role(this, 'JitrActivationRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Execution role of the JITR activation function',
    });
    const jitrPolicy = new iam.Policy(this, 'JitrActivationPolicy', {
      document: iam.PolicyDocument.fromJson(
        jitrActivationRolePolicy({
          resultsBucket: props.resultsBucket.bucketName,
          region: Aws.REGION,
          account: Aws.ACCOUNT_ID,
          partition: Aws.PARTITION,
          devicePolicyName,
        }),
      ),
      statements: [
        // The allow-list and the CRLs are stored under the data key.
        new iam.PolicyStatement({ actions: ['kms:Decrypt'], resources: [props.dataKey.keyArn] }),
        new iam.PolicyStatement({
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [`${jitrLogs.logGroupArn}:*`],
        }),
      ],
    });
    jitrRole.attachInlinePolicy(jitrPolicy);
    const jitrFn = fn(
      'JitrActivation',
      JITR_ACTIVATION_FUNCTION_NAME,
      'jitr-activation',
      jitrRole,
      jitrLogs,
      { RESULTS_BUCKET: props.resultsBucket.bucketName, DEVICE_POLICY_NAME: devicePolicyName },
      { timeout: Duration.seconds(30) },
    );
    // The policy must exist before IoT can invoke the function with it, and the device policy before the
    // function would create a policy of the same name itself (which the stack would then fail to create).
    jitrFn.node.addDependency(jitrPolicy, props.devicePolicy);

    this.functions = {
      [VENDING_FUNCTION_NAME]: vending,
      [EVENT_ACK_FUNCTION_NAME]: eventAckFn,
      [FRAME_ANALYSIS_FUNCTION_NAME]: frameAnalysisFn,
      [JITR_ACTIVATION_FUNCTION_NAME]: jitrFn,
    };

    const ack = (scope: Construct, resource: unknown, reason: string) =>
      Validations.of(scope).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${flattenForNag(stack.resolve(resource))}]`,
        reason,
      });
    const dataArn = `arn:${Aws.PARTITION}:s3:::${props.dataBucket.bucketName}`;
    for (const prefix of ['raw', 'frames', 'frames-identify']) {
      ack(
        this.uploadRole,
        `${dataArn}/${prefix}/*`,
        `The upload role is the ceiling for every gateway; each session is narrowed to ${prefix}/{thing}/ by the session policy the vending function passes to AssumeRole`,
      );
    }
    ack(
      vendingPolicy,
      responseTopicArn,
      "The vending function answers every gateway on that gateway's own response topic; the thing is known only per request",
    );
    ack(
      ackPolicy,
      `${dataArn}/events/*`,
      'Each event is stored under its own message id, known only per request; the function may only create objects there',
    );
    ack(
      ackPolicy,
      Arn.format({ service: 'iot', resource: 'topic', resourceName: 'things/*/ack' }, stack),
      "The function acknowledges every gateway on that gateway's own ack topic; the thing is known only per request",
    );
    ack(
      ackPolicy,
      `${ackLogs.logGroupArn}:*`,
      "Lambda names a log stream per execution environment, always inside this function's own log group",
    );
    for (const prefix of FRAME_PREFIXES) {
      ack(
        analysisPolicy,
        `${dataArn}/${prefix}*`,
        `S3 invokes the function for every new frame under ${prefix}; it (and Rekognition, with its permissions) may only read objects there`,
      );
    }
    ack(
      analysisPolicy,
      `arn:${Aws.PARTITION}:s3:::${props.resultsBucket.bucketName}/results/*`,
      'Each frame has its own result object whose key is derived from the frame key; the function may only write under results/',
    );
    ack(
      analysisPolicy,
      '*',
      'rekognition:DetectLabels and rekognition:DetectFaces support no resource-level permissions (the Service Authorization Reference lists no resource type for them); SearchFacesByImage is scoped to the collection',
    );
    ack(
      analysisPolicy,
      Arn.format({ service: 'iot', resource: 'topic', resourceName: 'things/*/analysis' }, stack),
      "The function publishes each frame's summary on that gateway's own analysis topic; the thing is known only per frame",
    );
    ack(
      analysisPolicy,
      `${analysisLogs.logGroupArn}:*`,
      "Lambda names a log stream per execution environment, always inside this function's own log group",
    );
    // The S3 -> Lambda notification is configured by CDK's BucketNotificationsHandler custom resource
    // (a direct NotificationConfiguration would make the bucket, the function's policy and the invoke
    // permission depend on each other in a cycle).
    const notificationsHandler = stack.node
      .findAll()
      .find((c) => c.node.id.startsWith('BucketNotificationsHandler') && c.node.scope === stack);
    const notificationsRole = notificationsHandler?.node.tryFindChild('Role');
    if (notificationsRole) {
      Validations.of(notificationsRole).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        reason:
          "CDK's BucketNotificationsHandler is a CDK-owned singleton that only writes its own logs; the managed basic execution policy is how CDK creates it and cannot be replaced from outside",
      });
    }
    const iotArn = (resource: string) =>
      `arn:${Aws.PARTITION}:iot:${Aws.REGION}:${Aws.ACCOUNT_ID}:${resource}`;
    ack(
      jitrPolicy,
      iotArn('cert/*'),
      'Device certificates are registered just in time by AWS IoT; the function acts only on the certificate each event names (describe, attach, set status), whose id is unknown at deploy time',
    );
    ack(
      jitrPolicy,
      iotArn('cacert/*'),
      'Installers register their CAs after deployment; the function only describes the CA certificate that issued the certificate of each event, to verify its signature and CRL',
    );
    ack(
      jitrPolicy,
      iotArn('thing/*'),
      'Thing names are the common names of device certificates, known only per event; the function may only create things (iot:CreateThing) there',
    );
    ack(
      jitrPolicy,
      `arn:${Aws.PARTITION}:s3:::${props.resultsBucket.bucketName}/${JITR_CRL_PREFIX}*`,
      'Each registered CA has its own CRL object under config/jitr/crl/, named by the CA certificate id; the function may only read objects there',
    );
    ack(
      jitrPolicy,
      `${jitrLogs.logGroupArn}:*`,
      "Lambda names a log stream per execution environment, always inside this function's own log group",
    );
    ack(
      vendingPolicy,
      `${vendingLogs.logGroupArn}:*`,
      "Lambda names a log stream per execution environment, always inside this function's own log group",
    );
  }
}
