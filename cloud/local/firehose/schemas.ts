/**
 * The request shapes of the Firehose API subset (JSON 1.1 bodies), with the model's constraints
 * (lengths, patterns, ranges, enums) as the API Reference gives them. A request that breaks one is
 * answered with InvalidArgumentException naming the member.
 */
import { z } from 'zod';
import { invalidArgument } from './errors.js';

/** Largest record, before base64 (1,000 KiB). */
export const MAX_RECORD_BYTES = 1_024_000;
/** Most records in one PutRecordBatch. */
export const MAX_BATCH_RECORDS = 500;
/** Largest PutRecordBatch: 4 MiB of record data. */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024;

export const DeliveryStreamName = z
  .string()
  .min(1, 'must be at least 1 character long')
  .max(64, 'must be at most 64 characters long')
  .regex(/^[a-zA-Z0-9._-]+$/, 'must match [a-zA-Z0-9._-]+');

const RoleARN = z
  .string()
  .min(1)
  .max(512)
  .regex(/^arn:.*:iam::\d{12}:role\/[a-zA-Z_0-9+=,.@\-_/]+$/, 'must be an IAM role ARN');
const BucketARN = z
  .string()
  .min(1)
  .max(2048)
  .regex(/^arn:.*:s3:::[\w.-]{1,255}$/, 'must be an S3 bucket ARN (arn:aws:s3:::bucket)');
const Prefix = z.string().max(1024, 'must be at most 1024 characters long');

export const BufferingHintsSchema = z.object({
  SizeInMBs: z.number().int().min(1).max(128).optional(),
  IntervalInSeconds: z.number().int().min(0).max(900).optional(),
});

export const CompressionFormatSchema = z.enum(['UNCOMPRESSED', 'GZIP', 'ZIP', 'Snappy', 'HADOOP_SNAPPY']);

const EncryptionConfiguration = z.object({
  NoEncryptionConfig: z.literal('NoEncryption').optional(),
  KMSEncryptionConfig: z
    .object({
      AWSKMSKeyARN: z
        .string()
        .min(1)
        .max(512)
        .regex(/^arn:.*/, 'must be an ARN'),
    })
    .optional(),
});

const CloudWatchLoggingOptions = z.object({
  Enabled: z.boolean().optional(),
  LogGroupName: z.string().max(512).optional(),
  LogStreamName: z.string().max(512).optional(),
});

export const ProcessorTypeSchema = z.enum([
  'RecordDeAggregation',
  'Decompression',
  'CloudWatchLogProcessing',
  'Lambda',
  'MetadataExtraction',
  'AppendDelimiterToRecord',
]);

const ProcessorParameter = z.object({
  ParameterName: z.enum([
    'LambdaArn',
    'NumberOfRetries',
    'MetadataExtractionQuery',
    'JsonParsingEngine',
    'RoleArn',
    'BufferSizeInMBs',
    'BufferIntervalInSeconds',
    'SubRecordType',
    'Delimiter',
    'CompressionFormat',
    'DataMessageExtraction',
  ]),
  ParameterValue: z
    .string()
    .min(1)
    .max(5120)
    .regex(/^(?!\s*$).+/s, 'must not be blank'),
});

const ProcessingConfiguration = z.object({
  Enabled: z.boolean().optional(),
  Processors: z
    .array(z.object({ Type: ProcessorTypeSchema, Parameters: z.array(ProcessorParameter).optional() }))
    .optional(),
});

const DynamicPartitioningConfiguration = z.object({
  Enabled: z.boolean().optional(),
  RetryOptions: z.object({ DurationInSeconds: z.number().int().min(0).max(7200).optional() }).optional(),
});

export const S3DestinationConfigurationSchema = z.object({
  RoleARN,
  BucketARN,
  Prefix: Prefix.optional(),
  ErrorOutputPrefix: Prefix.optional(),
  BufferingHints: BufferingHintsSchema.optional(),
  CompressionFormat: CompressionFormatSchema.optional(),
  EncryptionConfiguration: EncryptionConfiguration.optional(),
  CloudWatchLoggingOptions: CloudWatchLoggingOptions.optional(),
});

export const ExtendedS3DestinationConfigurationSchema = S3DestinationConfigurationSchema.extend({
  ProcessingConfiguration: ProcessingConfiguration.optional(),
  S3BackupMode: z.enum(['Disabled', 'Enabled']).optional(),
  S3BackupConfiguration: z.unknown().optional(),
  DataFormatConversionConfiguration: z.object({ Enabled: z.boolean().optional() }).loose().optional(),
  DynamicPartitioningConfiguration: DynamicPartitioningConfiguration.optional(),
  FileExtension: z
    .string()
    .max(128)
    .regex(/^$|^\.[0-9a-z!\-_.*'()]+$/, "must be empty or start with '.' followed by [0-9a-z!-_.*'()]")
    .optional(),
  CustomTimeZone: z
    .string()
    .max(50)
    .regex(/^$|^[a-zA-Z/_]+$/, 'must match [a-zA-Z/_]+')
    .optional(),
});

export type S3DestinationConfiguration = z.output<typeof S3DestinationConfigurationSchema>;
export type ExtendedS3DestinationConfiguration = z.output<typeof ExtendedS3DestinationConfigurationSchema>;

const Tag = z.object({
  Key: z
    .string()
    .min(1)
    .max(128)
    .regex(
      /^(?!aws:)[\p{L}\p{Z}\p{N}_.:/=+\-@%]*$/u,
      'must be letters, digits, spaces or _ . : / = + - @ % (not aws:)',
    ),
  Value: z
    .string()
    .max(256)
    .regex(/^[\p{L}\p{Z}\p{N}_.:/=+\-@%]*$/u, 'must be letters, digits, spaces or _ . : / = + - @ % ')
    .optional(),
});

export const CreateDeliveryStreamSchema = z.object({
  DeliveryStreamName,
  DeliveryStreamType: z
    .enum(['DirectPut', 'KinesisStreamAsSource', 'MSKAsSource', 'DatabaseAsSource'])
    .optional(),
  DirectPutSourceConfiguration: z
    .object({ ThroughputHintInMBs: z.number().int().min(1).max(100) })
    .optional(),
  DeliveryStreamEncryptionConfigurationInput: z
    .object({
      KeyARN: z
        .string()
        .min(1)
        .max(512)
        .regex(/^arn:.*/, 'must be an ARN')
        .optional(),
      KeyType: z.enum(['AWS_OWNED_CMK', 'CUSTOMER_MANAGED_CMK']),
    })
    .optional(),
  S3DestinationConfiguration: S3DestinationConfigurationSchema.optional(),
  ExtendedS3DestinationConfiguration: ExtendedS3DestinationConfigurationSchema.optional(),
  Tags: z.array(Tag).min(1).max(50).optional(),
  // Sources and destinations the local Firehose does not serve: present only to be refused by name.
  KinesisStreamSourceConfiguration: z.unknown().optional(),
  MSKSourceConfiguration: z.unknown().optional(),
  DatabaseSourceConfiguration: z.unknown().optional(),
  RedshiftDestinationConfiguration: z.unknown().optional(),
  ElasticsearchDestinationConfiguration: z.unknown().optional(),
  AmazonopensearchserviceDestinationConfiguration: z.unknown().optional(),
  AmazonOpenSearchServerlessDestinationConfiguration: z.unknown().optional(),
  SplunkDestinationConfiguration: z.unknown().optional(),
  HttpEndpointDestinationConfiguration: z.unknown().optional(),
  SnowflakeDestinationConfiguration: z.unknown().optional(),
  IcebergDestinationConfiguration: z.unknown().optional(),
});
export type CreateDeliveryStreamRequest = z.output<typeof CreateDeliveryStreamSchema>;

/** A blob member: base64 on the wire, decoded here. */
const Blob = z.string().transform((s, ctx) => {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 === 1) {
    ctx.addIssue({ code: 'custom', message: 'must be base64-encoded' });
    return z.NEVER;
  }
  return Buffer.from(s, 'base64');
});

const RecordSchema = z.object({
  Data: Blob.refine((b) => b.length <= MAX_RECORD_BYTES, {
    message: `must be at most ${MAX_RECORD_BYTES} bytes (1,000 KiB) before base64 encoding`,
  }),
});

export const Schemas = {
  CreateDeliveryStream: CreateDeliveryStreamSchema,
  DescribeDeliveryStream: z.object({
    DeliveryStreamName,
    Limit: z.number().int().min(1).max(10000).optional(),
    ExclusiveStartDestinationId: z.string().min(1).max(100).optional(),
  }),
  ListDeliveryStreams: z.object({
    Limit: z.number().int().min(1).max(10000).optional(),
    DeliveryStreamType: z
      .enum(['DirectPut', 'KinesisStreamAsSource', 'MSKAsSource', 'DatabaseAsSource'])
      .optional(),
    ExclusiveStartDeliveryStreamName: DeliveryStreamName.optional(),
  }),
  DeleteDeliveryStream: z.object({ DeliveryStreamName, AllowForceDelete: z.boolean().optional() }),
  PutRecord: z.object({ DeliveryStreamName, Record: RecordSchema }),
  PutRecordBatch: z.object({
    DeliveryStreamName,
    Records: z
      .array(RecordSchema)
      .min(1, 'must contain at least 1 record')
      .max(MAX_BATCH_RECORDS, `must contain at most ${MAX_BATCH_RECORDS} records`),
  }),
} as const;
export type Operation = keyof typeof Schemas;

/**
 * Parses `raw` with `schema`; throws InvalidArgumentException naming the member path (as on the wire,
 * e.g. `Records.3.Data`, 1-based like AWS's validation messages).
 */
export function parseRequest<S extends z.ZodType>(schema: S, raw: unknown, root = ''): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = (issue?.path ?? []).map((p) => (typeof p === 'number' ? String(p + 1) : String(p)));
  const field = [root, ...path].filter(Boolean).join('.') || '(request)';
  let message = issue?.message ?? 'is invalid';
  if (issue?.code === 'invalid_type' && /received undefined/.test(issue.message)) message = 'is required';
  else if (issue?.code === 'invalid_value') message = `must be one of ${issue.values.map(String).join(', ')}`;
  else if (issue?.code === 'too_big' && issue.origin === 'number')
    message = `must be at most ${issue.maximum}`;
  else if (issue?.code === 'too_small' && issue.origin === 'number')
    message = `must be at least ${issue.minimum}`;
  else if (issue?.code === 'too_big' && issue.origin === 'string')
    message = `must be at most ${issue.maximum} characters long`;
  else if (issue?.code === 'too_small' && issue.origin === 'string')
    message = `must be at least ${issue.minimum} characters long`;
  throw invalidArgument(`${field}: ${message}`);
}
