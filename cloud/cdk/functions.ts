/**
 * The project's Lambda functions (cloud/functions), each with its own execution role, plus the upload
 * role that gateway credentials are sessions of.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Arn, Aws, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { credentialsTopics } from '../../protocol/credentials.js';
import {
  EVENT_ACK_FUNCTION_NAME,
  eventAckRolePolicy,
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
        uploads: iam.PolicyDocument.fromJson(uploadRolePolicy(props.dataBucket.bucketName, Aws.PARTITION)),
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
    ) =>
      new nodejs.NodejsFunction(this, id, {
        functionName: `${stack.stackName}-${name}`,
        entry: join(here, '..', 'functions', dir, 'lambda.ts'),
        handler: 'handler',
        runtime: lambda.determineLatestNodeRuntime(this),
        architecture: lambda.Architecture.ARM_64,
        role,
        logGroup,
        timeout: Duration.seconds(10),
        memorySize: 256,
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
    this.functions = { [VENDING_FUNCTION_NAME]: vending, [EVENT_ACK_FUNCTION_NAME]: eventAckFn };

    const ack = (scope: Construct, resource: unknown, reason: string) =>
      Validations.of(scope).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${flattenForNag(stack.resolve(resource))}]`,
        reason,
      });
    const dataArn = `arn:${Aws.PARTITION}:s3:::${props.dataBucket.bucketName}`;
    for (const prefix of ['raw', 'frames']) {
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
    ack(
      vendingPolicy,
      `${vendingLogs.logGroupArn}:*`,
      "Lambda names a log stream per execution environment, always inside this function's own log group",
    );
  }
}
