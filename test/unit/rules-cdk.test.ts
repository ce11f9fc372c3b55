// biome-ignore-all lint/suspicious/noTemplateCurlyInString: AWS IoT substitution templates (`${expression}`) are plain strings here
/**
 * The topic rules of the CDK app: every definition in RULES is an `AWS::IoT::TopicRule` with the same
 * SQL, SQL version, state and action parameters, and the roles and permissions built for the rules are
 * least-privilege (exact actions on exact resources, trusted only by AWS IoT acting for that rule).
 */
import { readFileSync } from 'node:fs';
import { App, type CfnResource, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { TopicRules } from '../../cloud/cdk/rules.js';
import { buildApp, type EdgefleetStack } from '../../cloud/cdk/stack.js';
import {
  parseRuleDefinitions,
  RULES,
  type RuleAction,
  type RuleDefinition,
} from '../../cloud/rules/index.js';

const context = (
  JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as { context: object }
).context;

const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': 'eu-central-1',
  'AWS::AccountId': '123456789012',
};

/** Evaluates Fn::Join and pseudo-parameter Refs; other Refs and GetAtts become `<Logical>` / `<Logical.Attr>`. */
function evaluate(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(evaluate);
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    const [key, arg] = entries[0] ?? [];
    if (entries.length === 1 && key === 'Ref') return PSEUDO[String(arg)] ?? `<${String(arg)}>`;
    if (entries.length === 1 && key === 'Fn::GetAtt') return `<${(arg as string[]).join('.')}>`;
    if (entries.length === 1 && key === 'Fn::Join') {
      const [sep, parts] = arg as [string, unknown[]];
      return parts.map((p) => evaluate(p)).join(sep);
    }
    if (entries.length === 1 && key?.startsWith('Fn::')) throw new Error(`unexpected intrinsic ${key}`);
    return Object.fromEntries(entries.map(([k, v]) => [k, evaluate(v)]));
  }
  return value;
}

const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : [v]);

interface CfnTemplate {
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown>; DependsOn?: string[] }>;
}

const topicRuleByName = (t: CfnTemplate, name: string) =>
  Object.entries(t.Resources).find(
    ([, r]) => r.Type === 'AWS::IoT::TopicRule' && r.Properties?.RuleName === name,
  );

const pascal = (type: RuleAction['type']) =>
  ({ republish: 'Republish', lambda: 'Lambda', firehose: 'Firehose', kinesis: 'Kinesis', s3: 'S3' })[type];

/** The CloudFormation action parameters a definition's action must become (role ARNs excluded). */
function expectedParameters(
  action: RuleAction,
  refs: { bucket?: (name: string) => unknown; fn?: (name: string) => unknown } = {},
): Record<string, unknown> {
  switch (action.type) {
    case 'republish':
      return { Topic: action.topic, Qos: action.qos };
    case 'lambda':
      return { FunctionArn: refs.fn?.(action.functionName) };
    case 'firehose':
      return {
        DeliveryStreamName: action.deliveryStreamName,
        ...(action.separator !== undefined ? { Separator: action.separator } : {}),
        ...(action.batchMode !== undefined ? { BatchMode: action.batchMode } : {}),
      };
    case 's3':
      return {
        BucketName: refs.bucket?.(action.bucketName),
        Key: action.key,
        ...(action.cannedAcl !== undefined ? { CannedAcl: action.cannedAcl } : {}),
      };
    case 'kinesis':
      return {
        StreamName: action.streamName,
        ...(action.partitionKey !== undefined ? { PartitionKey: action.partitionKey } : {}),
      };
  }
}

function withoutRole(cfnAction: unknown): [string, Record<string, unknown>] {
  const [[type, params]] = Object.entries(cfnAction as Record<string, Record<string, unknown>>) as [
    [string, Record<string, unknown>],
  ];
  const { RoleArn: _roleArn, ...rest } = params;
  return [type, rest];
}

describe('the project stack', () => {
  let stack: EdgefleetStack;
  let template: CfnTemplate;

  beforeAll(() => {
    ({ stack } = buildApp({ appProps: { context } }));
    template = Template.fromStack(stack).toJSON() as CfnTemplate;
  });

  test('holds exactly the rules of RULES', () => {
    const names = Object.values(template.Resources)
      .filter((r) => r.Type === 'AWS::IoT::TopicRule')
      .map((r) => r.Properties?.RuleName);
    expect(names.sort()).toEqual(RULES.map((r) => r.name).sort());
  });

  test.each(RULES.map((r) => [r.name, r] as const))(
    '%s: same sql, SQL version, state and action parameters',
    (name, rule) => {
      const found = topicRuleByName(template, name);
      expect(found).toBeDefined();
      const payload = found![1].Properties!.TopicRulePayload as Record<string, unknown>;
      expect(payload.Sql).toBe(rule.sql);
      // Always written: CloudFormation would otherwise use 2015-10-08.
      expect(payload.AwsIotSqlVersion).toBe(rule.sqlVersion);
      expect(payload.RuleDisabled).toBe(rule.ruleDisabled);
      expect(payload.Description).toBe(rule.description);
      const actions = payload.Actions as unknown[];
      expect(actions).toHaveLength(rule.actions.length);
      // A lambda action points at the project's function of that name.
      const fn = (fnName: string) => stack.resolve(stack.functions.functions[fnName]?.functionArn);
      rule.actions.forEach((a, i) => {
        expect(withoutRole(actions[i])).toEqual([pascal(a.type), expectedParameters(a, { fn })]);
      });
      if (rule.errorAction) {
        expect(withoutRole(payload.ErrorAction)).toEqual([
          pascal(rule.errorAction.type),
          expectedParameters(rule.errorAction),
        ]);
      } else {
        expect(payload.ErrorAction).toBeUndefined();
      }
    },
  );

  test('edgefleet_heartbeats republishes through a role allowed iot:Publish on its two topics only', () => {
    const role = stack.topicRules.roles.get('edgefleet_heartbeats/republish');
    expect(role).toBeDefined();
    const props = evaluate(
      template.Resources[stack.getLogicalId(role!.node.defaultChild as CfnResource)]?.Properties,
    ) as {
      Policies: { PolicyDocument: { Statement: { Effect: string; Action: unknown; Resource: unknown }[] } }[];
      AssumeRolePolicyDocument: unknown;
    };
    const statements = props.Policies.flatMap((p) => p.PolicyDocument.Statement);
    expect(statements.flatMap((s) => arr(s.Action))).toEqual(['iot:Publish']);
    expect(statements.flatMap((s) => arr(s.Resource)).sort()).toEqual([
      'arn:aws:iot:eu-central-1:123456789012:topic/fleet/errors',
      'arn:aws:iot:eu-central-1:123456789012:topic/fleet/heartbeats',
    ]);
    expect(props.AssumeRolePolicyDocument).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Service: 'iot.amazonaws.com' },
          Action: 'sts:AssumeRole',
          Condition: {
            StringEquals: { 'aws:SourceAccount': '123456789012' },
            ArnLike: { 'aws:SourceArn': 'arn:aws:iot:eu-central-1:123456789012:rule/edgefleet_heartbeats' },
          },
        },
      ],
    });
  });
});

const TEST_RULES: RuleDefinition[] = parseRuleDefinitions([
  {
    name: 'test_all_actions',
    description: 'every action type',
    sql: "SELECT *, topic(2) AS thing FROM 'dt/+/telemetry'",
    sqlVersion: 'beta',
    ruleDisabled: true,
    actions: [
      { type: 'republish', topic: 'things/${topic(2)}/ack', qos: 1 },
      { type: 'lambda', functionName: 'analyse' },
      { type: 'firehose', deliveryStreamName: 'telemetry-stream', separator: '\n', batchMode: true },
      {
        type: 's3',
        bucketName: 'lake',
        key: 'raw/${topic(2)}/${timestamp()}.json',
        cannedAcl: 'bucket-owner-full-control',
      },
    ],
    errorAction: { type: 'republish', topic: 'fleet/errors' },
  },
  {
    name: 'test_plain',
    sql: "SELECT * FROM 'dt/+/plain'",
    actions: [
      { type: 'firehose', deliveryStreamName: 'telemetry-stream' },
      { type: 's3', bucketName: 'plain', key: 'latest.json' },
      { type: 'lambda', functionName: 'analyse' },
    ],
    errorAction: { type: 'lambda', functionName: 'errors' },
  },
]);

describe('a test stack with every action type', () => {
  let app: App;
  let stack: Stack;
  let rules: TopicRules;
  let template: CfnTemplate;
  let lakeKey: kms.Key;
  let lake: s3.Bucket;
  let plain: s3.Bucket;
  let analyse: lambda.Function;
  let errors: lambda.Function;
  const streamArn = 'arn:aws:firehose:eu-central-1:123456789012:deliverystream/telemetry-stream';

  const id = (c: IConstruct) => stack.getLogicalId(c.node.defaultChild as CfnResource);
  const roleProps = (rule: string, type: string) => {
    const role = rules.roles.get(`${rule}/${type}`);
    expect(role).toBeDefined();
    return evaluate(template.Resources[id(role!)]?.Properties) as {
      Policies: {
        PolicyName: string;
        PolicyDocument: {
          Statement: { Effect: string; Action: unknown; Resource: unknown; Condition?: unknown }[];
        };
      }[];
      AssumeRolePolicyDocument: { Statement: { Condition: unknown; Principal: unknown; Action: unknown }[] };
      ManagedPolicyArns?: unknown;
    };
  };
  /** Every (action, resource) pair the role's policies allow. */
  const grants = (rule: string, type: string) =>
    roleProps(rule, type)
      .Policies.flatMap((p) => p.PolicyDocument.Statement)
      .flatMap((s) => {
        expect(s.Effect).toBe('Allow');
        expect(s.Condition).toBeUndefined();
        return arr(s.Action).flatMap((a) => arr(s.Resource).map((r) => `${String(a)} ${String(r)}`));
      })
      .sort();

  beforeAll(() => {
    app = new App({ context });
    stack = new Stack(app, 'RulesTest');
    lakeKey = new kms.Key(stack, 'LakeKey', { enableKeyRotation: true });
    lake = new s3.Bucket(stack, 'Lake', { encryption: s3.BucketEncryption.KMS, encryptionKey: lakeKey });
    plain = new s3.Bucket(stack, 'Plain');
    const fn = (name: string) =>
      new lambda.Function(stack, name, {
        runtime: lambda.Runtime.NODEJS_22_X,
        handler: 'index.handler',
        code: lambda.Code.fromInline('exports.handler = async () => {};'),
      });
    analyse = fn('Analyse');
    errors = fn('Errors');
    rules = new TopicRules(stack, 'Rules', {
      rules: TEST_RULES,
      functions: { analyse, errors },
      deliveryStreams: { 'telemetry-stream': streamArn },
      buckets: { lake, plain },
    });
    template = Template.fromStack(stack).toJSON() as CfnTemplate;
  });

  test('every definition is a TopicRule with the same parameters, resources resolved from the maps', () => {
    const refs = {
      bucket: (name: string) => ({ Ref: id(name === 'lake' ? lake : plain) }),
      fn: (name: string) => ({ 'Fn::GetAtt': [id(name === 'analyse' ? analyse : errors), 'Arn'] }),
    };
    for (const rule of TEST_RULES) {
      const found = topicRuleByName(template, rule.name);
      expect(found).toBeDefined();
      const payload = found![1].Properties!.TopicRulePayload as Record<string, unknown>;
      expect(payload).toMatchObject({
        Sql: rule.sql,
        AwsIotSqlVersion: rule.sqlVersion,
        RuleDisabled: rule.ruleDisabled,
      });
      rule.actions.forEach((a, i) => {
        expect(withoutRole((payload.Actions as unknown[])[i])).toEqual([
          pascal(a.type),
          expectedParameters(a, refs),
        ]);
      });
      expect(withoutRole(payload.ErrorAction)).toEqual([
        pascal(rule.errorAction!.type),
        expectedParameters(rule.errorAction!, refs),
      ]);
    }
  });

  test('each action uses the role of its rule and action type; lambda actions use none', () => {
    const payload = topicRuleByName(template, 'test_all_actions')![1].Properties!.TopicRulePayload as {
      Actions: Record<string, { RoleArn?: unknown }>[];
      ErrorAction: Record<string, { RoleArn?: unknown }>;
    };
    const roleArn = (type: string) => ({
      'Fn::GetAtt': [id(rules.roles.get(`test_all_actions/${type}`)!), 'Arn'],
    });
    expect(payload.Actions[0]?.Republish?.RoleArn).toEqual(roleArn('republish'));
    expect(payload.Actions[1]?.Lambda?.RoleArn).toBeUndefined();
    expect(payload.Actions[2]?.Firehose?.RoleArn).toEqual(roleArn('firehose'));
    expect(payload.Actions[3]?.S3?.RoleArn).toEqual(roleArn('s3'));
    expect(payload.ErrorAction.Republish?.RoleArn).toEqual(roleArn('republish'));
    expect([...rules.roles.keys()].sort()).toEqual([
      'test_all_actions/firehose',
      'test_all_actions/republish',
      'test_all_actions/s3',
      'test_plain/firehose',
      'test_plain/s3',
    ]);
  });

  test('republish: iot:Publish on the action topics, templates widened to *', () => {
    expect(grants('test_all_actions', 'republish')).toEqual([
      'iot:Publish arn:aws:iot:eu-central-1:123456789012:topic/fleet/errors',
      'iot:Publish arn:aws:iot:eu-central-1:123456789012:topic/things/*/ack',
    ]);
  });

  test('firehose: PutRecord, and PutRecordBatch only with batchMode, on that stream', () => {
    expect(grants('test_all_actions', 'firehose')).toEqual([
      `firehose:PutRecord ${streamArn}`,
      `firehose:PutRecordBatch ${streamArn}`,
    ]);
    expect(grants('test_plain', 'firehose')).toEqual([`firehose:PutRecord ${streamArn}`]);
  });

  test('s3: PutObject (and PutObjectAcl with a canned ACL) under the key pattern, and the bucket key', () => {
    expect(grants('test_all_actions', 's3')).toEqual([
      `kms:GenerateDataKey <${id(lakeKey)}.Arn>`,
      `s3:PutObject <${id(lake)}.Arn>/raw/*/*.json`,
      `s3:PutObjectAcl <${id(lake)}.Arn>/raw/*/*.json`,
    ]);
    expect(grants('test_plain', 's3')).toEqual([`s3:PutObject <${id(plain)}.Arn>/latest.json`]);
  });

  test('every role is assumable only by AWS IoT for its own rule, and has no other policies', () => {
    for (const key of rules.roles.keys()) {
      const [rule, type] = key.split('/') as [string, string];
      const props = roleProps(rule, type);
      expect(props.ManagedPolicyArns).toBeUndefined();
      expect(props.AssumeRolePolicyDocument.Statement).toEqual([
        {
          Effect: 'Allow',
          Principal: { Service: 'iot.amazonaws.com' },
          Action: 'sts:AssumeRole',
          Condition: {
            StringEquals: { 'aws:SourceAccount': '123456789012' },
            ArnLike: { 'aws:SourceArn': `arn:aws:iot:eu-central-1:123456789012:rule/${rule}` },
          },
        },
      ]);
    }
    const roleIds = new Set([...rules.roles.values()].map((r) => id(r)));
    const attached = Object.values(template.Resources).filter(
      (r) =>
        r.Type === 'AWS::IAM::Policy' &&
        arr(r.Properties?.Roles).some((x) => roleIds.has((x as { Ref: string }).Ref)),
    );
    expect(attached).toEqual([]);
  });

  test('lambda: a permission per rule and function for iot.amazonaws.com, limited to the rule', () => {
    const permissions = Object.entries(template.Resources)
      .filter(([, r]) => r.Type === 'AWS::Lambda::Permission')
      .map(([logicalId, r]) => ({ logicalId, props: evaluate(r.Properties) as Record<string, unknown> }));
    const expected = (rule: string, fn: lambda.Function) => ({
      Action: 'lambda:InvokeFunction',
      FunctionName: `<${id(fn)}.Arn>`,
      Principal: 'iot.amazonaws.com',
      SourceAccount: '123456789012',
      SourceArn: `arn:aws:iot:eu-central-1:123456789012:rule/${rule}`,
    });
    const strip = permissions.map((p) => p.props);
    expect(strip).toHaveLength(3);
    expect(strip).toEqual(
      expect.arrayContaining([
        expected('test_all_actions', analyse),
        expected('test_plain', analyse),
        expected('test_plain', errors),
      ]),
    );
    // The rule is created after its permissions.
    const plainRule = topicRuleByName(template, 'test_plain')![1];
    const plainPermissions = permissions
      .filter((p) => String(p.props.SourceArn).endsWith('/test_plain'))
      .map((p) => p.logicalId);
    expect(plainRule.DependsOn?.sort()).toEqual(plainPermissions.sort());
  });

  test('cdk-nag finds nothing in the rules but the wildcards of templates, each acknowledged with its reason', () => {
    const violations = new AwsSolutionsChecks(undefined, { verbose: true })
      .validateScope(app)
      .violations.filter((v) =>
        v.violatingResources.some((r) => r.constructPath?.startsWith(rules.node.path)),
      );
    expect(violations.map((v) => v.ruleName)).toEqual([]);
    const acks = rules.node.findAll().flatMap((c) =>
      c.node.metadata
        .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .flatMap((m) =>
          Object.entries(m.data as Record<string, string>).map(([k, reason]) => ({
            path: c.node.path,
            id: k.replace(/^annotation::/i, ''),
            reason,
          })),
        ),
    );
    expect(acks.map((a) => `${a.path} ${a.id}`).sort()).toEqual([
      `RulesTest/Rules/test_all_actions/RepublishRole AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:<AWS::AccountId>:topic/things/*/ack]`,
      `RulesTest/Rules/test_all_actions/S3Role AwsSolutions-IAM5[Resource::<${id(lake)}.Arn>/raw/*/*.json]`,
    ]);
    for (const a of acks) {
      expect(a.reason).toMatch(/test_all_actions/);
      expect(a.reason.length).toBeGreaterThanOrEqual(40);
    }
  });

  test('a name missing from the maps fails synthesis with the rule and field', () => {
    const s = new Stack(new App(), 'Missing');
    expect(() => new TopicRules(s, 'Rules', { rules: TEST_RULES.slice(1), deliveryStreams: {} })).toThrow(
      /rule 'test_plain': actions\.0\.deliveryStreamName: no delivery stream 'telemetry-stream'/,
    );
    expect(
      () =>
        new TopicRules(new Stack(new App(), 'Missing2'), 'Rules', {
          rules: TEST_RULES.slice(1),
          deliveryStreams: { 'telemetry-stream': streamArn },
          buckets: { plain: new s3.Bucket(s, 'B') },
        }),
    ).toThrow(/rule 'test_plain': actions\.2\.functionName: no function 'analyse'/);
  });
});
