/**
 * `AWS::IoT::TopicRule` resources built from the rule definitions of cloud/rules, with least-privilege
 * access for each rule:
 *
 * - one IAM role per rule and action type (republish, firehose, s3), trusted only by AWS IoT acting for
 *   that rule ("Granting an AWS IoT rule the access it requires", "Cross-service confused deputy
 *   prevention": `aws:SourceAccount` and `aws:SourceArn` conditions), with exactly the operations the
 *   action type performs on exactly the resources the rule's actions name:
 *   - republish: `iot:Publish` on the topic ARN, substitution templates (`${...}`) widened to `*`;
 *   - firehose: `firehose:PutRecord` (plus `firehose:PutRecordBatch` with batchMode) on the stream;
 *   - s3: `s3:PutObject` (plus `s3:PutObjectAcl` with a canned ACL) on the bucket's objects under the
 *     key pattern, and `kms:GenerateDataKey` on the bucket's KMS key when it has one;
 * - lambda: a resource-based permission on the function for `iot.amazonaws.com`, limited to the rule by
 *   SourceArn and SourceAccount (the "Lambda" rule action's requirements).
 *
 * The SQL version is always written: CloudFormation falls back to 2015-10-08 when it is left out.
 */
import { ArnFormat, Aws, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import {
  type FirehoseAction,
  hasSubstitution,
  type KinesisAction,
  type LambdaAction,
  type RepublishAction,
  type RuleAction,
  type RuleActionType,
  republishTarget,
  type S3Action,
  substitutionPattern,
} from '../rules/actions.js';
import type { RuleDefinition } from '../rules/definitions.js';

export interface TopicRulesProps {
  /** The rule definitions (cloud/rules). */
  readonly rules: readonly RuleDefinition[];
  /** Functions by the name lambda actions use. */
  readonly functions?: Readonly<Record<string, lambda.IFunction>>;
  /** Firehose delivery stream ARNs by the stream name firehose actions use. */
  readonly deliveryStreams?: Readonly<Record<string, string>>;
  /** Buckets by the name s3 actions use. */
  readonly buckets?: Readonly<Record<string, s3.IBucket>>;
  /** Kinesis data stream ARNs by the stream name kinesis actions use. */
  readonly dataStreams?: Readonly<Record<string, string>>;
}

/** The part of a rule built for one action type: its role (none for lambda) and statements. */
interface RoleGrant {
  statements: iam.PolicyStatement[];
  /** Resources that hold a wildcard only because a substitution template fills them per message. */
  templated: { resource: string; param: string; template: string }[];
}

const ROLE_IDS: Record<Exclude<RuleActionType, 'lambda'>, string> = {
  republish: 'RepublishRole',
  firehose: 'FirehoseRole',
  kinesis: 'KinesisRole',
  s3: 'S3Role',
};

/**
 * A CloudFormation value flattened the way cdk-nag names its findings (`<Logical.Arn>`, `<AWS::Region>`),
 * so that a finding on a templated resource can be acknowledged by its exact id.
 */
export function flattenForNag(value: unknown): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value.replace(/\$\{/g, '<').replace(/\}/g, '>');
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (o['Fn::Join']) {
      const [sep, items] = o['Fn::Join'] as [string, unknown[]];
      return items.map(flattenForNag).join(sep);
    }
    if (o['Fn::Sub']) return flattenForNag(o['Fn::Sub']);
    if (o['Fn::GetAtt']) {
      const [res, attr] = o['Fn::GetAtt'] as [unknown, unknown];
      return `<${flattenForNag(res)}.${flattenForNag(attr)}>`;
    }
    if (o['Fn::ImportValue']) return flattenForNag(o['Fn::ImportValue']);
    if (o.Ref) return `<${flattenForNag(o.Ref)}>`;
  }
  return JSON.stringify(value);
}

/** A rule definition names a function, stream or bucket the app did not map; the message names the field. */
export class TopicRulesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

export class TopicRules extends Construct {
  /** The topic rules by rule name. */
  readonly topicRules = new Map<string, iot.CfnTopicRule>();
  /** The roles by `{ruleName}/{actionType}`. */
  readonly roles = new Map<string, iam.Role>();
  /** The Lambda permissions by `{ruleName}/{functionName}`. */
  readonly lambdaPermissions = new Map<string, lambda.CfnPermission>();

  constructor(
    scope: Construct,
    id: string,
    private readonly props: TopicRulesProps,
  ) {
    super(scope, id);
    for (const rule of props.rules) this.addRule(rule);
  }

  private fail(rule: RuleDefinition, field: string, message: string): never {
    throw new TopicRulesError(`rule '${rule.name}': ${field}: ${message}`);
  }

  private addRule(rule: RuleDefinition): void {
    const stack = Stack.of(this);
    const group = new Construct(this, rule.name);
    const ruleArn = stack.formatArn({
      service: 'iot',
      resource: 'rule',
      resourceName: rule.name,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
    const grants = new Map<Exclude<RuleActionType, 'lambda'>, RoleGrant>();
    const grant = (type: Exclude<RuleActionType, 'lambda'>) => {
      let g = grants.get(type);
      if (!g) {
        g = { statements: [], templated: [] };
        grants.set(type, g);
      }
      return g;
    };
    const permissions: lambda.CfnPermission[] = [];

    // Validate every mapping and collect grants first, then create roles, then the rule.
    const planned: { action: RuleAction; field: string }[] = [
      ...rule.actions.map((action, i) => ({ action, field: `actions.${i}` })),
      ...(rule.errorAction ? [{ action: rule.errorAction, field: 'errorAction' }] : []),
    ];
    for (const { action, field } of planned) {
      switch (action.type) {
        case 'republish':
          this.grantRepublish(action, grant('republish'));
          break;
        case 'firehose':
          this.grantFirehose(rule, action, field, grant('firehose'));
          break;
        case 's3':
          this.grantS3(rule, action, field, grant('s3'));
          break;
        case 'kinesis':
          this.grantKinesis(rule, action, field, grant('kinesis'));
          break;
        case 'lambda': {
          const fn = this.lookupFunction(rule, action, field);
          const key = `${rule.name}/${action.functionName}`;
          if (!this.lambdaPermissions.has(key)) {
            const permission = new lambda.CfnPermission(group, `Invoke${permissions.length}`, {
              action: 'lambda:InvokeFunction',
              functionName: fn.functionArn,
              principal: 'iot.amazonaws.com',
              sourceArn: ruleArn,
              sourceAccount: Aws.ACCOUNT_ID,
            });
            permissions.push(permission);
            this.lambdaPermissions.set(key, permission);
          }
          break;
        }
      }
    }

    const roles = new Map<Exclude<RuleActionType, 'lambda'>, iam.Role>();
    for (const [type, g] of grants) {
      const role = new iam.Role(group, ROLE_IDS[type], {
        description: `AWS IoT rule ${rule.name}: ${type} actions`,
        assumedBy: new iam.ServicePrincipal('iot.amazonaws.com', {
          conditions: {
            StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
            ArnLike: { 'aws:SourceArn': ruleArn },
          },
        }),
        inlinePolicies: { [type]: new iam.PolicyDocument({ statements: g.statements }) },
      });
      for (const t of g.templated) {
        const finding = `AwsSolutions-IAM5[Resource::${flattenForNag(stack.resolve(t.resource))}]`;
        Validations.of(role).acknowledge({
          id: finding,
          reason: `IoT rule ${rule.name} fills its ${type} ${t.param} template '${t.template}' per message; the wildcard stands only for the substituted parts, so no narrower resource exists`,
        });
      }
      roles.set(type, role);
      this.roles.set(`${rule.name}/${type}`, role);
    }

    const toCfn = (action: RuleAction, field: string): iot.CfnTopicRule.ActionProperty => {
      switch (action.type) {
        case 'republish':
          return { republish: this.republishProperty(action, roles.get('republish')!) };
        case 'lambda':
          return { lambda: { functionArn: this.lookupFunction(rule, action, field).functionArn } };
        case 'firehose':
          return {
            firehose: {
              deliveryStreamName: action.deliveryStreamName,
              roleArn: roles.get('firehose')!.roleArn,
              ...(action.separator !== undefined ? { separator: action.separator } : {}),
              ...(action.batchMode !== undefined ? { batchMode: action.batchMode } : {}),
            },
          };
        case 'kinesis':
          return {
            kinesis: {
              streamName: action.streamName,
              roleArn: roles.get('kinesis')!.roleArn,
              ...(action.partitionKey !== undefined ? { partitionKey: action.partitionKey } : {}),
            },
          };
        case 's3':
          return {
            s3: {
              bucketName: this.lookupBucket(rule, action, field).bucketName,
              key: action.key,
              roleArn: roles.get('s3')!.roleArn,
              ...(action.cannedAcl !== undefined ? { cannedAcl: action.cannedAcl } : {}),
            },
          };
      }
    };

    const topicRule = new iot.CfnTopicRule(group, 'Rule', {
      ruleName: rule.name,
      topicRulePayload: {
        sql: rule.sql,
        awsIotSqlVersion: rule.sqlVersion,
        ruleDisabled: rule.ruleDisabled,
        ...(rule.description !== undefined ? { description: rule.description } : {}),
        actions: rule.actions.map((a, i) => toCfn(a, `actions.${i}`)),
        ...(rule.errorAction ? { errorAction: toCfn(rule.errorAction, 'errorAction') } : {}),
      },
    });
    // The function must accept IoT's invocations before the rule can send any.
    for (const p of permissions)
      topicRule.addResourceDependency(p, `IoT may invoke the function only after the permission exists`);
    this.topicRules.set(rule.name, topicRule);
  }

  private republishProperty(
    action: RepublishAction,
    role: iam.Role,
  ): iot.CfnTopicRule.RepublishActionProperty {
    const h = action.headers;
    return {
      topic: action.topic,
      qos: action.qos,
      roleArn: role.roleArn,
      ...(h
        ? {
            headers: {
              ...(h.payloadFormatIndicator !== undefined
                ? { payloadFormatIndicator: h.payloadFormatIndicator }
                : {}),
              ...(h.contentType !== undefined ? { contentType: h.contentType } : {}),
              ...(h.responseTopic !== undefined ? { responseTopic: h.responseTopic } : {}),
              ...(h.correlationData !== undefined ? { correlationData: h.correlationData } : {}),
              ...(h.messageExpiry !== undefined ? { messageExpiry: h.messageExpiry } : {}),
              ...(h.userProperties !== undefined ? { userProperties: h.userProperties } : {}),
            },
          }
        : {}),
    };
  }

  private grantRepublish(action: RepublishAction, g: RoleGrant): void {
    const target = republishTarget(action.topic);
    const resource = Stack.of(this).formatArn({
      service: 'iot',
      resource: 'topic',
      resourceName: substitutionPattern(target),
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
    g.statements.push(new iam.PolicyStatement({ actions: ['iot:Publish'], resources: [resource] }));
    if (hasSubstitution(target)) g.templated.push({ resource, param: 'topic', template: action.topic });
  }

  private grantFirehose(rule: RuleDefinition, action: FirehoseAction, field: string, g: RoleGrant): void {
    const arn = this.props.deliveryStreams?.[action.deliveryStreamName];
    if (arn === undefined) {
      this.fail(
        rule,
        `${field}.deliveryStreamName`,
        `no delivery stream '${action.deliveryStreamName}' in the app's stream map`,
      );
    }
    g.statements.push(
      new iam.PolicyStatement({
        actions: action.batchMode
          ? ['firehose:PutRecord', 'firehose:PutRecordBatch']
          : ['firehose:PutRecord'],
        resources: [arn],
      }),
    );
  }

  private grantKinesis(rule: RuleDefinition, action: KinesisAction, field: string, g: RoleGrant): void {
    const arn = this.props.dataStreams?.[action.streamName];
    if (arn === undefined) {
      this.fail(rule, `${field}.streamName`, `no data stream '${action.streamName}' in the app's stream map`);
    }
    g.statements.push(new iam.PolicyStatement({ actions: ['kinesis:PutRecord'], resources: [arn] }));
  }

  private lookupBucket(rule: RuleDefinition, action: S3Action, field: string): s3.IBucket {
    const bucket = this.props.buckets?.[action.bucketName];
    if (!bucket)
      this.fail(rule, `${field}.bucketName`, `no bucket '${action.bucketName}' in the app's bucket map`);
    return bucket;
  }

  private lookupFunction(rule: RuleDefinition, action: LambdaAction, field: string): lambda.IFunction {
    const fn = this.props.functions?.[action.functionName];
    if (!fn) {
      this.fail(
        rule,
        `${field}.functionName`,
        `no function '${action.functionName}' in the app's function map`,
      );
    }
    return fn;
  }

  private grantS3(rule: RuleDefinition, action: S3Action, field: string, g: RoleGrant): void {
    const bucket = this.lookupBucket(rule, action, field);
    const resource = bucket.arnForObjects(substitutionPattern(action.key));
    g.statements.push(
      new iam.PolicyStatement({
        actions: action.cannedAcl ? ['s3:PutObject', 's3:PutObjectAcl'] : ['s3:PutObject'],
        resources: [resource],
      }),
    );
    if (hasSubstitution(action.key)) g.templated.push({ resource, param: 'key', template: action.key });
    if (bucket.encryptionKey) {
      g.statements.push(
        new iam.PolicyStatement({
          actions: ['kms:GenerateDataKey'],
          resources: [bucket.encryptionKey.keyArn],
        }),
      );
    }
  }
}
