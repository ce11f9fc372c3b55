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

    const vending = new nodejs.NodejsFunction(this, 'CredentialVending', {
      functionName: `${stack.stackName}-${VENDING_FUNCTION_NAME}`,
      entry: join(here, '..', 'functions', 'credential-vending', 'lambda.ts'),
      handler: 'handler',
      runtime: lambda.determineLatestNodeRuntime(this),
      architecture: lambda.Architecture.ARM_64,
      role: vendingRole,
      logGroup: vendingLogs,
      timeout: Duration.seconds(10),
      memorySize: 256,
      environment: {
        UPLOAD_ROLE_ARN: this.uploadRole.roleArn,
        DATA_BUCKET: props.dataBucket.bucketName,
        CREDENTIALS_DURATION_SECONDS: String(VENDED_CREDENTIALS_SECONDS),
        AWS_PARTITION: Aws.PARTITION,
      },
      // CommonJS output: bundled CommonJS dependencies (pino, the SDK) keep their require() calls working.
      bundling: { format: nodejs.OutputFormat.CJS, target: 'node20', minify: true, sourceMap: false },
    });
    this.functions = { [VENDING_FUNCTION_NAME]: vending };

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
      vendingPolicy,
      `${vendingLogs.logGroupArn}:*`,
      "Lambda names a log stream per execution environment, always inside this function's own log group",
    );
  }
}
