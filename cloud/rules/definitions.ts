/**
 * AWS IoT rules as data: the single source for the local rules engine (cloud/local/rules-engine.ts) and
 * the `AWS::IoT::TopicRule` resources of the CDK app (cloud/cdk/rules.ts).
 *
 * A rule is what "Creating an AWS IoT rule" describes: a name, an optional description, a SQL statement,
 * its SQL version, one or more actions and an optional error action. Limits are those of the IoT API
 * (TopicRule / TopicRulePayload): rule names match `^[a-zA-Z0-9_]+$` with 1 to 128 characters, and a
 * rule has at most 10 actions.
 */

import { z } from 'zod';
import { CREDENTIALS_REQUEST_FILTER } from '../../protocol/credentials.js';
import { EVENTS_FILTER } from '../../protocol/events.js';
import { ActionSchema } from './actions.js';
import { JITR_ACTIVATION_FUNCTION_NAME, JITR_EVENTS_FILTER } from './jitr.js';
import { TELEMETRY_DELIVERY_STREAM, TELEMETRY_FILTER } from './lake.js';
import { EVENT_ACK_FUNCTION_NAME, VENDING_FUNCTION_NAME } from './resources.js';
import { TELEMETRY_HR_FILTER, TELEMETRY_HR_STREAM } from './streams.js';

export const SQL_VERSIONS = ['2015-10-08', '2016-03-23', 'beta'] as const;
/**
 * The SQL version of a rule that does not name one. AWS itself falls back to 2015-10-08 when the
 * version is left out (CLI, CloudFormation), so the CDK app always writes the version explicitly.
 */
export const DEFAULT_RULE_SQL_VERSION = '2016-03-23' as const;

export const MAX_RULE_ACTIONS = 10;

export const RuleDefinitionSchema = z
  .object({
    name: z
      .string()
      .min(1, 'name must not be empty')
      .max(128, 'name is at most 128 characters')
      .regex(/^[a-zA-Z0-9_]+$/, 'name must match ^[a-zA-Z0-9_]+$ (letters, digits and underscores)'),
    description: z.string().optional(),
    sql: z.string().min(1, 'sql must not be empty'),
    sqlVersion: z
      .enum(SQL_VERSIONS, { error: `sqlVersion must be one of ${SQL_VERSIONS.join(', ')}` })
      .default(DEFAULT_RULE_SQL_VERSION),
    ruleDisabled: z.boolean().default(false),
    actions: z
      .array(ActionSchema)
      .min(1, 'a rule needs at least one action')
      .max(MAX_RULE_ACTIONS, `a rule has at most ${MAX_RULE_ACTIONS} actions`),
    errorAction: ActionSchema.optional(),
  })
  .strict();

export type RuleDefinition = z.output<typeof RuleDefinitionSchema>;
export type RuleDefinitionInput = z.input<typeof RuleDefinitionSchema>;

/** A rule definition is invalid; the message names the rule and the field. */
export class RuleDefinitionError extends Error {
  constructor(
    message: string,
    /** Path of the offending field, e.g. `[0].actions.1.qos`. */
    readonly field: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p) => String(p)).join('.');
}

export interface ParseRulesOptions {
  /**
   * Names of the Lambda handlers that exist (cloud/functions); when given, every lambda action must
   * name one of them.
   */
  functionNames?: Iterable<string>;
}

/**
 * Validates rule definitions. Throws {@link RuleDefinitionError} naming the rule and the field, for
 * example `rule 'x' (rules[0]): actions.1.qos: qos must be 0 or 1`. Rule names must be unique.
 */
export function parseRuleDefinitions(
  input: readonly unknown[],
  options: ParseRulesOptions = {},
): RuleDefinition[] {
  const known = options.functionNames === undefined ? undefined : new Set(options.functionNames);
  const seen = new Set<string>();
  return input.map((raw, i) => {
    const rawName =
      raw !== null && typeof raw === 'object' && typeof (raw as { name?: unknown }).name === 'string'
        ? (raw as { name: string }).name
        : undefined;
    const where = rawName === undefined ? `rules[${i}]` : `rule '${rawName}' (rules[${i}])`;
    const parsed = RuleDefinitionSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = formatPath(issue.path);
      throw new RuleDefinitionError(`${where}: ${field || '(root)'}: ${issue.message}`, field);
    }
    const rule = parsed.data;
    if (seen.has(rule.name)) {
      throw new RuleDefinitionError(`${where}: name: duplicate rule name '${rule.name}'`, 'name');
    }
    seen.add(rule.name);
    if (known) {
      const all = [
        ...rule.actions.map((a, k) => ({ a, path: `actions.${k}` })),
        ...(rule.errorAction ? [{ a: rule.errorAction, path: 'errorAction' }] : []),
      ];
      for (const { a, path } of all) {
        if (a.type === 'lambda' && !known.has(a.functionName)) {
          throw new RuleDefinitionError(
            `${where}: ${path}.functionName: no Lambda handler named '${a.functionName}' in cloud/functions`,
            `${path}.functionName`,
          );
        }
      }
    }
    return rule;
  });
}

/** Validates one rule definition (see {@link parseRuleDefinitions}). */
export function parseRuleDefinition(input: unknown, options: ParseRulesOptions = {}): RuleDefinition {
  return parseRuleDefinitions([input], options)[0]!;
}

/** Topic on which operators watch gateway heartbeats. */
export const FLEET_HEARTBEATS_TOPIC = 'fleet/heartbeats';
/** Topic on which the fleet rules' error actions report failed actions. */
export const FLEET_ERRORS_TOPIC = 'fleet/errors';

/**
 * The project's rules. Lambda actions name handlers of cloud/functions; the CDK app maps function,
 * stream and bucket names to its resources.
 */
export const RULES: readonly RuleDefinition[] = Object.freeze(
  parseRuleDefinitions([
    {
      name: 'edgefleet_heartbeats',
      description: 'Gateway heartbeats, with the thing name and arrival time, for fleet operators',
      sql: "SELECT topic(2) AS thing, timestamp() AS receivedAt, * FROM 'dt/+/heartbeat'",
      sqlVersion: '2016-03-23',
      actions: [{ type: 'republish', topic: FLEET_HEARTBEATS_TOPIC, qos: 0 }],
      errorAction: { type: 'republish', topic: FLEET_ERRORS_TOPIC, qos: 0 },
    },
    {
      name: 'edgefleet_credentials',
      description:
        'Temporary credentials for gateways: the vending function answers on the thing response topic',
      sql: `SELECT *, clientid() AS clientId, topic(2) AS thingName FROM '${CREDENTIALS_REQUEST_FILTER}'`,
      sqlVersion: '2016-03-23',
      actions: [{ type: 'lambda', functionName: VENDING_FUNCTION_NAME }],
      errorAction: { type: 'republish', topic: FLEET_ERRORS_TOPIC, qos: 0 },
    },
    {
      name: 'edgefleet_events',
      description: 'Exactly-once gateway events: stored once per message id and acknowledged to the gateway',
      sql: `SELECT *, clientid() AS clientId, topic(2) AS thingName FROM '${EVENTS_FILTER}'`,
      sqlVersion: '2016-03-23',
      actions: [{ type: 'lambda', functionName: EVENT_ACK_FUNCTION_NAME }],
      errorAction: { type: 'republish', topic: FLEET_ERRORS_TOPIC, qos: 0 },
    },
    {
      name: 'edgefleet_telemetry',
      description:
        'Streaming telemetry into the data lake: Firehose partitions it by thing, date and hour (lake/telemetry/)',
      sql: `SELECT *, topic(2) AS thing, timestamp() AS ingest_ts FROM '${TELEMETRY_FILTER}'`,
      sqlVersion: '2016-03-23',
      // A gateway publishes an array of records per message; batchMode sends one Firehose record
      // per element (PutRecordBatch), each ended by a newline so the objects are NDJSON.
      actions: [
        { type: 'firehose', deliveryStreamName: TELEMETRY_DELIVERY_STREAM, separator: '\n', batchMode: true },
      ],
      errorAction: { type: 'republish', topic: FLEET_ERRORS_TOPIC, qos: 0 },
    },
    {
      name: 'edgefleet_jitr',
      description:
        'Just-in-time registration: the activation function checks each newly registered device certificate against the allow-list and the CA CRL, then provisions and activates it or revokes it',
      sql: `SELECT * FROM '${JITR_EVENTS_FILTER}'`,
      sqlVersion: '2016-03-23',
      actions: [{ type: 'lambda', functionName: JITR_ACTIVATION_FUNCTION_NAME }],
      errorAction: { type: 'republish', topic: FLEET_ERRORS_TOPIC, qos: 0 },
    },
    {
      name: 'edgefleet_telemetry_hr',
      description:
        'High-rate telemetry into a Kinesis stream partitioned by thing, for streaming anomaly detection',
      sql: `SELECT *, topic(2) AS thing FROM '${TELEMETRY_HR_FILTER}'`,
      sqlVersion: '2016-03-23',
      // One thing's readings share a partition key, hence a shard, and keep their order.
      actions: [{ type: 'kinesis', streamName: TELEMETRY_HR_STREAM, partitionKey: '${topic(2)}' }],
      errorAction: { type: 'republish', topic: FLEET_ERRORS_TOPIC, qos: 0 },
    },
  ] satisfies RuleDefinitionInput[]),
);
