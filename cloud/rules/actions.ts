/**
 * Rule actions as data: the subset of AWS IoT rule actions the project uses (republish, lambda,
 * firehose, kinesis, s3), validated with zod. The same values drive the local rules engine (cloud/local) and
 * the `AWS::IoT::TopicRule` resources of the CDK app (cloud/cdk/rules.ts).
 *
 * Parameters and their limits follow "AWS IoT rule actions" (Republish, Lambda, Firehose, S3) and the
 * IoT API reference (RepublishAction, MqttHeaders, FirehoseAction, S3Action). Parameters that name an
 * AWS resource (function, delivery stream, bucket) are literal names here, not substitution templates:
 * the CDK app maps each name to the resource it grants access to, which a per-message name would defeat.
 */
import { z } from 'zod';
import { scanTemplate } from './sql/index.js';

/** "Firehose" rule action: the separators AWS IoT accepts (FirehoseAction pattern `([\n\t])|(\r\n)|(,)`). */
export const FIREHOSE_SEPARATORS = ['\n', '\r\n', ',', '\t'] as const;
export type FirehoseSeparator = (typeof FIREHOSE_SEPARATORS)[number];

/** "Firehose" rule action: a batch (`batchMode` with an Array result) holds at most 500 records. */
export const FIREHOSE_MAX_BATCH_RECORDS = 500;

/** "S3" rule action / AWS::IoT::TopicRule S3Action: the allowed canned ACLs. */
export const S3_CANNED_ACLS = [
  'private',
  'public-read',
  'public-read-write',
  'aws-exec-read',
  'authenticated-read',
  'bucket-owner-read',
  'bucket-owner-full-control',
  'log-delivery-write',
] as const;
export type S3CannedAcl = (typeof S3_CANNED_ACLS)[number];

/** Text that contains a substitution template (`${expression}`). */
export const hasSubstitution = (s: string): boolean => s.includes('${');

const literalName = (what: string, pattern: RegExp, patternText: string, max: number) =>
  z
    .string()
    .min(1, `${what} must not be empty`)
    .max(max, `${what} is at most ${max} characters`)
    .refine((s) => !hasSubstitution(s), {
      message: `${what} must be a literal name, not a substitution template (the CDK app maps it to a resource)`,
    })
    .refine((s) => pattern.test(s), { message: `${what} must match ${patternText}` });

/**
 * A republish topic: a topic name with optional substitution templates. "Republish": a reserved topic
 * (starting with `$`) is written with `$$`; republishing to reserved job topics is not supported.
 */
const republishTopic = z
  .string()
  .min(1, 'topic must not be empty')
  .superRefine((topic, ctx) => {
    if (topic.startsWith('$') && !topic.startsWith('$$') && !topic.startsWith('${')) {
      ctx.addIssue({
        code: 'custom',
        message: `a reserved topic is written with $$ (for example $$aws/things/thing/shadow/update), not '${topic}'`,
      });
      return;
    }
    const literal = literalPrefix(republishTarget(topic));
    if (isReservedJobTopic(literal)) {
      ctx.addIssue({ code: 'custom', message: 'republishing to reserved job topics is not supported' });
    }
    const outside = topic.replace(/\$\{[^}]*\}/g, '');
    if (outside.includes('+') || outside.includes('#')) {
      ctx.addIssue({ code: 'custom', message: 'a republish topic must not contain the wildcards + or #' });
    }
  });

/** The text before the first substitution template. */
export function literalPrefix(template: string): string {
  const i = template.indexOf('${');
  return i < 0 ? template : template.slice(0, i);
}

/**
 * The template with every `${expression}` replaced by `*`: the IAM resource pattern that covers every
 * value the template can render to. Braces inside quoted strings and nested object literals are skipped
 * the way the template parser skips them.
 */
export function substitutionPattern(template: string): string {
  const out = scanTemplate(template)
    .map((p) => (p.kind === 'text' ? p.text : '*'))
    .join('');
  // Adjacent substitutions make one wildcard.
  return out.replace(/\*{2,}/g, '*');
}

/** The topic a republish action publishes to, with the `$$` of reserved topics turned into `$`. */
export function republishTarget(topic: string): string {
  return topic.startsWith('$$') ? topic.slice(1) : topic;
}

/** Reserved job topics (`$aws/things/{thing}/jobs/...`), which the republish action does not support. */
export function isReservedJobTopic(topic: string): boolean {
  return /^\$aws\/things\/[^/]+\/jobs(\/|$)/.test(topic);
}

/** MqttHeaders (IoT API reference): MQTT 5 properties of a republished message; all take templates. */
export const RepublishHeadersSchema = z
  .object({
    payloadFormatIndicator: z.string().max(1024).optional(),
    contentType: z.string().max(1024).optional(),
    responseTopic: z.string().max(1024).optional(),
    correlationData: z.string().max(1024).optional(),
    messageExpiry: z.string().max(1024).optional(),
    userProperties: z
      .array(z.object({ key: z.string().min(1).max(1024), value: z.string().max(1024) }).strict())
      .min(1)
      .max(100)
      .optional(),
  })
  .strict();
export type RepublishHeaders = z.output<typeof RepublishHeadersSchema>;

export const RepublishActionSchema = z
  .object({
    type: z.literal('republish'),
    /** Topic name; supports substitution templates; `$$` for reserved topics. */
    topic: republishTopic,
    /** "Republish": valid values 0 and 1, default 0. */
    qos: z.union([z.literal(0), z.literal(1)], { error: 'qos must be 0 or 1' }).default(0),
    headers: RepublishHeadersSchema.optional(),
  })
  .strict();

export const LambdaActionSchema = z
  .object({
    type: z.literal('lambda'),
    /** A key of the handler registry in cloud/functions (and of the CDK app's function map). */
    functionName: literalName('functionName', /^[a-zA-Z0-9_-]+$/, '[a-zA-Z0-9_-]+', 64),
  })
  .strict();

export const FirehoseActionSchema = z
  .object({
    type: z.literal('firehose'),
    deliveryStreamName: literalName('deliveryStreamName', /^[a-zA-Z0-9_.-]+$/, '[a-zA-Z0-9_.-]+', 64),
    /** Appended to every record; omitted means no separator. */
    separator: z
      .enum(FIREHOSE_SEPARATORS, { error: "separator must be one of '\\n', '\\r\\n', ',', '\\t'" })
      .optional(),
    /** PutRecordBatch with one record per element when the SELECT result is an Array. */
    batchMode: z.boolean().optional(),
  })
  .strict();

/**
 * "Kinesis Data Streams" rule action (KinesisAction): PutRecord on a stream, with a partition key that
 * takes substitution templates (e.g. `${topic(2)}`, so each thing's messages keep their order); without
 * one, AWS IoT uses a random key.
 */
export const KinesisActionSchema = z
  .object({
    type: z.literal('kinesis'),
    streamName: literalName('streamName', /^[a-zA-Z0-9_.-]+$/, '[a-zA-Z0-9_.-]+', 128),
    partitionKey: z.string().min(1, 'partitionKey must not be empty').max(256).optional(),
  })
  .strict();

export const S3ActionSchema = z
  .object({
    type: z.literal('s3'),
    bucketName: literalName(
      'bucketName',
      /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
      'the S3 bucket naming rules (3-63 characters: a-z, 0-9, dots and hyphens)',
      63,
    ),
    /** Object key; supports substitution templates. */
    key: z.string().min(1, 'key must not be empty').max(1024),
    cannedAcl: z.enum(S3_CANNED_ACLS).optional(),
  })
  .strict();

export const ActionSchema = z.discriminatedUnion('type', [
  RepublishActionSchema,
  LambdaActionSchema,
  FirehoseActionSchema,
  KinesisActionSchema,
  S3ActionSchema,
]);

export type RepublishAction = z.output<typeof RepublishActionSchema>;
export type LambdaAction = z.output<typeof LambdaActionSchema>;
export type FirehoseAction = z.output<typeof FirehoseActionSchema>;
export type KinesisAction = z.output<typeof KinesisActionSchema>;
export type S3Action = z.output<typeof S3ActionSchema>;
export type RuleAction = z.output<typeof ActionSchema>;
export type RuleActionInput = z.input<typeof ActionSchema>;
export type RuleActionType = RuleAction['type'];

/** The name AWS IoT gives a failed action in the error action message (`failedAction`, e.g. "S3Action"). */
export const FAILED_ACTION_NAMES: Readonly<Record<RuleActionType, string>> = {
  republish: 'RepublishAction',
  lambda: 'LambdaAction',
  firehose: 'FirehoseAction',
  kinesis: 'KinesisAction',
  s3: 'S3Action',
};

/** Every substitution template of an action, by parameter path (for compiling them up front). */
export function actionTemplates(action: RuleAction): { path: string; template: string }[] {
  switch (action.type) {
    case 'republish': {
      const out = [{ path: 'topic', template: republishTarget(action.topic) }];
      const h = action.headers;
      if (h) {
        for (const k of [
          'payloadFormatIndicator',
          'contentType',
          'responseTopic',
          'correlationData',
          'messageExpiry',
        ] as const) {
          const v = h[k];
          if (v !== undefined) out.push({ path: `headers.${k}`, template: v });
        }
        h.userProperties?.forEach((p, i) => {
          out.push({ path: `headers.userProperties.${i}.key`, template: p.key });
          out.push({ path: `headers.userProperties.${i}.value`, template: p.value });
        });
      }
      return out;
    }
    case 's3':
      return [{ path: 'key', template: action.key }];
    case 'kinesis':
      return action.partitionKey === undefined
        ? []
        : [{ path: 'partitionKey', template: action.partitionKey }];
    case 'lambda':
    case 'firehose':
      return [];
  }
}
