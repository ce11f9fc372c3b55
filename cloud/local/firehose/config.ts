/**
 * Delivery stream definitions: the checks CreateDeliveryStream makes beyond the request shapes, what is
 * stored, and the runtime plan (compiled prefixes, partitioning query, compression) a stream delivers
 * with.
 *
 * The local Firehose serves DirectPut streams with an S3 destination (ExtendedS3DestinationConfiguration
 * or the deprecated S3DestinationConfiguration), compression UNCOMPRESSED or GZIP, and the processors
 * MetadataExtraction (dynamic partitioning with inline parsing) and AppendDelimiterToRecord. Anything
 * else is refused with InvalidArgumentException naming the member, never accepted and ignored.
 */
import { z } from 'zod';
import { invalidArgument } from './errors.js';
import { compileMetadataQuery, type MetadataQuery } from './jq.js';
import { type DestinationPrefixes, destinationPrefixes } from './prefix.js';
import {
  type CreateDeliveryStreamRequest,
  type ExtendedS3DestinationConfiguration,
  ExtendedS3DestinationConfigurationSchema,
  type S3DestinationConfiguration,
} from './schemas.js';
import { isKnownTimeZone } from './time-format.js';

/** Documented defaults of BufferingHints. */
export const DEFAULT_SIZE_IN_MBS = 5;
export const DEFAULT_INTERVAL_IN_SECONDS = 300;
/** Smallest buffer size with dynamic partitioning. */
export const MIN_DYNAMIC_PARTITIONING_SIZE_IN_MBS = 64;
/** Retry duration of dynamic partitioning when none is given. */
export const DEFAULT_DYNAMIC_PARTITIONING_RETRY_SECONDS = 300;
/** The only destination of a stream. */
export const DESTINATION_ID = 'destinationId-000000000001';

/** What is stored for a stream (and answered by DescribeDeliveryStream); checked when it is read back. */
export const StoredStreamSchema = z.object({
  name: z.string(),
  arn: z.string(),
  /** ms since the epoch */
  createTimestamp: z.number(),
  versionId: z.string(),
  throughputHintInMBs: z.number().optional(),
  encryption: z
    .object({ keyType: z.enum(['AWS_OWNED_CMK', 'CUSTOMER_MANAGED_CMK']), keyArn: z.string().optional() })
    .optional(),
  tags: z.array(z.object({ Key: z.string(), Value: z.string().optional() })),
  /** Which member configured the destination. */
  destinationKind: z.enum(['ExtendedS3', 'S3']),
  /** The destination as configured (validated). */
  destination: ExtendedS3DestinationConfigurationSchema,
});
export type StoredStream = z.output<typeof StoredStreamSchema>;

/** How a stream delivers. */
export interface StreamPlan {
  name: string;
  roleArn: string;
  bucket: string;
  sizeBytes: number;
  intervalMs: number;
  compression: 'UNCOMPRESSED' | 'GZIP';
  /** The object name extension (FileExtension, or `.gz` for GZIP). */
  extension: string;
  timeZone?: string;
  prefixes: DestinationPrefixes;
  /** Dynamic partitioning with inline parsing. */
  query?: MetadataQuery;
  appendDelimiter: boolean;
  versionId: string;
}

const UNSUPPORTED_MEMBERS = [
  'KinesisStreamSourceConfiguration',
  'MSKSourceConfiguration',
  'DatabaseSourceConfiguration',
  'RedshiftDestinationConfiguration',
  'ElasticsearchDestinationConfiguration',
  'AmazonopensearchserviceDestinationConfiguration',
  'AmazonOpenSearchServerlessDestinationConfiguration',
  'SplunkDestinationConfiguration',
  'HttpEndpointDestinationConfiguration',
  'SnowflakeDestinationConfiguration',
  'IcebergDestinationConfiguration',
] as const;

export function streamArn(partition: string, region: string, accountId: string, name: string): string {
  return `arn:${partition}:firehose:${region}:${accountId}:deliverystream/${name}`;
}

function bucketOf(bucketArn: string): string {
  return bucketArn.slice(bucketArn.indexOf(':::') + 3);
}

interface ProcessorSettings {
  query?: MetadataQuery;
  appendDelimiter: boolean;
  enabled: boolean;
}

function processors(d: ExtendedS3DestinationConfiguration, field: string): ProcessorSettings {
  const pc = d.ProcessingConfiguration;
  const list = pc?.Processors ?? [];
  const enabled = pc?.Enabled === true;
  let query: MetadataQuery | undefined;
  let appendDelimiter = false;
  const seen = new Set<string>();
  list.forEach((p, i) => {
    const at = `${field}.ProcessingConfiguration.Processors.${i + 1}`;
    if (seen.has(p.Type)) throw invalidArgument(`${at}.Type: a ${p.Type} processor is configured twice`);
    seen.add(p.Type);
    const params = new Map<string, string>();
    for (const [j, param] of (p.Parameters ?? []).entries()) {
      if (params.has(param.ParameterName)) {
        throw invalidArgument(`${at}.Parameters.${j + 1}: ${param.ParameterName} is given twice`);
      }
      params.set(param.ParameterName, param.ParameterValue);
    }
    const allowOnly = (names: string[]) => {
      for (const name of params.keys()) {
        if (!names.includes(name)) {
          throw invalidArgument(
            `${at}.Parameters: ${name} is not a parameter of the ${p.Type} processor${names.length ? ` (its parameters are ${names.join(', ')})` : ' (it takes none)'}`,
          );
        }
      }
    };
    switch (p.Type) {
      case 'MetadataExtraction': {
        allowOnly(['MetadataExtractionQuery', 'JsonParsingEngine']);
        const text = params.get('MetadataExtractionQuery');
        if (text === undefined)
          throw invalidArgument(`${at}.Parameters: MetadataExtractionQuery is required`);
        const engine = params.get('JsonParsingEngine');
        if (engine !== 'JQ-1.6') {
          throw invalidArgument(
            `${at}.Parameters: JsonParsingEngine must be JQ-1.6 (the only engine of inline parsing)${engine === undefined ? '' : `, not ${engine}`}`,
          );
        }
        query = compileMetadataQuery(text, `${at}.Parameters.MetadataExtractionQuery`);
        break;
      }
      case 'AppendDelimiterToRecord':
        allowOnly([]);
        appendDelimiter = true;
        break;
      default:
        throw invalidArgument(
          `${at}.Type: the ${p.Type} processor is not supported by the local Firehose (it runs MetadataExtraction and AppendDelimiterToRecord)`,
        );
    }
  });
  return { enabled, appendDelimiter: enabled && appendDelimiter, ...(enabled && query ? { query } : {}) };
}

/**
 * Checks a CreateDeliveryStream request beyond its shape and returns what to store. Throws
 * InvalidArgumentException naming the member.
 */
export function validateCreateRequest(
  input: CreateDeliveryStreamRequest,
  ctx: { arn: string; now: number },
): StoredStream {
  for (const member of UNSUPPORTED_MEMBERS) {
    if (input[member] !== undefined) {
      throw invalidArgument(
        `${member} is not supported by the local Firehose: it serves DirectPut streams with an Amazon S3 destination`,
      );
    }
  }
  const type = input.DeliveryStreamType ?? 'DirectPut';
  if (type !== 'DirectPut') {
    throw invalidArgument(
      `DeliveryStreamType ${type} is not supported by the local Firehose (only DirectPut)`,
    );
  }
  const ext = input.ExtendedS3DestinationConfiguration;
  const plain = input.S3DestinationConfiguration;
  if (ext && plain) {
    throw invalidArgument(
      'Only one destination can be specified: ExtendedS3DestinationConfiguration or S3DestinationConfiguration',
    );
  }
  if (!ext && !plain) {
    throw invalidArgument(
      'A destination is required: ExtendedS3DestinationConfiguration (or the deprecated S3DestinationConfiguration)',
    );
  }
  const kind = ext ? 'ExtendedS3' : 'S3';
  const destination: ExtendedS3DestinationConfiguration = ext ?? (plain as S3DestinationConfiguration);
  const enc = input.DeliveryStreamEncryptionConfigurationInput;
  if (enc?.KeyType === 'CUSTOMER_MANAGED_CMK' && enc.KeyARN === undefined) {
    throw invalidArgument(
      'DeliveryStreamEncryptionConfigurationInput.KeyARN is required when KeyType is CUSTOMER_MANAGED_CMK',
    );
  }
  if (enc?.KeyType === 'AWS_OWNED_CMK' && enc.KeyARN !== undefined) {
    throw invalidArgument(
      'DeliveryStreamEncryptionConfigurationInput.KeyARN must not be given when KeyType is AWS_OWNED_CMK',
    );
  }
  const stored: StoredStream = {
    name: input.DeliveryStreamName,
    arn: ctx.arn,
    createTimestamp: ctx.now,
    versionId: '1',
    ...(input.DirectPutSourceConfiguration
      ? { throughputHintInMBs: input.DirectPutSourceConfiguration.ThroughputHintInMBs }
      : {}),
    ...(enc ? { encryption: { keyType: enc.KeyType, ...(enc.KeyARN ? { keyArn: enc.KeyARN } : {}) } } : {}),
    tags: input.Tags ?? [],
    destinationKind: kind,
    destination,
  };
  // Compiling checks every rule of the destination.
  compileStream(stored);
  return stored;
}

/**
 * The runtime plan of a stored stream. Also the semantic validation of its destination: throws
 * InvalidArgumentException naming the member.
 */
export function compileStream(s: StoredStream): StreamPlan {
  const field = `${s.destinationKind}DestinationConfiguration`;
  const d = s.destination;
  const hints = d.BufferingHints;
  if (hints && (hints.SizeInMBs === undefined) !== (hints.IntervalInSeconds === undefined)) {
    throw invalidArgument(
      `${field}.BufferingHints: SizeInMBs and IntervalInSeconds must be specified together (${hints.SizeInMBs === undefined ? 'SizeInMBs' : 'IntervalInSeconds'} is missing)`,
    );
  }
  const sizeInMBs = hints?.SizeInMBs ?? DEFAULT_SIZE_IN_MBS;
  const intervalInSeconds = hints?.IntervalInSeconds ?? DEFAULT_INTERVAL_IN_SECONDS;
  const compression = d.CompressionFormat ?? 'UNCOMPRESSED';
  if (compression !== 'UNCOMPRESSED' && compression !== 'GZIP') {
    throw invalidArgument(
      `${field}.CompressionFormat: ${compression} is not supported by the local Firehose (UNCOMPRESSED or GZIP)`,
    );
  }
  if (d.EncryptionConfiguration?.KMSEncryptionConfig) {
    throw invalidArgument(
      `${field}.EncryptionConfiguration.KMSEncryptionConfig is not supported by the local Firehose (use NoEncryption)`,
    );
  }
  if (d.EncryptionConfiguration?.NoEncryptionConfig === undefined && d.EncryptionConfiguration) {
    throw invalidArgument(
      `${field}.EncryptionConfiguration: NoEncryptionConfig or KMSEncryptionConfig is required`,
    );
  }
  if (d.S3BackupMode === 'Enabled' || d.S3BackupConfiguration !== undefined) {
    throw invalidArgument(
      `${field}: S3 backup (S3BackupMode Enabled) is not supported by the local Firehose`,
    );
  }
  if (d.DataFormatConversionConfiguration && d.DataFormatConversionConfiguration.Enabled !== false) {
    throw invalidArgument(
      `${field}.DataFormatConversionConfiguration: record format conversion is not supported by the local Firehose`,
    );
  }
  const timeZone = d.CustomTimeZone === '' ? undefined : d.CustomTimeZone;
  if (timeZone !== undefined && !isKnownTimeZone(timeZone)) {
    throw invalidArgument(`${field}.CustomTimeZone: '${timeZone}' is not a supported time zone`);
  }
  const dynamic = d.DynamicPartitioningConfiguration?.Enabled === true;
  const proc = processors(d, field);
  if (proc.query && !dynamic) {
    throw invalidArgument(
      `${field}.ProcessingConfiguration: the MetadataExtraction processor requires dynamic partitioning (DynamicPartitioningConfiguration.Enabled)`,
    );
  }
  if (dynamic) {
    if (!proc.query) {
      throw invalidArgument(
        `${field}: dynamic partitioning needs a way to make partition keys: an enabled ProcessingConfiguration with a MetadataExtraction processor`,
      );
    }
    if (sizeInMBs < MIN_DYNAMIC_PARTITIONING_SIZE_IN_MBS) {
      throw invalidArgument(
        `${field}.BufferingHints.SizeInMBs must be at least ${MIN_DYNAMIC_PARTITIONING_SIZE_IN_MBS} when Dynamic Partitioning is enabled${hints ? '' : ` (the default is ${DEFAULT_SIZE_IN_MBS})`}`,
      );
    }
    if (intervalInSeconds === 0) {
      throw invalidArgument(
        `${field}.BufferingHints.IntervalInSeconds: zero buffering is not available with dynamic partitioning`,
      );
    }
    if (!d.ErrorOutputPrefix) {
      throw invalidArgument(`${field}.ErrorOutputPrefix is required when dynamic partitioning is enabled`);
    }
  }
  const prefixes = destinationPrefixes({
    prefix: d.Prefix,
    errorOutputPrefix: d.ErrorOutputPrefix,
    dynamicPartitioning: dynamic,
    ...(proc.query ? { queryKeys: proc.query.keys } : {}),
    field,
  });
  const fileExtension = d.FileExtension === '' ? undefined : d.FileExtension;
  return {
    name: s.name,
    roleArn: d.RoleARN,
    bucket: bucketOf(d.BucketARN),
    sizeBytes: sizeInMBs * 1024 * 1024,
    intervalMs: intervalInSeconds * 1000,
    compression,
    extension: fileExtension ?? (compression === 'GZIP' ? '.gz' : ''),
    ...(timeZone !== undefined ? { timeZone } : {}),
    prefixes,
    ...(proc.query ? { query: proc.query } : {}),
    appendDelimiter: proc.appendDelimiter,
    versionId: s.versionId,
  };
}

/** The DescribeDeliveryStream answer's description (JSON 1.1: timestamps in epoch seconds). */
export function describeStream(
  s: StoredStream,
  opts: { exclusiveStartDestinationId?: string } = {},
): Record<string, unknown> {
  const d = s.destination;
  const hints = {
    SizeInMBs: d.BufferingHints?.SizeInMBs ?? DEFAULT_SIZE_IN_MBS,
    IntervalInSeconds: d.BufferingHints?.IntervalInSeconds ?? DEFAULT_INTERVAL_IN_SECONDS,
  };
  const common = {
    RoleARN: d.RoleARN,
    BucketARN: d.BucketARN,
    ...(d.Prefix !== undefined ? { Prefix: d.Prefix } : {}),
    ...(d.ErrorOutputPrefix !== undefined ? { ErrorOutputPrefix: d.ErrorOutputPrefix } : {}),
    BufferingHints: hints,
    CompressionFormat: d.CompressionFormat ?? 'UNCOMPRESSED',
    EncryptionConfiguration: { NoEncryptionConfig: 'NoEncryption' },
    CloudWatchLoggingOptions: d.CloudWatchLoggingOptions ?? { Enabled: false },
  };
  const extended = {
    ...common,
    ...(d.ProcessingConfiguration ? { ProcessingConfiguration: d.ProcessingConfiguration } : {}),
    S3BackupMode: d.S3BackupMode ?? 'Disabled',
    ...(d.DataFormatConversionConfiguration
      ? { DataFormatConversionConfiguration: d.DataFormatConversionConfiguration }
      : {}),
    ...(d.DynamicPartitioningConfiguration
      ? {
          DynamicPartitioningConfiguration: {
            Enabled: d.DynamicPartitioningConfiguration.Enabled === true,
            RetryOptions: {
              DurationInSeconds:
                d.DynamicPartitioningConfiguration.RetryOptions?.DurationInSeconds ??
                DEFAULT_DYNAMIC_PARTITIONING_RETRY_SECONDS,
            },
          },
        }
      : {}),
    ...(d.FileExtension !== undefined ? { FileExtension: d.FileExtension } : {}),
    ...(d.CustomTimeZone !== undefined ? { CustomTimeZone: d.CustomTimeZone } : {}),
  };
  const showDestination = opts.exclusiveStartDestinationId === undefined;
  return {
    DeliveryStreamName: s.name,
    DeliveryStreamARN: s.arn,
    DeliveryStreamStatus: 'ACTIVE',
    DeliveryStreamEncryptionConfiguration: s.encryption
      ? {
          KeyType: s.encryption.keyType,
          ...(s.encryption.keyArn ? { KeyARN: s.encryption.keyArn } : {}),
          Status: 'ENABLED',
        }
      : { Status: 'DISABLED' },
    DeliveryStreamType: 'DirectPut',
    VersionId: s.versionId,
    CreateTimestamp: s.createTimestamp / 1000,
    ...(s.throughputHintInMBs !== undefined
      ? { Source: { DirectPutSourceDescription: { ThroughputHintInMBs: s.throughputHintInMBs } } }
      : {}),
    Destinations: showDestination
      ? [
          {
            DestinationId: DESTINATION_ID,
            S3DestinationDescription: common,
            ...(s.destinationKind === 'ExtendedS3' ? { ExtendedS3DestinationDescription: extended } : {}),
          },
        ]
      : [],
    HasMoreDestinations: false,
  };
}
