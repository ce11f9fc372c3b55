/**
 * The data lake on AWS, built from its layout in cloud/rules/lake.ts so that the SQL analysts run on
 * DuckDB (`edgefleet lake query`) runs unchanged in Athena:
 *
 * - the Firehose delivery stream of streaming telemetry (TELEMETRY_DELIVERY: prefixes, GZIP, buffering,
 *   dynamic partitioning on the JQ-extracted `thing`), encrypted, logging, with a delivery role that may
 *   only write under `lake/`;
 * - storage tiers for the lake's objects as they age (lifecycle transitions on the lake bucket);
 * - a Glue database with one table per LAKE_TABLES source and one Athena view per LakeTable, named after
 *   it, that UNION ALLs its sources and selects exactly the LakeTable's columns;
 * - the partition registrar that adds each new object's partition to its source table;
 * - an Athena workgroup whose query results are KMS-encrypted in a bucket of their own.
 *
 * Why partitions are registered instead of projected: every source puts the thing (and for frames and
 * analysis the camera) in the key *before* the date (`lake/telemetry/thing={thing}/dt=.../hour=...`,
 * `raw/{thing}/telemetry/dt=...`, `frames/{thing}/{camera}/dt=...`). Athena's partition projection needs
 * a projection for every partition column and a `storage.location.template` that names each of them
 * (INVALID_TABLE_PROPERTY otherwise), and a table LOCATION takes no wildcards, so `dt`/`hour` cannot be
 * projected with `thing` left to the data. What is left for `thing`:
 * - `injected`: Athena takes the values from the WHERE clause and refuses any query without a static
 *   equality on it (CONSTRAINT_VIOLATION), so `SELECT thing, count(*) FROM telemetry GROUP BY thing`
 *   fails: the grouped, fleet-wide queries analysts run are exactly the ones it forbids;
 * - `enum`: needs every thing (and camera) name in the table's properties; gateways join at any time by
 *   JITR, so the list would be stale from the first new gateway on and silently hide its data;
 * - no partitions at all (thing from the JSON or the key): every query reads the whole prefix, no
 *   pruning by date or hour;
 * - partitions in the Glue Data Catalog (projection off): each partition has its own location, so any
 *   key layout works, `thing` is an ordinary partition column (grouping across things works), and
 *   Athena prunes by `dt`/`hour` with the catalog's partition filter. The catch is keeping the catalog
 *   current, which the registrar below does: S3 sends every created object to EventBridge, a rule per
 *   bucket picks the sources' objects by prefix and name, and an Express state machine checks the key
 *   against the source's layout and calls glue:CreatePartition (AlreadyExists counts as done), so a
 *   partition is queryable as soon as its first object lands. This is the one that keeps both the fleet-wide queries and pruning.
 */
import { ArnFormat, Aws, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as firehose from 'aws-cdk-lib/aws-kinesisfirehose';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import {
  FIREHOSE_DELIVERY_ROLE_NAME,
  firehoseDeliveryRolePolicy,
  LAKE_PREFIX,
  LAKE_TABLES,
  type LakeColumn,
  type LakeColumnType,
  type LakeSource,
  type LakeTable,
  TELEMETRY_DELIVERY,
} from '../rules/lake.js';
import { FRAME_PREFIXES } from '../rules/resources.js';
import { flattenForNag } from './rules.js';

/** The Glue database (Athena schema) of the lake's tables and views. */
export const LAKE_DATABASE_NAME = 'edgefleet';
/** The Athena workgroup analysts query the lake in. */
export const LAKE_WORKGROUP_NAME = 'edgefleet';
/** The Athena engine the workgroup runs (Trino-based; the one Presto views are written for). */
export const ATHENA_ENGINE_VERSION = 'Athena engine version 3';
/** Prefix under which S3 writes the Athena results bucket's server access logs in the log bucket. */
export const ATHENA_RESULTS_ACCESS_LOG_PREFIX = 'athena-results/';
/** Days after which query results are deleted: they are re-created by running the query again. */
export const ATHENA_RESULTS_EXPIRATION_DAYS = 30;
/** Log stream of the delivery stream's S3 delivery errors (the name Firehose's console uses too). */
export const TELEMETRY_DELIVERY_LOG_STREAM = 'DestinationDelivery';
/** How long Firehose retries delivery to a dynamic partition before writing under the error prefix. */
export const DYNAMIC_PARTITIONING_RETRY_SECONDS = 300;

/**
 * Storage tiers of the lake's objects as they age (every top-level prefix a LakeTable reads in the lake
 * bucket): the first month is what dashboards, the frame analysis and re-runs read, so it stays in
 * STANDARD (also the minimum age S3 allows for STANDARD_IA); after that analysts query it occasionally,
 * and STANDARD_IA halves the storage price for a small per-GB retrieval charge; after half a year
 * GLACIER_IR costs about a third of STANDARD_IA and, unlike GLACIER / DEEP_ARCHIVE, still answers
 * GetObject in milliseconds, so Athena keeps reading it with the same queries. Objects under 128 KiB
 * (single events, the Firehose objects of quiet things) stay in STANDARD (the bucket's
 * TransitionDefaultMinimumObjectSize): both tiers bill at least 128 KiB per object and each transition
 * is a billed request, which costs more than it saves for them.
 * Intelligent-Tiering was not chosen: its per-object monitoring fee is about as large as its savings
 * for frames of a few hundred KiB, and access to the lake falls off with age predictably.
 */
export const LAKE_TRANSITIONS = {
  infrequentAccessAfterDays: 30,
  glacierInstantRetrievalAfterDays: 180,
} as const;

/** The lake's layout does not fit its Glue tables (a programming error in cloud/rules/lake.ts). */
export class LakeLayoutError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A partition column of one source's Glue table: a `/`-separated segment of the object keys. */
export interface LakePartitionKey {
  /** Column name as Glue and Athena spell it (lower case). */
  name: string;
  type: 'string' | 'bigint';
  comment: string;
  /** 0-based segment of the key. */
  segment: number;
  /** `name=value` segment (hive style) rather than a plain value. */
  hive: boolean;
}

/** How one LakeSource maps onto a Glue table. */
export interface LakeSourceLayout {
  table: LakeTable;
  source: LakeSource;
  /** The Glue table's name. */
  glueName: string;
  /** Key prefix up to the first wildcard segment: the Glue table's location. */
  prefix: string;
  /** Partition columns in key order, including key segments the LakeTable does not expose. */
  partitionKeys: LakePartitionKey[];
  /**
   * The keys of the source's objects as a regular expression, with `/` escaped so that it is valid both
   * in JavaScript and as a JSONata regex literal.
   */
  keyPattern: string;
  /** SQL LIKE condition on `"$path"` when the glob selects objects by name (`*.json`), else undefined. */
  pathCondition: string | undefined;
}

/** Glue/Hive type of a LakeTable column; nested JSON is read as its JSON text. */
export const glueType = (type: LakeColumnType): string => (type === 'json' ? 'string' : type);

/** Presto/Trino type of a LakeTable column, as Athena writes it into a view's definition. */
export const prestoType = (type: LakeColumnType): string =>
  type === 'json' || type === 'string' ? 'varchar' : type;

/** Glue lower-cases column names; the JSON SerDe matches them to the JSON keys case-insensitively. */
export const glueColumnName = (name: string): string => name.toLowerCase();

const escapeRegex = (text: string): string => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

const VALUE_PATTERN = { dt: '\\d{4}-\\d{2}-\\d{2}', bigint: '\\d+', string: '[^\\/]+' } as const;

/** The Glue table name of a source: `src_` and the source id, qualified by the table unless it already is. */
export function glueTableName(table: LakeTable, source: LakeSource): string {
  const id = source.id.startsWith(table.name) ? source.id : `${table.name}_${source.id}`;
  const name = `src_${id}`.replace(/-/g, '_').toLowerCase();
  if (!/^[a-z][a-z0-9_]*$/.test(name)) {
    throw new LakeLayoutError(`table '${table.name}' source '${source.id}': '${name}' is no Glue table name`);
  }
  return name;
}

/** Maps one source's glob onto a Glue table: location, partition columns and the key pattern. */
export function sourceLayout(table: LakeTable, source: LakeSource): LakeSourceLayout {
  const where = `table '${table.name}' source '${source.id}' (${source.glob})`;
  const segments = source.glob.split('/');
  const file = segments.at(-1) ?? '';
  const dirs = segments.slice(0, -1);
  const firstWildcard = dirs.findIndex((s) => s.includes('*'));
  if (firstWildcard < 1) throw new LakeLayoutError(`${where}: the glob must start with a fixed prefix`);
  const byPosition = new Map(Object.entries(source.pathColumns).map(([column, pos]) => [pos - 1, column]));
  const declared = new Map(table.partitions.map((p) => [p.name, p]));
  const partitionKeys: LakePartitionKey[] = [];
  const patterns: string[] = [];
  const partitionKey = (name: string, segment: number, hive: boolean): LakePartitionKey => {
    const column: LakeColumn | undefined = declared.get(name);
    const type = column?.type === 'bigint' ? 'bigint' : 'string';
    const key = {
      name: glueColumnName(name),
      type,
      comment: column?.comment ?? `key segment ${segment + 1} of ${source.glob}`,
      segment,
      hive,
    } as const;
    partitionKeys.push(key);
    return key;
  };
  const valuePattern = (k: LakePartitionKey) => (k.name === 'dt' ? VALUE_PATTERN.dt : VALUE_PATTERN[k.type]);
  dirs.forEach((segment, i) => {
    if (!segment.includes('*')) {
      patterns.push(escapeRegex(segment));
      return;
    }
    const hive = /^([A-Za-z_][A-Za-z0-9_]*)=\*$/.exec(segment);
    if (hive) {
      const name = hive[1]!;
      if (!source.hiveColumns.includes(name)) {
        throw new LakeLayoutError(`${where}: segment '${segment}' is not among hiveColumns`);
      }
      patterns.push(`${escapeRegex(name)}=(${valuePattern(partitionKey(name, i, true))})`);
    } else if (segment === '*') {
      // A wildcard segment no LakeTable column names (the camera of frames and analysis) is still a
      // partition of the source table: one partition has one location.
      patterns.push(
        `(${valuePattern(partitionKey(byPosition.get(i) ?? `path_segment_${i + 1}`, i, false))})`,
      );
    } else {
      throw new LakeLayoutError(`${where}: segment '${segment}' mixes a wildcard with text`);
    }
  });
  if (file.length === 0) throw new LakeLayoutError(`${where}: the glob must end with an object name`);
  patterns.push(file.split('*').map(escapeRegex).join('[^\\/]*'));
  for (const p of table.partitions) {
    if (!partitionKeys.some((k) => k.name === glueColumnName(p.name))) {
      throw new LakeLayoutError(`${where}: partition column '${p.name}' is not in the glob`);
    }
  }
  for (const name of [...source.hiveColumns, ...Object.keys(source.pathColumns)]) {
    if (!partitionKeys.some((k) => k.name === glueColumnName(name))) {
      throw new LakeLayoutError(`${where}: column '${name}' is not a wildcard segment of the glob`);
    }
  }
  let pathCondition: string | undefined;
  if (file !== '*') {
    const escaped = file.replace(/[%_\\]/g, '\\$&');
    const like = `%/${escaped.replace(/\*/g, '%')}`.replace(/'/g, "''");
    pathCondition = `"$path" LIKE '${like}'${escaped === file ? '' : " ESCAPE '\\'"}`;
  }
  return {
    table,
    source,
    glueName: glueTableName(table, source),
    prefix: `${dirs.slice(0, firstWildcard).join('/')}/`,
    partitionKeys,
    keyPattern: `^${patterns.join('\\/')}$`,
    pathCondition,
  };
}

/** The layouts of every source of every LakeTable; Glue table names are unique. */
export function lakeLayouts(tables: readonly LakeTable[] = LAKE_TABLES): LakeSourceLayout[] {
  const layouts = tables.flatMap((t) => t.sources.map((s) => sourceLayout(t, s)));
  const names = new Set<string>();
  for (const l of layouts) {
    if (names.has(l.glueName) || tables.some((t) => t.name === l.glueName)) {
      throw new LakeLayoutError(`Glue table name '${l.glueName}' is used twice`);
    }
    names.add(l.glueName);
  }
  return layouts;
}

/** Partition values of an object key (what the registrar's JSONata computes), or undefined. */
export function partitionValuesOfKey(layout: LakeSourceLayout, key: string): string[] | undefined {
  if (!new RegExp(layout.keyPattern).test(key)) return undefined;
  const s = key.split('/');
  return layout.partitionKeys.map((k) =>
    k.hive ? s[k.segment]!.slice(s[k.segment]!.indexOf('=') + 1) : s[k.segment]!,
  );
}

/**
 * The EventBridge filter on the object keys of a source: its fixed prefix, the fixed segments after it
 * (`telemetry` of `raw/{thing}/telemetry/...`) and the object name's suffix, with as few wildcards as
 * that takes (EventBridge refuses wildcard patterns it finds too complex); the registrar checks the
 * whole layout.
 */
export function eventKeyFilter(layout: LakeSourceLayout): { prefix: string } | { wildcard: string } {
  const segments = layout.source.glob.slice(layout.prefix.length).split('/');
  const file = segments.pop() ?? '';
  const fixed = segments.filter((s) => !s.includes('*'));
  const suffix = file.slice(file.lastIndexOf('*') + 1);
  if (fixed.length === 0 && suffix === '') return { prefix: layout.prefix };
  return { wildcard: `${layout.prefix}*${fixed.map((s) => `/${s}/*`).join('')}${suffix}` };
}

const KEY = '$states.input.detail.object.key';

/** JSONata: the partition values of the object in the state's input (an S3 "Object Created" event). */
export function partitionValuesExpression(layout: LakeSourceLayout): string {
  const values = layout.partitionKeys.map((k) =>
    k.hive ? `$substringAfter($s[${k.segment}], '=')` : `$s[${k.segment}]`,
  );
  return `{% ($s := $split(${KEY}, '/'); [${values.join(', ')}]) %}`;
}

/** JSONata: the partition's location, the object's "directory" in the bucket. */
export function partitionLocationExpression(bucketName: string): string {
  return `{% ($k := ${KEY}; 's3://${bucketName}/' & $substring($k, 0, $length($k) - $length($split($k, '/')[-1]))) %}`;
}

/** JSONata: whether the state's input is an object of this source. */
export function sourceCondition(layout: LakeSourceLayout, bucketName: string): string {
  return `{% $states.input.detail.bucket.name = '${bucketName}' and $contains(${KEY}, /${layout.keyPattern}/) %}`;
}

/** The view definition Athena stores (base64) in a Presto view's ViewOriginalText. */
export interface PrestoViewDefinition {
  originalSql: string;
  catalog: string;
  schema: string;
  columns: { name: string; type: string }[];
  runAsInvoker: boolean;
  path: string[];
}

/** The columns of a LakeTable, data then partitions, as its view exposes them. */
export const viewColumns = (table: LakeTable): LakeColumn[] => [...table.columns, ...table.partitions];

/**
 * The Athena view of a LakeTable: exactly its columns from each source table, UNION ALL, each source
 * limited to the object names its glob selects (frame sidecars share their prefix with the images).
 */
export function prestoView(table: LakeTable, layouts: readonly LakeSourceLayout[]): PrestoViewDefinition {
  const columns = viewColumns(table);
  const select = columns.map((c) => `"${glueColumnName(c.name)}"`).join(', ');
  const originalSql = layouts
    .filter((l) => l.table === table)
    .map(
      (l) =>
        `SELECT ${select}\nFROM "${LAKE_DATABASE_NAME}"."${l.glueName}"` +
        (l.pathCondition ? `\nWHERE ${l.pathCondition}` : ''),
    )
    .join('\nUNION ALL\n');
  return {
    originalSql,
    catalog: 'awsdatacatalog',
    schema: LAKE_DATABASE_NAME,
    columns: columns.map((c) => ({ name: glueColumnName(c.name), type: prestoType(c.type) })),
    // Athena's engine v3 decodes the definition with Trino's view codec, which expects both fields.
    runAsInvoker: false,
    path: [],
  };
}

/** ViewOriginalText of a Presto view: the definition's JSON, base64, in Athena's comment marker. */
export const prestoViewOriginalText = (view: PrestoViewDefinition): string =>
  `/* Presto View: ${Buffer.from(JSON.stringify(view), 'utf8').toString('base64')} */`;

/** Top-level prefixes of the lake bucket that LakeTables read (`lake/`, `raw/`, `events/`, ...). */
export function lakeBucketPrefixes(tables: readonly LakeTable[] = LAKE_TABLES): string[] {
  const prefixes = tables
    .flatMap((t) => t.sources)
    .filter((s) => s.bucket === 'data')
    .map((s) => `${s.glob.split('/')[0]}/`);
  return [...new Set(prefixes)];
}

const SERDE = 'org.openx.data.jsonserde.JsonSerDe';
const INPUT_FORMAT = 'org.apache.hadoop.mapred.TextInputFormat';
const OUTPUT_FORMAT = 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat';
/**
 * JSON SerDe properties: keys match columns whatever their case (`sensorId` → `sensorid`). A line that is
 * not JSON fails the query, as it does locally (DuckDB's `ignore_errors=false`): data is never skipped
 * silently. The exception is the frame prefixes, where the images lie beside the sidecars in the same
 * partition: their lines must read as NULL rows, which the view drops with its `"$path"` condition.
 */
export function serdeParameters(layout: LakeSourceLayout): Record<string, string> {
  const beside =
    layout.source.bucket === 'data' && (FRAME_PREFIXES as readonly string[]).includes(layout.prefix);
  return { 'case.insensitive': 'true', 'ignore.malformed.json': String(beside) };
}

export interface DataLakeProps {
  /** The lake bucket (gateway batches, Firehose output, events, frames). */
  readonly dataBucket: s3.Bucket;
  /** The key that encrypts the lake and results buckets (and the delivery stream). */
  readonly dataKey: kms.IKey;
  /** The frame analysis results bucket (`analysis`). */
  readonly resultsBucket: s3.Bucket;
  /** Destination of S3 server access logs. */
  readonly accessLogsBucket: s3.IBucket;
}

export class DataLake extends Construct {
  /** The Firehose delivery stream of streaming telemetry (TELEMETRY_DELIVERY). */
  readonly telemetryDeliveryStream: firehose.CfnDeliveryStream;
  /** The role Firehose writes to the lake with. */
  readonly deliveryRole: iam.Role;
  readonly database: glue.CfnDatabase;
  /** Glue tables of the sources, by Glue table name. */
  readonly sourceTables = new Map<string, glue.CfnTable>();
  /** Athena views of the LakeTables, by LakeTable name. */
  readonly views = new Map<string, glue.CfnTable>();
  /** Adds the partitions of new objects to their source tables. */
  readonly partitionRegistrar: sfn.StateMachine;
  readonly athenaResultsKey: kms.Key;
  readonly athenaResultsBucket: s3.Bucket;
  readonly workGroup: athena.CfnWorkGroup;
  readonly layouts: readonly LakeSourceLayout[];

  constructor(scope: Construct, id: string, props: DataLakeProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const buckets: Record<LakeSource['bucket'], s3.Bucket> = {
      data: props.dataBucket,
      results: props.resultsBucket,
    };
    this.layouts = lakeLayouts();

    // Streaming telemetry: Firehose → lake/telemetry/thing=.../dt=.../hour=.../ (GZIP NDJSON).
    const deliveryLogs = new logs.LogGroup(this, 'TelemetryDeliveryLogs', {
      logGroupName: `/aws/kinesisfirehose/${TELEMETRY_DELIVERY.name}`,
      retention: logs.RetentionDays.ONE_MONTH,
    });
    const deliveryLogStream = new logs.LogStream(this, 'TelemetryDeliveryLogStream', {
      logGroup: deliveryLogs,
      logStreamName: TELEMETRY_DELIVERY_LOG_STREAM,
    });
    // The S3 permissions are the single-source ones the local cloud's IAM enforces too.
    const bucketArn = `arn:${Aws.PARTITION}:s3:::${props.dataBucket.bucketName}`;
    const lakeObjects = `${bucketArn}/${LAKE_PREFIX}*`;
    this.deliveryRole = new iam.Role(this, 'TelemetryDeliveryRole', {
      roleName: `${stack.stackName}-${FIREHOSE_DELIVERY_ROLE_NAME}`,
      description: `Firehose ${TELEMETRY_DELIVERY.name}: writes telemetry under ${LAKE_PREFIX} of the lake bucket`,
      assumedBy: new iam.ServicePrincipal('firehose.amazonaws.com', {
        conditions: { StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID } },
      }),
      inlinePolicies: {
        delivery: iam.PolicyDocument.fromJson(
          firehoseDeliveryRolePolicy(props.dataBucket.bucketName, Aws.PARTITION),
        ),
        dataKey: new iam.PolicyDocument({
          statements: [
            // "Grant Firehose access to an Amazon S3 destination": the key only through S3 and only for
            // the lake (the bucket's ARN is the encryption context with S3 Bucket Keys, the object's
            // ARN without).
            new iam.PolicyStatement({
              actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
              resources: [props.dataKey.keyArn],
              conditions: {
                StringEquals: { 'kms:ViaService': `s3.${Aws.REGION}.amazonaws.com` },
                StringLike: { 'kms:EncryptionContext:aws:s3:arn': [bucketArn, lakeObjects] },
              },
            }),
          ],
        }),
        logs: new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              actions: ['logs:PutLogEvents'],
              resources: [
                stack.formatArn({
                  service: 'logs',
                  resource: 'log-group',
                  resourceName: `${deliveryLogs.logGroupName}:log-stream:${TELEMETRY_DELIVERY_LOG_STREAM}`,
                  arnFormat: ArnFormat.COLON_RESOURCE_NAME,
                }),
              ],
            }),
          ],
        }),
      },
    });
    Validations.of(this.deliveryRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::${flattenForNag(stack.resolve(lakeObjects))}]`,
      reason: `Firehose names every object itself (thing, date and hour partitions plus a generated name, errors under ${LAKE_PREFIX}errors/); the wildcard is the ${LAKE_PREFIX} prefix of the lake bucket and nothing wider`,
    });

    this.telemetryDeliveryStream = new firehose.CfnDeliveryStream(this, 'TelemetryDeliveryStream', {
      deliveryStreamName: TELEMETRY_DELIVERY.name,
      deliveryStreamType: 'DirectPut',
      deliveryStreamEncryptionConfigurationInput: {
        keyType: 'CUSTOMER_MANAGED_CMK',
        keyArn: props.dataKey.keyArn,
      },
      extendedS3DestinationConfiguration: {
        bucketArn: props.dataBucket.bucketArn,
        roleArn: this.deliveryRole.roleArn,
        prefix: TELEMETRY_DELIVERY.prefix,
        errorOutputPrefix: TELEMETRY_DELIVERY.errorOutputPrefix,
        compressionFormat: TELEMETRY_DELIVERY.compression,
        bufferingHints: {
          sizeInMBs: TELEMETRY_DELIVERY.bufferingHints.sizeInMBs,
          intervalInSeconds: TELEMETRY_DELIVERY.bufferingHints.intervalInSeconds,
        },
        encryptionConfiguration: { kmsEncryptionConfig: { awskmsKeyArn: props.dataKey.keyArn } },
        dynamicPartitioningConfiguration: {
          enabled: true,
          retryOptions: { durationInSeconds: DYNAMIC_PARTITIONING_RETRY_SECONDS },
        },
        // The rule ends every record with a newline (its separator), so no AppendDelimiterToRecord.
        processingConfiguration: {
          enabled: true,
          processors: [
            {
              type: 'MetadataExtraction',
              parameters: [
                {
                  parameterName: 'MetadataExtractionQuery',
                  parameterValue: TELEMETRY_DELIVERY.metadataExtractionQuery,
                },
                {
                  parameterName: 'JsonParsingEngine',
                  parameterValue: TELEMETRY_DELIVERY.metadataExtractionJqEngine,
                },
              ],
            },
          ],
        },
        cloudWatchLoggingOptions: {
          enabled: true,
          logGroupName: deliveryLogs.logGroupName,
          logStreamName: deliveryLogStream.logStreamName,
        },
      },
    });
    this.telemetryDeliveryStream.node.addDependency(deliveryLogStream);

    // Older objects move to cheaper tiers Athena still reads (LAKE_TRANSITIONS).
    for (const prefix of lakeBucketPrefixes()) {
      props.dataBucket.addLifecycleRule({
        id: `tier-${prefix.replace(/\/$/, '')}`,
        prefix,
        transitions: [
          {
            storageClass: s3.StorageClass.INFREQUENT_ACCESS,
            transitionAfter: Duration.days(LAKE_TRANSITIONS.infrequentAccessAfterDays),
          },
          {
            storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
            transitionAfter: Duration.days(LAKE_TRANSITIONS.glacierInstantRetrievalAfterDays),
          },
        ],
      });
    }

    // The Glue database, one table per source, one view per LakeTable.
    this.database = new glue.CfnDatabase(this, 'Database', {
      catalogId: Aws.ACCOUNT_ID,
      databaseInput: {
        name: LAKE_DATABASE_NAME,
        description: 'edgefleet data lake: one view per table of cloud/rules/lake.ts over its src_* tables',
      },
    });
    const catalogArn = stack.formatArn({ service: 'glue', resource: 'catalog' });
    const databaseArn = stack.formatArn({
      service: 'glue',
      resource: 'database',
      resourceName: LAKE_DATABASE_NAME,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });
    const tableArn = (name: string) =>
      stack.formatArn({
        service: 'glue',
        resource: 'table',
        resourceName: `${LAKE_DATABASE_NAME}/${name}`,
        arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
      });

    const compressed = (l: LakeSourceLayout) => l.source.format === 'ndjson-gzip';
    for (const l of this.layouts) {
      const bucket = buckets[l.source.bucket];
      const table = new glue.CfnTable(this, `Table_${l.glueName}`, {
        catalogId: Aws.ACCOUNT_ID,
        databaseName: this.database.ref,
        tableInput: {
          name: l.glueName,
          description: `${l.table.name} (${l.source.id}): ${l.source.glob}`,
          tableType: 'EXTERNAL_TABLE',
          parameters: {
            EXTERNAL: 'TRUE',
            classification: 'json',
            compressionType: compressed(l) ? 'gzip' : 'none',
            typeOfData: 'file',
          },
          partitionKeys: l.partitionKeys.map((k) => ({ name: k.name, type: k.type, comment: k.comment })),
          storageDescriptor: {
            location: `s3://${bucket.bucketName}/${l.prefix}`,
            columns: l.table.columns.map((c) => ({
              name: glueColumnName(c.name),
              type: glueType(c.type),
              comment: c.comment,
            })),
            inputFormat: INPUT_FORMAT,
            outputFormat: OUTPUT_FORMAT,
            compressed: compressed(l),
            serdeInfo: { serializationLibrary: SERDE, parameters: serdeParameters(l) },
          },
        },
      });
      this.sourceTables.set(l.glueName, table);
    }
    for (const t of LAKE_TABLES) {
      const view = prestoView(t, this.layouts);
      const table = new glue.CfnTable(this, `View_${t.name}`, {
        catalogId: Aws.ACCOUNT_ID,
        databaseName: this.database.ref,
        tableInput: {
          name: t.name,
          description: t.description,
          tableType: 'VIRTUAL_VIEW',
          parameters: { presto_view: 'true', comment: 'Presto View' },
          partitionKeys: [],
          storageDescriptor: {
            columns: viewColumns(t).map((c) => ({
              name: glueColumnName(c.name),
              type: glueType(c.type),
              comment: c.comment,
            })),
            serdeInfo: {},
          },
          viewOriginalText: prestoViewOriginalText(view),
          viewExpandedText: '/* Presto View */',
        },
      });
      for (const l of this.layouts.filter((x) => x.table === t)) {
        table.addResourceDependency(this.sourceTables.get(l.glueName)!, 'A view reads its source tables');
      }
      this.views.set(t.name, table);
    }

    // The partition registrar: S3 → EventBridge → Express state machine → glue:CreatePartition.
    const registered = sfn.Succeed.jsonata(this, 'PartitionRegistered', {
      comment: 'The partition exists (this object or an earlier one of it created it)',
    });
    const outside = sfn.Fail.jsonata(this, 'KeyOutsideLakeLayout', {
      error: 'KeyOutsideLakeLayout',
      cause: "The object matches a source's glob but not its partition layout; it is not queryable",
    });
    const route = sfn.Choice.jsonata(this, 'SourceOfObject', {
      comment: 'The source whose layout the object key fits',
    });
    for (const l of this.layouts) {
      const bucket = buckets[l.source.bucket];
      const register = tasks.CallAwsService.jsonata(this, `Register ${l.glueName}`, {
        comment: `Adds the object's partition to ${LAKE_DATABASE_NAME}.${l.glueName}`,
        service: 'glue',
        action: 'createPartition',
        iamAction: 'glue:CreatePartition',
        iamResources: [catalogArn, databaseArn, tableArn(l.glueName)],
        parameters: {
          CatalogId: Aws.ACCOUNT_ID,
          DatabaseName: LAKE_DATABASE_NAME,
          TableName: l.glueName,
          PartitionInput: {
            Values: partitionValuesExpression(l),
            // A partition reads with its own storage descriptor: the same as its table's.
            StorageDescriptor: {
              Location: partitionLocationExpression(bucket.bucketName),
              Columns: l.table.columns.map((c) => ({
                Name: glueColumnName(c.name),
                Type: glueType(c.type),
                Comment: c.comment,
              })),
              InputFormat: INPUT_FORMAT,
              OutputFormat: OUTPUT_FORMAT,
              Compressed: compressed(l),
              SerdeInfo: { SerializationLibrary: SERDE, Parameters: serdeParameters(l) },
            },
          },
        },
      });
      register.addRetry({
        errors: [
          'Glue.ThrottlingException',
          'Glue.ConcurrentModificationException',
          'Glue.InternalServiceException',
          'Glue.OperationTimeoutException',
        ],
        interval: Duration.seconds(1),
        backoffRate: 2,
        maxAttempts: 6,
        jitterStrategy: sfn.JitterType.FULL,
      });
      register.addCatch(registered, { errors: ['Glue.AlreadyExistsException'] });
      route.when(sfn.Condition.jsonata(sourceCondition(l, bucket.bucketName)), register);
    }
    route.otherwise(outside);
    const registrarLogs = new logs.LogGroup(this, 'PartitionRegistrarLogs', {
      logGroupName: `/aws/vendedlogs/states/${stack.stackName}-lake-partitions`,
      retention: logs.RetentionDays.ONE_MONTH,
    });
    this.partitionRegistrar = new sfn.StateMachine(this, 'PartitionRegistrar', {
      comment: 'Adds the partition of each new lake object to its Glue table',
      stateMachineType: sfn.StateMachineType.EXPRESS,
      queryLanguage: sfn.QueryLanguage.JSONATA,
      definitionBody: sfn.DefinitionBody.fromChainable(route),
      timeout: Duration.minutes(1),
      tracingEnabled: true,
      logs: { destination: registrarLogs, level: sfn.LogLevel.ALL, includeExecutionData: false },
    });
    const registrarPolicy = this.partitionRegistrar.role.node.tryFindChild('DefaultPolicy');
    if (registrarPolicy) {
      Validations.of(registrarPolicy).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'Only the CloudWatch Logs delivery actions (logs:CreateLogDelivery, PutResourcePolicy, ...) and X-Ray trace actions that Step Functions logging and tracing need: they support no resource-level permissions; glue:CreatePartition is scoped to the lake tables',
      });
    }
    for (const kind of ['data', 'results'] as const) {
      const layouts = this.layouts.filter((l) => l.source.bucket === kind);
      if (layouts.length === 0) continue;
      const bucket = buckets[kind];
      bucket.enableEventBridgeNotification();
      new events.Rule(this, kind === 'data' ? 'LakeObjectCreated' : 'ResultsObjectCreated', {
        description: `New objects of the lake's ${kind} sources: their partitions are registered in Glue`,
        eventPattern: {
          source: ['aws.s3'],
          detailType: ['Object Created'],
          detail: {
            bucket: { name: [bucket.bucketName] },
            object: { key: layouts.map((l) => eventKeyFilter(l)) },
          },
        },
        targets: [new targets.SfnStateMachine(this.partitionRegistrar)],
      });
    }

    // Athena: a workgroup whose settings clients cannot override, results encrypted in their own bucket.
    this.athenaResultsKey = new kms.Key(this, 'AthenaResultsKey', {
      description: 'edgefleet Athena query results encryption key',
      enableKeyRotation: true,
    });
    this.athenaResultsBucket = new s3.Bucket(this, 'AthenaResultsBucket', {
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: this.athenaResultsKey,
      bucketKeyEnabled: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      serverAccessLogsBucket: props.accessLogsBucket,
      serverAccessLogsPrefix: ATHENA_RESULTS_ACCESS_LOG_PREFIX,
      lifecycleRules: [
        {
          id: 'expire-query-results',
          expiration: Duration.days(ATHENA_RESULTS_EXPIRATION_DAYS),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
    });
    this.workGroup = new athena.CfnWorkGroup(this, 'WorkGroup', {
      name: LAKE_WORKGROUP_NAME,
      description: `edgefleet data lake: query the views of the ${LAKE_DATABASE_NAME} database`,
      state: 'ENABLED',
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        engineVersion: { selectedEngineVersion: ATHENA_ENGINE_VERSION },
        resultConfiguration: {
          outputLocation: `s3://${this.athenaResultsBucket.bucketName}/`,
          expectedBucketOwner: Aws.ACCOUNT_ID,
          encryptionConfiguration: { encryptionOption: 'SSE_KMS', kmsKey: this.athenaResultsKey.keyArn },
        },
      },
    });
  }
}
