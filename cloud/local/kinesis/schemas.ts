/**
 * The request shapes of the Kinesis Data Streams API subset (JSON 1.1 bodies), with the model's
 * constraints (lengths, patterns, ranges, enums) as the API Reference gives them. A request that breaks
 * one is answered with ValidationException naming the member; a request that is well-formed but cannot
 * be served (a missing stream identifier, a sequence number of another shard) with
 * InvalidArgumentException.
 */
import { z } from 'zod';
import { KinesisValidationError } from './errors.js';

/** Largest record: data plus partition key, 1 MiB. */
export const MAX_RECORD_BYTES = 1024 * 1024;
/** Most records in one PutRecords. */
export const MAX_PUT_RECORDS = 500;
/** Largest PutRecords: 5 MiB of data and partition keys. */
export const MAX_PUT_RECORDS_BYTES = 5 * 1024 * 1024;
/** Most records one GetRecords returns. */
export const MAX_GET_RECORDS = 10_000;

export const StreamName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[a-zA-Z0-9_.-]+$/, 'must match [a-zA-Z0-9_.-]+');
export const StreamARN = z
  .string()
  .min(1)
  .max(2048)
  .regex(/^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream\/\S+$/, 'must be a Kinesis stream ARN');
const ShardId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[a-zA-Z0-9_.-]+$/, 'must match [a-zA-Z0-9_.-]+');
const SequenceNumber = z.string().regex(/^(0|[1-9]\d{0,128})$/, 'must be a decimal sequence number');
const HashKey = z.string().regex(/^(0|[1-9]\d{0,38})$/, 'must be a decimal hash key');
const PartitionKey = z
  .string()
  .refine((s) => [...s].length >= 1, 'must be at least 1 Unicode character long')
  .refine((s) => [...s].length <= 256, 'must be at most 256 Unicode characters long');
/** A blob: base64 on the wire, at most 1 MiB decoded. */
const Data = z
  .string()
  .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64')
  .transform((s) => Buffer.from(s, 'base64'))
  .refine((b) => b.length <= MAX_RECORD_BYTES, `must be at most ${MAX_RECORD_BYTES} bytes`);
/** Timestamps are epoch seconds (with a fraction) in JSON 1.1. */
const Timestamp = z.number().nonnegative();

const StreamId = {
  StreamName: StreamName.optional(),
  StreamARN: StreamARN.optional(),
};

const PutRecordsEntry = z.object({
  Data,
  ExplicitHashKey: HashKey.optional(),
  PartitionKey,
});

export const Schemas = {
  CreateStream: z.object({
    StreamName,
    ShardCount: z.number().int().min(1).max(100_000).optional(),
    StreamModeDetails: z.object({ StreamMode: z.enum(['PROVISIONED', 'ON_DEMAND']) }).optional(),
    Tags: z.record(z.string().min(1).max(128), z.string().max(256)).optional(),
  }),
  DescribeStreamSummary: z.object(StreamId),
  ListStreams: z.object({
    Limit: z.number().int().min(1).max(10_000).optional(),
    ExclusiveStartStreamName: StreamName.optional(),
    NextToken: z.string().min(1).max(1_048_576).optional(),
  }),
  ListShards: z.object({
    ...StreamId,
    NextToken: z.string().min(1).max(1_048_576).optional(),
    ExclusiveStartShardId: ShardId.optional(),
    MaxResults: z.number().int().min(1).max(10_000).optional(),
    StreamCreationTimestamp: Timestamp.optional(),
    ShardFilter: z
      .object({
        Type: z.enum([
          'AFTER_SHARD_ID',
          'AT_TRIM_HORIZON',
          'FROM_TRIM_HORIZON',
          'AT_LATEST',
          'AT_TIMESTAMP',
          'FROM_TIMESTAMP',
        ]),
        ShardId: ShardId.optional(),
        Timestamp: Timestamp.optional(),
      })
      .optional(),
  }),
  DeleteStream: z.object({ ...StreamId, EnforceConsumerDeletion: z.boolean().optional() }),
  IncreaseStreamRetentionPeriod: z.object({ ...StreamId, RetentionPeriodHours: z.number().int() }),
  DecreaseStreamRetentionPeriod: z.object({ ...StreamId, RetentionPeriodHours: z.number().int() }),
  PutRecord: z.object({
    ...StreamId,
    Data,
    PartitionKey,
    ExplicitHashKey: HashKey.optional(),
    SequenceNumberForOrdering: SequenceNumber.optional(),
  }),
  PutRecords: z.object({
    ...StreamId,
    Records: z.array(PutRecordsEntry).min(1).max(MAX_PUT_RECORDS),
  }),
  GetShardIterator: z.object({
    ...StreamId,
    ShardId,
    ShardIteratorType: z.enum([
      'AT_SEQUENCE_NUMBER',
      'AFTER_SEQUENCE_NUMBER',
      'TRIM_HORIZON',
      'LATEST',
      'AT_TIMESTAMP',
    ]),
    StartingSequenceNumber: SequenceNumber.optional(),
    Timestamp: Timestamp.optional(),
  }),
  GetRecords: z.object({
    ShardIterator: z.string().min(1).max(512),
    Limit: z.number().int().min(1).max(MAX_GET_RECORDS).optional(),
    StreamARN: StreamARN.optional(),
  }),
};

export type Operation = keyof typeof Schemas;
export type Request<K extends Operation> = z.output<(typeof Schemas)[K]>;

/** Parses a request, or throws ValidationException naming the first member that breaks a constraint. */
export function parseRequest<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = (issue?.path ?? []).map((p) => (typeof p === 'number' ? String(p + 1) : String(p)));
  const field = path.join('.') || '(request)';
  let message = issue?.message ?? 'is invalid';
  if (issue?.code === 'invalid_type' && /received undefined/.test(issue.message)) message = 'is required';
  else if (issue?.code === 'invalid_value') message = `must be one of ${issue.values.map(String).join(', ')}`;
  else if (issue?.code === 'too_big' && issue.origin === 'number')
    message = `must be at most ${issue.maximum}`;
  else if (issue?.code === 'too_small' && issue.origin === 'number')
    message = `must be at least ${issue.minimum}`;
  else if (issue?.code === 'too_big' && issue.origin === 'array')
    message = `must have at most ${issue.maximum} members`;
  else if (issue?.code === 'too_small' && issue.origin === 'array')
    message = `must have at least ${issue.minimum} members`;
  else if (issue?.code === 'too_big' && issue.origin === 'string')
    message = `must be at most ${issue.maximum} characters long`;
  else if (issue?.code === 'too_small' && issue.origin === 'string')
    message = `must be at least ${issue.minimum} characters long`;
  throw new KinesisValidationError(
    `1 validation error detected: Value at '${field}' failed to satisfy constraint: ${message}`,
  );
}
