/**
 * JITR in the CDK app, synthesized once: the activation function (bundled handler, its own role and log
 * group, the results bucket and device policy in its environment), its role's statements (exactly
 * jitrActivationRolePolicy plus KMS for the results bucket and its logs), and the rule edgefleet_jitr
 * with its lambda action, error action and the invoke permission scoped to the rule.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CfnResource } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import { buildApp, type EdgefleetStack } from '../../cloud/cdk/stack.js';
import { FLEET_ERRORS_TOPIC, RULES } from '../../cloud/rules/definitions.js';
import {
  JITR_ACTIVATION_FUNCTION_NAME,
  JITR_EVENTS_FILTER,
  jitrActivationRolePolicy,
} from '../../cloud/rules/jitr.js';
import { DEVICE_POLICY_NAME } from '../../cloud/rules/policies.js';

type Json = Record<string, unknown>;
interface CfnTemplate {
  Resources: Record<string, { Type: string; Properties?: Json; DependsOn?: string[] }>;
}

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

let outdir: string;
let stack: EdgefleetStack;
let template: CfnTemplate;

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'edgefleet-cdk-jitr-'));
  const context = (
    JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as { context: object }
  ).context;
  const built = buildApp({ appProps: { outdir, context } });
  stack = built.stack;
  template = built.app.synth().getStackArtifact(stack.artifactId).template as CfnTemplate;
});

afterAll(() => {
  rmSync(outdir, { recursive: true, force: true });
});

const logicalId = (c: IConstruct) => stack.getLogicalId((c.node.defaultChild ?? c) as CfnResource);
const resource = (id: string) => {
  const r = template.Resources[id];
  if (!r) throw new Error(`no resource ${id}`);
  return r;
};
const fnId = () => logicalId(stack.functions.functions[JITR_ACTIVATION_FUNCTION_NAME]!);
const ofType = (type: string) => Object.entries(template.Resources).filter(([, r]) => r.Type === type);

describe('the activation function', () => {
  test('is the bundled jitr-activation handler with the results bucket and the device policy', () => {
    const { Code: code, ...properties } = resource(fnId()).Properties ?? {};
    // The bundled handler is an asset of the synthesized app.
    expect((code as { S3Key?: string }).S3Key).toMatch(/\.zip$/);
    const fn = evaluate(properties) as Json;
    expect(fn).toMatchObject({
      FunctionName: `Edgefleet-${JITR_ACTIVATION_FUNCTION_NAME}`,
      Handler: 'index.handler',
      Architectures: ['arm64'],
      Environment: {
        Variables: {
          RESULTS_BUCKET: `<${logicalId(stack.resultsBucket)}>`,
          DEVICE_POLICY_NAME,
        },
      },
    });
    expect(String(fn.Runtime)).toMatch(/^nodejs\d+\.x$/);
    const role = resource(String(fn.Role).replace(/^<|\.Arn>$/g, ''));
    expect(role.Type).toBe('AWS::IAM::Role');
    expect(evaluate(role.Properties?.AssumeRolePolicyDocument)).toEqual({
      Version: '2012-10-17',
      Statement: [
        { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
      ],
    });
    const logs = (fn.LoggingConfig as Json | undefined)?.LogGroup;
    expect(String(logs)).toMatch(/^<FunctionsJitrActivationLogs/);
  });

  test('exists only after its policy and the device policy (which it would otherwise create itself)', () => {
    const dependsOn = resource(fnId()).DependsOn ?? [];
    expect(dependsOn).toEqual(expect.arrayContaining([stack.getLogicalId(stack.devicePolicy)]));
    expect(dependsOn.some((d) => d.startsWith('FunctionsJitrActivationPolicy'))).toBe(true);
  });

  test("its role's statements are jitrActivationRolePolicy, KMS decrypt of the results bucket and its logs", () => {
    const policies = ofType('AWS::IAM::Policy').filter(([k]) =>
      k.startsWith('FunctionsJitrActivationPolicy'),
    );
    expect(policies).toHaveLength(1);
    const props = evaluate(policies[0]![1].Properties) as {
      PolicyDocument: { Statement: { Action: unknown; Resource: unknown; Effect: string }[] };
      Roles: unknown[];
    };
    expect(String(props.Roles[0])).toMatch(/^<FunctionsJitrActivationRole/);
    const normalize = (s: { Action: unknown; Resource: unknown; Effect: string }) => ({
      Effect: s.Effect,
      Action: arr(s.Action).map(String).sort(),
      Resource: arr(s.Resource).map(String).sort(),
    });
    const expected = jitrActivationRolePolicy({
      resultsBucket: `<${logicalId(stack.resultsBucket)}>`,
      region: PSEUDO['AWS::Region']!,
      account: PSEUDO['AWS::AccountId']!,
      partition: PSEUDO['AWS::Partition']!,
      devicePolicyName: DEVICE_POLICY_NAME,
    }).Statement.map(normalize);
    const actual = props.PolicyDocument.Statement.map(normalize);
    expect(actual).toEqual(
      expect.arrayContaining([
        ...expected,
        { Effect: 'Allow', Action: ['kms:Decrypt'], Resource: [`<${logicalId(stack.dataLakeKey)}.Arn>`] },
      ]),
    );
    expect(actual).toHaveLength(expected.length + 2);
    const logs = actual.find((s) => s.Action.includes('logs:PutLogEvents'));
    expect(logs?.Resource).toEqual([expect.stringMatching(/^<FunctionsJitrActivationLogs.*\.Arn>:\*$/)]);
    // The corrected resource types: attachments on the certificate, the device policy only.
    const on = (action: string) => actual.filter((s) => s.Action.includes(action)).flatMap((s) => s.Resource);
    const iot = 'arn:aws:iot:eu-central-1:123456789012';
    expect(on('iot:AttachPolicy')).toEqual([`${iot}:cert/*`]);
    expect(on('iot:AttachThingPrincipal')).toEqual([`${iot}:cert/*`]);
    expect(on('iot:CreatePolicy')).toEqual([`${iot}:policy/${DEVICE_POLICY_NAME}`]);
    expect(on('iot:UpdateCertificate')).toEqual([`${iot}:cert/*`]);
    expect(actual.flatMap((s) => s.Action)).not.toContain('iot:*');
    expect(actual.flatMap((s) => s.Resource)).not.toContain('*');
  });
});

describe('the rule edgefleet_jitr', () => {
  const rule = () => {
    const found = ofType('AWS::IoT::TopicRule').filter(
      ([, r]) => r.Properties?.RuleName === 'edgefleet_jitr',
    );
    expect(found).toHaveLength(1);
    return found[0]!;
  };

  test('is defined once in RULES', () => {
    const def = RULES.find((r) => r.name === 'edgefleet_jitr');
    expect(def).toMatchObject({
      sql: `SELECT * FROM '${JITR_EVENTS_FILTER}'`,
      sqlVersion: '2016-03-23',
      actions: [{ type: 'lambda', functionName: JITR_ACTIVATION_FUNCTION_NAME }],
    });
  });

  test('selects every registration event and invokes the function; errors go to the fleet errors topic', () => {
    const payload = evaluate(rule()[1].Properties?.TopicRulePayload) as Json;
    expect(payload).toMatchObject({
      Sql: "SELECT * FROM '$aws/events/certificates/registered/+'",
      AwsIotSqlVersion: '2016-03-23',
      RuleDisabled: false,
      Actions: [{ Lambda: { FunctionArn: `<${fnId()}.Arn>` } }],
      ErrorAction: { Republish: { Topic: FLEET_ERRORS_TOPIC, Qos: 0 } },
    });
  });

  test('IoT may invoke the function for this rule only, and the rule waits for that permission', () => {
    const permissions = ofType('AWS::Lambda::Permission')
      .map(([id, r]) => [id, evaluate(r.Properties)] as const)
      .filter(([, p]) => (p as Json).FunctionName === `<${fnId()}.Arn>`);
    expect(permissions).toHaveLength(1);
    const [permissionId, permission] = permissions[0]!;
    expect(permission).toEqual({
      Action: 'lambda:InvokeFunction',
      FunctionName: `<${fnId()}.Arn>`,
      Principal: 'iot.amazonaws.com',
      SourceAccount: '123456789012',
      SourceArn: 'arn:aws:iot:eu-central-1:123456789012:rule/edgefleet_jitr',
    });
    expect(rule()[1].DependsOn).toEqual(expect.arrayContaining([permissionId]));
  });
});
