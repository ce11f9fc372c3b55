/**
 * The data lake's layout as data: the single source for the Firehose delivery stream (local cloud and
 * CDK), the DuckDB views of `edgefleet lake` and the Glue tables Athena queries, so the same SQL runs
 * on both.
 *
 * - Streaming telemetry: rule `edgefleet_telemetry` → Firehose `edgefleet-telemetry` →
 *   `lake/telemetry/thing={thing}/dt=YYYY-MM-DD/hour=HH/` (GZIP NDJSON, dynamic partitioning on the
 *   `thing` field the rule adds), failures under `lake/errors/telemetry/{error-output-type}/...`.
 * - Gateway batches: `raw/{thing}/telemetry/dt=YYYY-MM-DD/hour=HH/{batchId}.ndjson.gz` (the gateway's
 *   temporary credentials allow only its own `raw/{thing}/` prefix, so the thing is a path segment).
 * - Events: `events/{thing}/dt=YYYY-MM-DD/{msgId}.json`, one JSON object each (event-ack function).
 * - Frames: the metadata sidecars `frames/{thing}/{camera}/dt=YYYY-MM-DD/hour=HH/{id}.json` (and
 *   `frames-identify/...`).
 * - Analysis: Rekognition results `results/{thing}/{camera}/dt=YYYY-MM-DD/{id}.json` in the results bucket.
 */
/** The Firehose delivery stream of streaming telemetry. */
export const TELEMETRY_DELIVERY_STREAM = 'edgefleet-telemetry';
/** The role Firehose writes to the lake with (local IAM and the CDK app). */
export const FIREHOSE_DELIVERY_ROLE_NAME = 'edgefleet-firehose-delivery';

/** Streamed telemetry: `dt/{thing}/telemetry` (protocol/topics.ts, shared with the gateway). */
export { TELEMETRY_FILTER, telemetryTopic } from '../../protocol/topics.js';

/** Root of everything Firehose writes. */
export const LAKE_PREFIX = 'lake/';
export const TELEMETRY_LAKE_PREFIX = 'lake/telemetry/';
export const TELEMETRY_ERROR_PREFIX = 'lake/errors/telemetry/';

/**
 * The telemetry delivery stream's S3 destination: what the local cloud creates at start and the CDK app
 * deploys. Dynamic partitioning needs a buffer of at least 64 MiB on AWS; the interval bounds latency.
 */
export const TELEMETRY_DELIVERY = {
  name: TELEMETRY_DELIVERY_STREAM,
  prefix:
    'lake/telemetry/thing=!{partitionKeyFromQuery:thing}/dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/',
  errorOutputPrefix:
    'lake/errors/telemetry/!{firehose:error-output-type}/dt=!{timestamp:yyyy-MM-dd}/hour=!{timestamp:HH}/',
  compression: 'GZIP',
  bufferingHints: { sizeInMBs: 64, intervalInSeconds: 60 },
  /** MetadataExtraction processor: the JQ query that yields the partition keys. */
  metadataExtractionQuery: '{thing: .thing}',
  metadataExtractionJqEngine: 'JQ-1.6',
} as const;

/**
 * Column types, as Glue/Athena spell them. `json` is a nested value: Athena's JSON SerDe reads it as
 * its JSON text (a `string` column), DuckDB as `JSON`.
 */
export type LakeColumnType = 'string' | 'bigint' | 'double' | 'boolean' | 'json';

export interface LakeColumn {
  name: string;
  type: LakeColumnType;
  comment: string;
}

/**
 * Where one table's objects are: a bucket (`data` = the lake bucket, `results` = the results bucket),
 * a key glob below it, and how the partition columns that are not `name=value` path segments come from
 * the key (`pathColumns`: column name → the 1-based `/`-separated segment of the key).
 */
export interface LakeSource {
  id: string;
  bucket: 'data' | 'results';
  /** S3 key glob; `*` matches one path segment or part of one. */
  glob: string;
  format: 'ndjson-gzip' | 'json';
  /** Partition columns written as `name=value` segments (hive style). */
  hiveColumns: readonly string[];
  /** Columns taken from a plain path segment (1-based), e.g. `thing` of `raw/{thing}/...`. */
  pathColumns: Readonly<Record<string, number>>;
}

export interface LakeTable {
  /** View name in DuckDB and table/view name in Athena. */
  name: string;
  description: string;
  /** Data columns (from the JSON). */
  columns: readonly LakeColumn[];
  /** Partition columns (from the key); `dt` is a date (`YYYY-MM-DD`), `hour` an integer. */
  partitions: readonly LakeColumn[];
  sources: readonly LakeSource[];
}

const THING: LakeColumn = { name: 'thing', type: 'string', comment: 'the gateway (IoT thing name)' };
const DT: LakeColumn = { name: 'dt', type: 'string', comment: 'UTC date, YYYY-MM-DD' };
const HOUR: LakeColumn = { name: 'hour', type: 'bigint', comment: 'UTC hour, 0-23' };

export const LAKE_TABLES: readonly LakeTable[] = [
  {
    name: 'telemetry',
    description: 'Sensor records: streamed through Firehose and uploaded in gateway batches',
    columns: [
      { name: 'sensorId', type: 'string', comment: 'sensor id' },
      { name: 'ts', type: 'bigint', comment: 'reading time on the gateway, epoch ms' },
      { name: 'seq', type: 'bigint', comment: 'sequence number of the reading' },
      { name: 'temperature', type: 'double', comment: 'degrees Celsius' },
      { name: 'vibration', type: 'double', comment: 'RMS vibration' },
      { name: 'operatorId', type: 'string', comment: 'keyed pseudonym of the operator (never the raw id)' },
      { name: 'ingest_ts', type: 'bigint', comment: 'arrival at the IoT rule, epoch ms (streamed only)' },
    ],
    partitions: [THING, DT, HOUR],
    sources: [
      {
        id: 'stream',
        bucket: 'data',
        glob: 'lake/telemetry/thing=*/dt=*/hour=*/*',
        format: 'ndjson-gzip',
        hiveColumns: ['thing', 'dt', 'hour'],
        pathColumns: {},
      },
      {
        id: 'batches',
        bucket: 'data',
        glob: 'raw/*/telemetry/dt=*/hour=*/*.ndjson.gz',
        format: 'ndjson-gzip',
        hiveColumns: ['dt', 'hour'],
        pathColumns: { thing: 2 },
      },
    ],
  },
  {
    name: 'events',
    description: 'Exactly-once gateway events, one object per message id',
    columns: [
      { name: 'msgId', type: 'string', comment: 'message id (UUID)' },
      { name: 'type', type: 'string', comment: 'event type, e.g. alarm' },
      { name: 'ts', type: 'bigint', comment: 'event time on the gateway, epoch ms' },
      { name: 'data', type: 'json', comment: 'event payload' },
    ],
    partitions: [THING, DT],
    sources: [
      {
        id: 'events',
        bucket: 'data',
        glob: 'events/*/dt=*/*.json',
        format: 'json',
        hiveColumns: ['dt'],
        pathColumns: { thing: 2 },
      },
    ],
  },
  {
    name: 'frames',
    description: 'Frame metadata: the sidecar the gateway uploads beside each masked frame',
    columns: [
      { name: 'camera', type: 'string', comment: 'camera id' },
      { name: 'capturedAt', type: 'bigint', comment: 'capture time, epoch ms' },
      { name: 'faces', type: 'bigint', comment: 'faces found (and masked unless identification)' },
      { name: 'zones', type: 'bigint', comment: 'privacy zones masked' },
      { name: 'masking', type: 'string', comment: 'blur, pixelate or identification' },
      { name: 'format', type: 'string', comment: 'jpeg or webp' },
      { name: 'width', type: 'bigint', comment: 'pixels' },
      { name: 'height', type: 'bigint', comment: 'pixels' },
      { name: 'boxes', type: 'json', comment: 'face boxes in pixels' },
    ],
    partitions: [THING, DT, HOUR],
    sources: [
      {
        id: 'frames',
        bucket: 'data',
        glob: 'frames/*/*/dt=*/hour=*/*.json',
        format: 'json',
        hiveColumns: ['dt', 'hour'],
        pathColumns: { thing: 2 },
      },
      {
        id: 'frames-identify',
        bucket: 'data',
        glob: 'frames-identify/*/*/dt=*/hour=*/*.json',
        format: 'json',
        hiveColumns: ['dt', 'hour'],
        pathColumns: { thing: 2 },
      },
    ],
  },
  {
    name: 'analysis',
    description: 'Rekognition results of analysed frames (labels, faces, matches, alerts)',
    columns: [
      { name: 'camera', type: 'string', comment: 'camera id' },
      { name: 'site', type: 'string', comment: 'site of the thing (alert rules), if any' },
      { name: 'capturedAt', type: 'string', comment: 'capture time, ISO 8601 in UTC' },
      { name: 'key', type: 'string', comment: 'object key of the analysed frame' },
      { name: 'kind', type: 'string', comment: 'frames or frames-identify' },
      { name: 'labels', type: 'json', comment: 'DetectLabels results' },
      { name: 'faces', type: 'json', comment: 'DetectFaces results' },
      { name: 'matches', type: 'json', comment: 'SearchFacesByImage matches (identification frames)' },
      { name: 'alerts', type: 'json', comment: 'alerts raised by the alert rules' },
    ],
    partitions: [THING, DT],
    sources: [
      {
        id: 'analysis',
        bucket: 'results',
        glob: 'results/*/*/dt=*/*.json',
        format: 'json',
        hiveColumns: ['dt'],
        pathColumns: { thing: 2 },
      },
    ],
  },
];

/**
 * The delivery role's permissions (local IAM; the CDK app grants the same on AWS): objects under
 * `lake/` of the data bucket and the bucket's listing, as Firehose's S3 destination needs them.
 */
export function firehoseDeliveryRolePolicy(bucket: string, partition = 'aws') {
  const b = `arn:${partition}:s3:::${bucket}`;
  return {
    Version: '2012-10-17' as const,
    Statement: [
      {
        Effect: 'Allow' as const,
        Action: ['s3:PutObject', 's3:GetObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        Resource: `${b}/${LAKE_PREFIX}*`,
      },
      {
        Effect: 'Allow' as const,
        Action: ['s3:GetBucketLocation', 's3:ListBucket', 's3:ListBucketMultipartUploads'],
        Resource: b,
      },
    ],
  };
}
