// biome-ignore-all lint/suspicious/noTemplateCurlyInString: AWS IoT substitution templates (`${expression}`) are plain strings here
/**
 * The project's rule definitions: every rule's SQL and substitution templates compile with the AWS IoT
 * SQL engine, and zod rejects bad definitions with a message that names the field.
 */
import { FUNCTION_NAMES } from '../../cloud/functions/index.js';
import {
  actionTemplates,
  FIREHOSE_SEPARATORS,
  isReservedJobTopic,
  literalPrefix,
  parseRuleDefinition,
  parseRuleDefinitions,
  RULES,
  RuleDefinitionError,
  type RuleDefinitionInput,
  republishTarget,
  substitutionPattern,
} from '../../cloud/rules/index.js';
import { compile, compileTemplate } from '../../cloud/rules/sql/index.js';
import { toJs } from '../../cloud/rules/sql/values.js';

const env = { accountId: '123456789012', region: 'eu-central-1' };

describe('RULES', () => {
  test('is not empty and has unique names that AWS accepts', () => {
    expect(RULES.length).toBeGreaterThan(0);
    const names = RULES.map((r) => r.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^[a-zA-Z0-9_]{1,128}$/);
  });

  test.each(RULES.map((r) => [r.name, r] as const))('%s: its SQL compiles', (_name, rule) => {
    const statement = compile(rule.sql, rule.sqlVersion);
    expect(statement.sqlVersion).toBe(rule.sqlVersion);
    expect(statement.topicFilter.length).toBeGreaterThan(0);
  });

  test.each(RULES.map((r) => [r.name, r] as const))(
    '%s: its substitution templates compile',
    (_name, rule) => {
      const actions = [...rule.actions, ...(rule.errorAction ? [rule.errorAction] : [])];
      for (const action of actions) {
        for (const { template } of actionTemplates(action)) {
          expect(() => compileTemplate(template, rule.sqlVersion)).not.toThrow();
        }
      }
    },
  );

  test('lambda actions name handlers that exist in cloud/functions', () => {
    expect(() => parseRuleDefinitions(RULES, { functionNames: FUNCTION_NAMES })).not.toThrow();
  });

  test('edgefleet_heartbeats adds the thing name and arrival time to every heartbeat', () => {
    const rule = RULES.find((r) => r.name === 'edgefleet_heartbeats');
    expect(rule).toBeDefined();
    expect(rule?.sqlVersion).toBe('2016-03-23');
    expect(rule?.actions).toEqual([{ type: 'republish', topic: 'fleet/heartbeats', qos: 0 }]);
    expect(rule?.errorAction).toEqual({ type: 'republish', topic: 'fleet/errors', qos: 0 });
    const statement = compile(rule!.sql, rule!.sqlVersion);
    expect(statement.topicFilter).toBe('dt/+/heartbeat');
    const ev = statement.evaluate(
      {
        topic: 'dt/gw-7/heartbeat',
        payload: Buffer.from(JSON.stringify({ seq: 3, ts: 1700000000000 })),
        timestamp: 1700000000123,
      },
      { ...env, now: () => 1700000000456 },
    );
    expect(ev.matched).toBe(true);
    if (!ev.matched) return;
    expect(toJs(ev.output)).toEqual({ thing: 'gw-7', receivedAt: 1700000000456, seq: 3, ts: 1700000000000 });
    expect(
      statement.evaluate({ topic: 'dt/gw-7/other', payload: Buffer.from('{}'), timestamp: 0 }, env),
    ).toEqual({
      matched: false,
    });
  });
});

const valid = (): RuleDefinitionInput => ({
  name: 'test_rule',
  sql: "SELECT * FROM 'a/b'",
  actions: [{ type: 'republish', topic: 'c/d' }],
});

/** The message of the error a definition is rejected with. */
function rejection(input: unknown, options?: Parameters<typeof parseRuleDefinitions>[1]): string {
  try {
    parseRuleDefinitions([input], options);
  } catch (err) {
    expect(err).toBeInstanceOf(RuleDefinitionError);
    return (err as Error).message;
  }
  throw new Error('the definition was accepted');
}

describe('rule definition schema', () => {
  test('fills in the documented defaults', () => {
    const rule = parseRuleDefinition(valid());
    expect(rule.sqlVersion).toBe('2016-03-23');
    expect(rule.ruleDisabled).toBe(false);
    expect(rule.actions).toEqual([{ type: 'republish', topic: 'c/d', qos: 0 }]);
  });

  test('accepts every action type with all its parameters', () => {
    const rule = parseRuleDefinition({
      ...valid(),
      description: 'all of them',
      sqlVersion: 'beta',
      ruleDisabled: true,
      actions: [
        {
          type: 'republish',
          topic: '$$aws/things/${topic(2)}/shadow/update',
          qos: 1,
          headers: { contentType: 'application/json', userProperties: [{ key: 'k', value: '${topic()}' }] },
        },
        { type: 'lambda', functionName: 'my-function_1' },
        { type: 'firehose', deliveryStreamName: 'stream.1', separator: '\r\n', batchMode: true },
        { type: 's3', bucketName: 'my.bucket-1', key: '${topic()}/${timestamp()}', cannedAcl: 'private' },
      ],
      errorAction: { type: 's3', bucketName: 'errors-bucket', key: 'errors/x' },
    });
    expect(rule.actions.map((a) => a.type)).toEqual(['republish', 'lambda', 'firehose', 's3']);
  });

  test.each(FIREHOSE_SEPARATORS.map((s) => [JSON.stringify(s), s]))(
    'accepts the separator %s',
    (_n, separator) => {
      expect(() =>
        parseRuleDefinition({
          ...valid(),
          actions: [{ type: 'firehose', deliveryStreamName: 's', separator }],
        }),
      ).not.toThrow();
    },
  );

  test.each<[string, unknown, RegExp]>([
    ['a name with a hyphen', { ...valid(), name: 'edge-fleet' }, /rules\[0\]\): name: name must match/],
    ['an empty name', { ...valid(), name: '' }, /name: name must not be empty/],
    ['a name of 129 characters', { ...valid(), name: 'a'.repeat(129) }, /name: name is at most 128/],
    [
      'a missing name',
      { sql: "SELECT * FROM 'a'", actions: [{ type: 'republish', topic: 'x' }] },
      /rules\[0\]: name:/,
    ],
    ['an empty sql', { ...valid(), sql: '' }, /sql: sql must not be empty/],
    [
      'an unknown SQL version',
      { ...valid(), sqlVersion: '2017-01-01' },
      /sqlVersion: sqlVersion must be one of/,
    ],
    ['no actions', { ...valid(), actions: [] }, /actions: a rule needs at least one action/],
    [
      'eleven actions',
      { ...valid(), actions: Array.from({ length: 11 }, () => ({ type: 'republish', topic: 'x' })) },
      /actions: a rule has at most 10 actions/,
    ],
    ['an unknown action type', { ...valid(), actions: [{ type: 'sns', topic: 'x' }] }, /actions\.0\.type/],
    [
      'qos 2',
      { ...valid(), actions: [{ type: 'republish', topic: 'x', qos: 2 }] },
      /actions\.0\.qos: qos must be 0 or 1/,
    ],
    ['an empty topic', { ...valid(), actions: [{ type: 'republish', topic: '' }] }, /actions\.0\.topic:/],
    [
      'a reserved topic written with one $',
      { ...valid(), actions: [{ type: 'republish', topic: '$aws/things/t/shadow/update' }] },
      /actions\.0\.topic: a reserved topic is written with \$\$/,
    ],
    [
      'a reserved job topic',
      { ...valid(), actions: [{ type: 'republish', topic: '$$aws/things/t/jobs/get' }] },
      /actions\.0\.topic: republishing to reserved job topics is not supported/,
    ],
    [
      'a wildcard in the topic',
      { ...valid(), actions: [{ type: 'republish', topic: 'fleet/+/x' }] },
      /actions\.0\.topic: a republish topic must not contain the wildcards/,
    ],
    [
      'an unknown separator',
      { ...valid(), actions: [{ type: 'firehose', deliveryStreamName: 's', separator: ';' }] },
      /actions\.0\.separator: separator must be one of/,
    ],
    [
      'a non-boolean batchMode',
      { ...valid(), actions: [{ type: 'firehose', deliveryStreamName: 's', batchMode: 'yes' }] },
      /actions\.0\.batchMode:/,
    ],
    [
      'a templated stream name',
      { ...valid(), actions: [{ type: 'firehose', deliveryStreamName: '${topic()}' }] },
      /actions\.0\.deliveryStreamName: deliveryStreamName must be a literal name/,
    ],
    [
      'an invalid bucket name',
      { ...valid(), actions: [{ type: 's3', bucketName: 'My_Bucket', key: 'k' }] },
      /actions\.0\.bucketName: bucketName must match the S3 bucket naming rules/,
    ],
    [
      'an unknown canned ACL',
      { ...valid(), actions: [{ type: 's3', bucketName: 'bucket', key: 'k', cannedAcl: 'everyone' }] },
      /actions\.0\.cannedAcl:/,
    ],
    [
      'an empty S3 key',
      { ...valid(), actions: [{ type: 's3', bucketName: 'bucket', key: '' }] },
      /actions\.0\.key:/,
    ],
    [
      'an invalid function name',
      { ...valid(), actions: [{ type: 'lambda', functionName: 'my function' }] },
      /actions\.0\.functionName: functionName must match/,
    ],
    [
      'a bad error action',
      { ...valid(), errorAction: { type: 'republish', topic: 'x', qos: 5 } },
      /errorAction\.qos: qos must be 0 or 1/,
    ],
    [
      'an unknown field',
      { ...valid(), enabled: true },
      /rule 'test_rule' \(rules\[0\]\): \(root\): .*enabled/,
    ],
    [
      'an unknown action parameter',
      { ...valid(), actions: [{ type: 'republish', topic: 'x', roleArn: 'arn:aws:iam::1:role/r' }] },
      /actions\.0: .*roleArn/,
    ],
  ])('rejects %s, naming the field', (_what, input, message) => {
    expect(rejection(input)).toMatch(message);
  });

  test('rejects a second rule with the same name', () => {
    expect(() => parseRuleDefinitions([valid(), valid()])).toThrow(
      /rule 'test_rule' \(rules\[1\]\): name: duplicate rule name/,
    );
  });

  test('rejects a lambda action whose handler does not exist, when the handlers are given', () => {
    const input = {
      ...valid(),
      actions: [
        { type: 'republish', topic: 'x' },
        { type: 'lambda', functionName: 'nope' },
      ],
    };
    expect(rejection(input, { functionNames: ['other'] })).toMatch(
      /actions\.1\.functionName: no Lambda handler named 'nope' in cloud\/functions/,
    );
    expect(() => parseRuleDefinitions([input], { functionNames: ['nope'] })).not.toThrow();
  });

  test('the error names the offending field in its `field` property', () => {
    try {
      parseRuleDefinitions([{ ...valid(), actions: [{ type: 'republish', topic: 'x', qos: 2 }] }]);
      throw new Error('accepted');
    } catch (err) {
      expect((err as RuleDefinitionError).field).toBe('actions.0.qos');
    }
  });
});

describe('template helpers', () => {
  test.each([
    ['fleet/heartbeats', 'fleet/heartbeats'],
    ['things/${topic(2)}/ack', 'things/*/ack'],
    ['${topic()}/${timestamp()}', '*/*'],
    ['a/${topic(2)}${timestamp()}.json', 'a/*.json'],
    ["x/${concat('}', '{')}/y", 'x/*/y'],
    ['x/${ {"a": 1}.a }/y', 'x/*/y'],
  ])('substitutionPattern(%j) is %j', (template, pattern) => {
    expect(substitutionPattern(template)).toBe(pattern);
  });

  test('republishTarget turns the $$ of a reserved topic into $', () => {
    expect(republishTarget('$$aws/things/t/shadow/update')).toBe('$aws/things/t/shadow/update');
    expect(republishTarget('fleet/x')).toBe('fleet/x');
  });

  test('literalPrefix and isReservedJobTopic', () => {
    expect(literalPrefix('a/b/${topic()}/c')).toBe('a/b/');
    expect(isReservedJobTopic('$aws/things/t/jobs/get')).toBe(true);
    expect(isReservedJobTopic('$aws/things/t/jobs')).toBe(true);
    expect(isReservedJobTopic('$aws/things/t/shadow/update')).toBe(false);
    expect(isReservedJobTopic('things/t/jobs/get')).toBe(false);
  });
});
