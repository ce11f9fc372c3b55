/**
 * The data lake of the CDK app (cloud/cdk/lake.ts), synthesized once: the Firehose delivery stream is
 * TELEMETRY_DELIVERY, its role may write only under lake/, the telemetry rule feeds it, every LakeTable
 * source has a Glue table whose partitions the registrar adds, every LakeTable is an Athena view with
 * exactly its columns, and the workgroup and lifecycle are as designed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CfnResource } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import {
  ATHENA_ENGINE_VERSION,
  ATHENA_RESULTS_ACCESS_LOG_PREFIX,
  ATHENA_RESULTS_EXPIRATION_DAYS,
  DYNAMIC_PARTITIONING_RETRY_SECONDS,
  eventKeyFilter,
  LAKE_DATABASE_NAME,
  LAKE_TRANSITIONS,
  LAKE_WORKGROUP_NAME,
  LakeLayoutError,
  type LakeSourceLayout,
  lakeBucketPrefixes,
  lakeLayouts,
  type PrestoViewDefinition,
  partitionValuesExpression,
  partitionValuesOfKey,
  sourceLayout,
  TELEMETRY_DELIVERY_LOG_STREAM,
} from '../../cloud/cdk/lake.js';
import { buildApp, type EdgefleetStack } from '../../cloud/cdk/stack.js';
import { RULES } from '../../cloud/rules/definitions.js';
import {
  FIREHOSE_DELIVERY_ROLE_NAME,
  firehoseDeliveryRolePolicy,
  LAKE_TABLES,
  type LakeTable,
  TELEMETRY_DELIVERY,
  TELEMETRY_DELIVERY_STREAM,
} from '../../cloud/rules/lake.js';

type Json = Record<string, unknown>;
interface CfnTemplate {
  Resources: Record<string, { Type: string; Properties?: Json; DependsOn?: string[] }>;
  Outputs: Record<string, { Value: unknown }>;
}

const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': 'eu-central-1',
  'AWS::AccountId': '123456789012',
  'AWS::StackName': 'Edgefleet',
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
let layouts: LakeSourceLayout[];

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'edgefleet-cdk-lake-'));
  const context = (
    JSON.parse(readFileSync(new URL('../../cdk.json', import.meta.url), 'utf8')) as { context: object }
  ).context;
  const built = buildApp({ appProps: { outdir, context } });
  stack = built.stack;
  template = built.app.synth().getStackArtifact(stack.artifactId).template as CfnTemplate;
  layouts = lakeLayouts();
});

afterAll(() => {
  rmSync(outdir, { recursive: true, force: true });
});

const logicalId = (c: IConstruct) => stack.getLogicalId((c.node.defaultChild ?? c) as CfnResource);
const ofType = (type: string) => Object.entries(template.Resources).filter(([, r]) => r.Type === type);
const props = (id: string): Json => {
  const r = template.Resources[id];
  if (!r) throw new Error(`no resource ${id}`);
  return r.Properties ?? {};
};
const dataBucket = () => `<${logicalId(stack.dataLakeBucket)}>`;
const dataKeyArn = () => `<${logicalId(stack.dataLakeKey)}.Arn>`;

describe('Firehose delivery stream', () => {
  const stream = () => {
    const streams = ofType('AWS::KinesisFirehose::DeliveryStream');
    expect(streams).toHaveLength(1);
    return evaluate(streams[0]![1].Properties) as Json;
  };

  test('is TELEMETRY_DELIVERY: DirectPut into the lake bucket, prefixes, GZIP and buffering', () => {
    const s = stream();
    expect(s.DeliveryStreamName).toBe(TELEMETRY_DELIVERY.name);
    expect(s.DeliveryStreamType).toBe('DirectPut');
    expect(s.ExtendedS3DestinationConfiguration).toMatchObject({
      BucketARN: `<${logicalId(stack.dataLakeBucket)}.Arn>`,
      RoleARN: `<${logicalId(stack.dataLake.deliveryRole)}.Arn>`,
      Prefix: TELEMETRY_DELIVERY.prefix,
      ErrorOutputPrefix: TELEMETRY_DELIVERY.errorOutputPrefix,
      CompressionFormat: TELEMETRY_DELIVERY.compression,
      BufferingHints: {
        SizeInMBs: TELEMETRY_DELIVERY.bufferingHints.sizeInMBs,
        IntervalInSeconds: TELEMETRY_DELIVERY.bufferingHints.intervalInSeconds,
      },
      EncryptionConfiguration: { KMSEncryptionConfig: { AWSKMSKeyARN: dataKeyArn() } },
      DynamicPartitioningConfiguration: {
        Enabled: true,
        RetryOptions: { DurationInSeconds: DYNAMIC_PARTITIONING_RETRY_SECONDS },
      },
    });
  });

  test('extracts the partition key with the JQ query, and appends no delimiter (the rule does)', () => {
    const dest = stream().ExtendedS3DestinationConfiguration as Json;
    expect(dest.ProcessingConfiguration).toEqual({
      Enabled: true,
      Processors: [
        {
          Type: 'MetadataExtraction',
          Parameters: [
            {
              ParameterName: 'MetadataExtractionQuery',
              ParameterValue: TELEMETRY_DELIVERY.metadataExtractionQuery,
            },
            {
              ParameterName: 'JsonParsingEngine',
              ParameterValue: TELEMETRY_DELIVERY.metadataExtractionJqEngine,
            },
          ],
        },
      ],
    });
    expect(JSON.stringify(dest)).not.toContain('AppendDelimiterToRecord');
    // The partition key the prefix uses is the one the query yields.
    expect(TELEMETRY_DELIVERY.prefix).toContain('!{partitionKeyFromQuery:thing}');
  });

  test('is encrypted with a customer managed key and logs delivery errors', () => {
    const s = stream();
    expect(s.DeliveryStreamEncryptionConfigurationInput).toEqual({
      KeyType: 'CUSTOMER_MANAGED_CMK',
      KeyARN: dataKeyArn(),
    });
    const logging = (s.ExtendedS3DestinationConfiguration as Json).CloudWatchLoggingOptions as Json;
    expect(logging.Enabled).toBe(true);
    const [groupId] = ofType('AWS::Logs::LogGroup').find(
      ([, r]) => r.Properties?.LogGroupName === `/aws/kinesisfirehose/${TELEMETRY_DELIVERY.name}`,
    )!;
    expect(logging.LogGroupName).toBe(`<${groupId}>`);
    const [streamId, logStream] = ofType('AWS::Logs::LogStream')[0]!;
    expect(logging.LogStreamName).toBe(`<${streamId}>`);
    expect(logStream.Properties).toMatchObject({
      LogGroupName: { Ref: groupId },
      LogStreamName: TELEMETRY_DELIVERY_LOG_STREAM,
    });
  });
});

describe('Firehose delivery role', () => {
  const role = () => evaluate(props(logicalId(stack.dataLake.deliveryRole))) as Json;
  const policies = () =>
    Object.fromEntries(
      (role().Policies as { PolicyName: string; PolicyDocument: { Statement: Json[] } }[]).map((p) => [
        p.PolicyName,
        p.PolicyDocument.Statement,
      ]),
    );

  test('is trusted only by Firehose acting for this account', () => {
    expect(role().RoleName).toBe(`Edgefleet-${FIREHOSE_DELIVERY_ROLE_NAME}`);
    expect(role().AssumeRolePolicyDocument).toEqual({
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { Service: 'firehose.amazonaws.com' },
          Action: 'sts:AssumeRole',
          Condition: { StringEquals: { 'aws:SourceAccount': PSEUDO['AWS::AccountId'] } },
        },
      ],
    });
    expect(role().ManagedPolicyArns).toBeUndefined();
    // Its only policies are the inline ones: nothing attaches more.
    const attached = ofType('AWS::IAM::Policy').filter(([, p]) =>
      JSON.stringify(p.Properties?.Roles).includes(logicalId(stack.dataLake.deliveryRole)),
    );
    expect(attached).toEqual([]);
    expect(Object.keys(policies()).sort()).toEqual(['dataKey', 'delivery', 'logs']);
  });

  test('S3: the single-source policy of the local cloud, objects only under lake/', () => {
    const bucket = dataBucket();
    const shared = firehoseDeliveryRolePolicy(bucket, 'aws').Statement;
    // CDK sorts the actions and writes a one-element list as a string.
    const normalize = (s: Json) => ({ ...s, Action: arr(s.Action).map(String).sort() });
    expect(policies().delivery?.map(normalize)).toEqual(shared.map((s) => normalize(s as unknown as Json)));
    for (const s of shared) {
      for (const r of arr(s.Resource)) {
        expect([`arn:aws:s3:::${bucket}/lake/*`, `arn:aws:s3:::${bucket}`]).toContain(r);
      }
    }
    const writes = shared.find((s) => s.Action.includes('s3:PutObject'));
    expect(writes?.Resource).toBe(`arn:aws:s3:::${bucket}/lake/*`);
  });

  test('KMS: the lake key only through S3 and only for the lake bucket; logs: its own log stream', () => {
    const bucketArn = `arn:aws:s3:::${dataBucket()}`;
    expect(policies().dataKey).toEqual([
      {
        Effect: 'Allow',
        Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
        Resource: dataKeyArn(),
        Condition: {
          StringEquals: { 'kms:ViaService': 's3.eu-central-1.amazonaws.com' },
          StringLike: { 'kms:EncryptionContext:aws:s3:arn': [bucketArn, `${bucketArn}/lake/*`] },
        },
      },
    ]);
    const groupId = ofType('AWS::Logs::LogGroup').find(
      ([, r]) => r.Properties?.LogGroupName === `/aws/kinesisfirehose/${TELEMETRY_DELIVERY.name}`,
    )![0];
    expect(policies().logs).toEqual([
      {
        Effect: 'Allow',
        Action: 'logs:PutLogEvents',
        Resource: `arn:aws:logs:eu-central-1:123456789012:log-group:<${groupId}>:log-stream:${TELEMETRY_DELIVERY_LOG_STREAM}`,
      },
    ]);
  });

  test('has no wildcard beyond the lake/ prefix, in actions or resources', () => {
    for (const s of Object.values(policies()).flat()) {
      for (const a of arr(s.Action)) expect(String(a)).not.toContain('*');
      for (const r of arr(s.Resource)) {
        const text = String(r);
        if (text.includes('*')) expect(text).toMatch(/^arn:aws:s3:::<DataLakeBucket[0-9A-F]+>\/lake\/\*$/);
      }
    }
  });
});

describe('telemetry rule into the stream', () => {
  test('the firehose action names the stream, sends each array element (batchMode) ended by a newline', () => {
    const def = RULES.find((r) => r.name === 'edgefleet_telemetry');
    expect(def?.actions).toEqual([
      { type: 'firehose', deliveryStreamName: TELEMETRY_DELIVERY_STREAM, separator: '\n', batchMode: true },
    ]);
    const [, rule] = ofType('AWS::IoT::TopicRule').find(
      ([, r]) => r.Properties?.RuleName === 'edgefleet_telemetry',
    )!;
    const payload = evaluate(rule.Properties?.TopicRulePayload) as { Actions: Json[] };
    const role = stack.topicRules.roles.get('edgefleet_telemetry/firehose')!;
    expect(payload.Actions).toEqual([
      {
        Firehose: {
          DeliveryStreamName: TELEMETRY_DELIVERY.name,
          RoleArn: `<${logicalId(role)}.Arn>`,
          Separator: '\n',
          BatchMode: true,
        },
      },
    ]);
  });

  test("the rule's role may put records (single and batch) into exactly this stream", () => {
    const role = stack.topicRules.roles.get('edgefleet_telemetry/firehose')!;
    const doc = (
      evaluate(props(logicalId(role))) as { Policies: { PolicyDocument: { Statement: Json[] } }[] }
    ).Policies[0]?.PolicyDocument;
    expect(doc?.Statement).toEqual([
      {
        Effect: 'Allow',
        Action: ['firehose:PutRecord', 'firehose:PutRecordBatch'],
        Resource: `<${logicalId(stack.dataLake.telemetryDeliveryStream)}.Arn>`,
      },
    ]);
  });
});

/** A key of a source's layout: the glob with each wildcard filled in. */
function sampleKey(l: LakeSourceLayout, file = 'x'): string {
  const segments = l.source.glob.split('/');
  return segments
    .map((seg, i) => {
      if (i === segments.length - 1) return seg.replace('*', file);
      const k = l.partitionKeys.find((p) => p.segment === i);
      if (!k) return seg;
      const value = k.name === 'dt' ? '2024-05-01' : k.name === 'hour' ? '07' : `${k.name}-1`;
      return k.hive ? `${k.name}=${value}` : value;
    })
    .join('/');
}

describe('Glue tables of the sources', () => {
  const tables = () =>
    new Map(
      ofType('AWS::Glue::Table')
        .map(([, r]) => evaluate(r.Properties) as { TableInput: Json; DatabaseName: string })
        .map((t) => [String(t.TableInput.Name), t]),
    );

  test('the database is the lake database', () => {
    const dbs = ofType('AWS::Glue::Database');
    expect(dbs).toHaveLength(1);
    expect(evaluate(dbs[0]![1].Properties)).toMatchObject({
      CatalogId: PSEUDO['AWS::AccountId'],
      DatabaseInput: { Name: LAKE_DATABASE_NAME },
    });
  });

  test('one table per source of every LakeTable, plus one view per LakeTable, and nothing else', () => {
    const names = [...tables().keys()].sort();
    const expected = [
      ...LAKE_TABLES.map((t) => t.name),
      ...LAKE_TABLES.flatMap((t) => t.sources.map((s) => sourceLayout(t, s).glueName)),
    ].sort();
    expect(names).toEqual(expected);
    expect(LAKE_TABLES.flatMap((t) => t.sources)).toHaveLength(6);
    expect(layouts.map((l) => l.glueName).sort()).toEqual([
      'src_analysis',
      'src_events',
      'src_frames',
      'src_frames_identify',
      'src_telemetry_batches',
      'src_telemetry_stream',
    ]);
  });

  test.each(LAKE_TABLES.flatMap((t) => t.sources.map((s) => [`${t.name}/${s.id}`, t, s] as const)))(
    '%s: JSON SerDe over the declared columns and types, partitioned like its keys, at its prefix',
    (_label, table, source) => {
      const l = sourceLayout(table, source);
      const t = tables().get(l.glueName)!;
      expect(t.DatabaseName).toBe(`<${logicalId(stack.dataLake.database)}>`);
      const bucket = source.bucket === 'data' ? dataBucket() : `<${logicalId(stack.resultsBucket)}>`;
      expect(t.TableInput).toEqual({
        Name: l.glueName,
        Description: `${table.name} (${source.id}): ${source.glob}`,
        TableType: 'EXTERNAL_TABLE',
        Parameters: {
          EXTERNAL: 'TRUE',
          classification: 'json',
          compressionType: source.format === 'ndjson-gzip' ? 'gzip' : 'none',
          typeOfData: 'file',
        },
        PartitionKeys: l.partitionKeys.map((k) => ({ Name: k.name, Type: k.type, Comment: k.comment })),
        StorageDescriptor: {
          Location: `s3://${bucket}/${source.glob.slice(0, source.glob.indexOf('*')).replace(/[^/]*$/, '')}`,
          Columns: table.columns.map((c) => ({
            Name: c.name.toLowerCase(),
            Type: c.type === 'json' ? 'string' : c.type,
            Comment: c.comment,
          })),
          InputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
          OutputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
          Compressed: source.format === 'ndjson-gzip',
          SerdeInfo: {
            SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe',
            // Malformed JSON fails queries (as in DuckDB) except where images lie beside the sidecars.
            Parameters: {
              'case.insensitive': 'true',
              'ignore.malformed.json': String(table.name === 'frames'),
            },
          },
        },
      });
      // Every partition column of the LakeTable is a partition of the source, with its declared type.
      for (const p of table.partitions) {
        expect(l.partitionKeys.find((k) => k.name === p.name)?.type).toBe(p.type);
      }
      // Partitions are registered in the catalog, not projected (see cloud/cdk/lake.ts).
      expect(Object.keys(t.TableInput.Parameters as Json).filter((k) => k.startsWith('projection.'))).toEqual(
        [],
      );
      expect(t.TableInput.Parameters).not.toHaveProperty('storage.location.template');
    },
  );

  test('partition columns follow the key: hive segments, path columns, and the camera segment', () => {
    const keys = (id: string) =>
      layouts
        .find((l) => l.source.id === id)!
        .partitionKeys.map((k) => `${k.name}@${k.segment}${k.hive ? '=' : ''}`);
    expect(keys('stream')).toEqual(['thing@2=', 'dt@3=', 'hour@4=']);
    expect(keys('batches')).toEqual(['thing@1', 'dt@3=', 'hour@4=']);
    expect(keys('events')).toEqual(['thing@1', 'dt@2=']);
    expect(keys('frames')).toEqual(['thing@1', 'path_segment_3@2', 'dt@3=', 'hour@4=']);
    expect(keys('frames-identify')).toEqual(['thing@1', 'path_segment_3@2', 'dt@3=', 'hour@4=']);
    expect(keys('analysis')).toEqual(['thing@1', 'path_segment_3@2', 'dt@3=']);
  });
});

describe('partition layout of object keys', () => {
  test.each(LAKE_TABLES.flatMap((t) => t.sources.map((s) => [`${t.name}/${s.id}`, t, s] as const)))(
    '%s: a key of the glob yields its partition values; keys off the layout yield none',
    (_label, table, source) => {
      const l = sourceLayout(table, source);
      const key = sampleKey(l, source.glob.endsWith('.ndjson.gz') ? 'b1' : 'x1');
      const values = partitionValuesOfKey(l, key);
      expect(values).toEqual(
        l.partitionKeys.map((k) =>
          k.name === 'dt' ? '2024-05-01' : k.name === 'hour' ? '07' : `${k.name}-1`,
        ),
      );
      expect(partitionValuesOfKey(l, key.replace('2024-05-01', 'yesterday'))).toBeUndefined();
      expect(partitionValuesOfKey(l, key.replace(/\/[^/]*$/, '/sub/x.json'))).toBeUndefined();
      expect(partitionValuesOfKey(l, `other/${key}`)).toBeUndefined();
    },
  );

  test('frame images beside the sidecars are not frame metadata', () => {
    const frames = layouts.find((l) => l.source.id === 'frames')!;
    expect(partitionValuesOfKey(frames, 'frames/gw-1/cam-1/dt=2024-05-01/hour=07/f1.json')).toEqual([
      'gw-1',
      'cam-1',
      '2024-05-01',
      '07',
    ]);
    expect(partitionValuesOfKey(frames, 'frames/gw-1/cam-1/dt=2024-05-01/hour=07/f1.jpg')).toBeUndefined();
  });

  test('the registrar computes the same segments in JSONata', () => {
    const stream = layouts.find((l) => l.source.id === 'stream')!;
    const frames = layouts.find((l) => l.source.id === 'frames')!;
    expect(partitionValuesExpression(stream)).toBe(
      "{% ($s := $split($states.input.detail.object.key, '/'); [$substringAfter($s[2], '='), $substringAfter($s[3], '='), $substringAfter($s[4], '=')]) %}",
    );
    expect(partitionValuesExpression(frames)).toBe(
      "{% ($s := $split($states.input.detail.object.key, '/'); [$s[1], $s[2], $substringAfter($s[3], '='), $substringAfter($s[4], '=')]) %}",
    );
  });

  test('a layout that does not fit its table is refused at synthesis', () => {
    const base = LAKE_TABLES[0]!;
    const src = base.sources[1]!;
    const broken = (glob: string, over: Partial<typeof src> = {}): LakeTable => ({
      ...base,
      sources: [{ ...src, glob, ...over }],
    });
    const noHour = broken('raw/*/telemetry/dt=*/*.gz');
    expect(() => sourceLayout(noHour, noHour.sources[0]!)).toThrow(LakeLayoutError);
    expect(() => sourceLayout(noHour, noHour.sources[0]!)).toThrow(/partition column 'hour'/);
    const noThing = broken('raw/x/telemetry/dt=*/hour=*/*.gz', { pathColumns: {} });
    expect(() => sourceLayout(noThing, noThing.sources[0]!)).toThrow(/partition column 'thing'/);
    const mixed = broken('raw/a*/telemetry/dt=*/hour=*/*.gz');
    expect(() => sourceLayout(mixed, mixed.sources[0]!)).toThrow(/mixes a wildcard/);
  });
});

describe('Athena views of the LakeTables', () => {
  const views = () =>
    new Map(
      ofType('AWS::Glue::Table')
        .map(([id, r]) => [id, evaluate(r.Properties) as { TableInput: Json }] as const)
        .filter(([, t]) => t.TableInput.TableType === 'VIRTUAL_VIEW')
        .map(([id, t]) => [String(t.TableInput.Name), { id, input: t.TableInput }]),
    );
  const decode = (text: unknown): PrestoViewDefinition => {
    const m = /^\/\* Presto View: ([A-Za-z0-9+/=]+) \*\/$/.exec(String(text));
    if (!m) throw new Error(`not a Presto view: ${String(text)}`);
    return JSON.parse(Buffer.from(m[1]!, 'base64').toString('utf8')) as PrestoViewDefinition;
  };

  test('every LakeTable name is a view', () => {
    expect([...views().keys()].sort()).toEqual(LAKE_TABLES.map((t) => t.name).sort());
  });

  test.each(LAKE_TABLES.map((t) => [t.name, t] as const))(
    '%s: Presto view encoding, exactly the LakeTable columns, UNION ALL of its source tables',
    (name, table) => {
      const { id, input } = views().get(name)!;
      expect(input).toMatchObject({
        TableType: 'VIRTUAL_VIEW',
        Parameters: { presto_view: 'true', comment: 'Presto View' },
        PartitionKeys: [],
        ViewExpandedText: '/* Presto View */',
      });
      const columns = [...table.columns, ...table.partitions];
      expect((input.StorageDescriptor as { Columns: unknown }).Columns).toEqual(
        columns.map((c) => ({
          Name: c.name.toLowerCase(),
          Type: c.type === 'json' ? 'string' : c.type,
          Comment: c.comment,
        })),
      );
      const view = decode(input.ViewOriginalText);
      expect(view).toMatchObject({ catalog: 'awsdatacatalog', schema: LAKE_DATABASE_NAME });
      expect(view.columns).toEqual(
        columns.map((c) => ({
          name: c.name.toLowerCase(),
          type: c.type === 'bigint' || c.type === 'double' || c.type === 'boolean' ? c.type : 'varchar',
        })),
      );
      const selects = view.originalSql.split('\nUNION ALL\n');
      const own = layouts.filter((l) => l.table === table);
      expect(selects).toHaveLength(table.sources.length);
      const select = columns.map((c) => `"${c.name.toLowerCase()}"`).join(', ');
      selects.forEach((sql, i) => {
        const l = own[i]!;
        const lines = sql.split('\n');
        expect(lines[0]).toBe(`SELECT ${select}`);
        expect(lines[1]).toBe(`FROM "${LAKE_DATABASE_NAME}"."${l.glueName}"`);
        const file = l.source.glob.split('/').at(-1)!;
        expect(lines.slice(2)).toEqual(
          file === '*' ? [] : [`WHERE "$path" LIKE '%/${file.replace(/\*/g, '%')}'`],
        );
      });
      // The view is created after the tables it reads.
      expect(template.Resources[id]?.DependsOn?.sort()).toEqual(
        own.map((l) => logicalId(stack.dataLake.sourceTables.get(l.glueName)!)).sort(),
      );
    },
  );

  test('the multi-source tables read all their sources', () => {
    const sql = (name: string) => decode(views().get(name)!.input.ViewOriginalText).originalSql;
    expect(sql('telemetry')).toContain('"src_telemetry_stream"');
    expect(sql('telemetry')).toContain('"src_telemetry_batches"');
    expect(sql('frames')).toContain('"src_frames"\n');
    expect(sql('frames')).toContain('"src_frames_identify"');
  });
});

describe('partition registrar', () => {
  const machine = () => {
    const machines = ofType('AWS::StepFunctions::StateMachine');
    expect(machines).toHaveLength(1);
    const [id, r] = machines[0]!;
    const definition = JSON.parse(String(evaluate(r.Properties?.DefinitionString))) as {
      QueryLanguage: string;
      StartAt: string;
      States: Record<string, Json>;
    };
    return { id, props: evaluate(r.Properties) as Json, definition };
  };

  test('is an Express JSONata state machine with full logging and tracing', () => {
    const { props: p, definition } = machine();
    expect(p.StateMachineType).toBe('EXPRESS');
    expect(definition.QueryLanguage).toBe('JSONata');
    expect(p.TracingConfiguration).toEqual({ Enabled: true });
    expect(p.LoggingConfiguration).toMatchObject({ Level: 'ALL', IncludeExecutionData: false });
  });

  test('routes each source to glue:CreatePartition with the Glue table storage descriptor', () => {
    const { definition } = machine();
    const choice = definition.States[definition.StartAt] as {
      Choices: { Condition: string; Next: string }[];
    };
    expect(choice.Choices).toHaveLength(layouts.length);
    const glueTables = new Map(
      ofType('AWS::Glue::Table').map(([, r]) => {
        const t = evaluate(r.Properties) as { TableInput: { Name: string; StorageDescriptor: Json } };
        return [t.TableInput.Name, t.TableInput.StorageDescriptor];
      }),
    );
    layouts.forEach((l, i) => {
      const { Condition, Next } = choice.Choices[i]!;
      const bucket = l.source.bucket === 'data' ? dataBucket() : `<${logicalId(stack.resultsBucket)}>`;
      expect(Condition).toBe(
        `{% $states.input.detail.bucket.name = '${bucket}' and $contains($states.input.detail.object.key, /${l.keyPattern}/) %}`,
      );
      const task = definition.States[Next] as {
        Resource: string;
        Arguments: {
          TableName: string;
          DatabaseName: string;
          PartitionInput: { Values: string; StorageDescriptor: Json };
        };
        Catch: { ErrorEquals: string[] }[];
        End: boolean;
      };
      expect(task.Resource).toBe('arn:aws:states:::aws-sdk:glue:createPartition');
      expect(task.Arguments.DatabaseName).toBe(LAKE_DATABASE_NAME);
      expect(task.Arguments.TableName).toBe(l.glueName);
      expect(task.Arguments.PartitionInput.Values).toBe(partitionValuesExpression(l));
      const { Location, ...sd } = task.Arguments.PartitionInput.StorageDescriptor;
      const { Location: _tableLocation, ...tableSd } = glueTables.get(l.glueName)!;
      expect(sd).toEqual(tableSd);
      expect(String(Location)).toContain(`'s3://${bucket}/'`);
      expect(task.Catch).toEqual([
        { ErrorEquals: ['Glue.AlreadyExistsException'], Next: 'PartitionRegistered' },
      ]);
      expect(task.End).toBe(true);
    });
  });

  test('may create partitions only in the lake tables', () => {
    const role = stack.dataLake.partitionRegistrar.role;
    const [, policy] = ofType('AWS::IAM::Policy').find(([, p]) =>
      JSON.stringify(p.Properties?.Roles).includes(logicalId(role)),
    )!;
    const statements = (evaluate(policy.Properties) as { PolicyDocument: { Statement: Json[] } })
      .PolicyDocument.Statement;
    const glueStatements = statements.filter((s) => arr(s.Action).some((a) => String(a).startsWith('glue:')));
    const arn = (resource: string) => `arn:aws:glue:eu-central-1:123456789012:${resource}`;
    expect(glueStatements).toEqual([
      {
        Effect: 'Allow',
        Action: 'glue:CreatePartition',
        Resource: [
          arn('catalog'),
          arn(`database/${LAKE_DATABASE_NAME}`),
          ...layouts.map((l) => arn(`table/${LAKE_DATABASE_NAME}/${l.glueName}`)).sort(),
        ],
      },
    ]);
  });

  test("S3 sends created objects to EventBridge; a rule per bucket starts the registrar on the sources' keys", () => {
    const { id } = machine();
    const rules = ofType('AWS::Events::Rule').map(([, r]) => evaluate(r.Properties) as Json);
    expect(rules).toHaveLength(2);
    for (const [kind, bucket] of [
      ['data', dataBucket()],
      ['results', `<${logicalId(stack.resultsBucket)}>`],
    ] as const) {
      const rule = rules.find((r) => JSON.stringify(r.EventPattern).includes(bucket))!;
      expect(rule.EventPattern).toEqual({
        source: ['aws.s3'],
        'detail-type': ['Object Created'],
        detail: {
          bucket: { name: [bucket] },
          object: { key: layouts.filter((l) => l.source.bucket === kind).map(eventKeyFilter) },
        },
      });
      expect((rule.Targets as Json[])[0]).toMatchObject({ Arn: `<${id}>` });
    }
    expect(layouts.map(eventKeyFilter)).toEqual([
      { prefix: 'lake/telemetry/' },
      { wildcard: 'raw/*/telemetry/*.ndjson.gz' },
      { wildcard: 'events/*.json' },
      { wildcard: 'frames/*.json' },
      { wildcard: 'frames-identify/*.json' },
      { wildcard: 'results/*.json' },
    ]);
    const notified = ofType('Custom::S3BucketNotifications')
      .map(([, r]) => evaluate(r.Properties) as { BucketName: string; NotificationConfiguration: Json })
      .filter((n) => n.NotificationConfiguration.EventBridgeConfiguration !== undefined)
      .map((n) => n.BucketName)
      .sort();
    expect(notified).toEqual([dataBucket(), `<${logicalId(stack.resultsBucket)}>`].sort());
  });
});

describe('Athena', () => {
  test('the workgroup enforces its configuration, encrypts results with its key and publishes metrics', () => {
    const groups = ofType('AWS::Athena::WorkGroup');
    expect(groups).toHaveLength(1);
    expect(evaluate(groups[0]![1].Properties)).toMatchObject({
      Name: LAKE_WORKGROUP_NAME,
      State: 'ENABLED',
      WorkGroupConfiguration: {
        EnforceWorkGroupConfiguration: true,
        PublishCloudWatchMetricsEnabled: true,
        EngineVersion: { SelectedEngineVersion: ATHENA_ENGINE_VERSION },
        ResultConfiguration: {
          OutputLocation: `s3://<${logicalId(stack.dataLake.athenaResultsBucket)}>/`,
          ExpectedBucketOwner: PSEUDO['AWS::AccountId'],
          EncryptionConfiguration: {
            EncryptionOption: 'SSE_KMS',
            KmsKey: `<${logicalId(stack.dataLake.athenaResultsKey)}.Arn>`,
          },
        },
      },
    });
    expect(props(logicalId(stack.dataLake.athenaResultsKey))).toMatchObject({ EnableKeyRotation: true });
  });

  test('the results bucket is private, KMS-encrypted, TLS-only, logged, and expires results', () => {
    const id = logicalId(stack.dataLake.athenaResultsBucket);
    expect(evaluate(props(id))).toMatchObject({
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          {
            BucketKeyEnabled: true,
            ServerSideEncryptionByDefault: {
              SSEAlgorithm: 'aws:kms',
              KMSMasterKeyID: `<${logicalId(stack.dataLake.athenaResultsKey)}.Arn>`,
            },
          },
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LoggingConfiguration: {
        DestinationBucketName: `<${logicalId(stack.accessLogsBucket)}>`,
        LogFilePrefix: ATHENA_RESULTS_ACCESS_LOG_PREFIX,
      },
      LifecycleConfiguration: {
        Rules: [
          {
            Id: 'expire-query-results',
            Status: 'Enabled',
            ExpirationInDays: ATHENA_RESULTS_EXPIRATION_DAYS,
            AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
          },
        ],
      },
    });
    const [, policy] = ofType('AWS::S3::BucketPolicy').find(([, p]) =>
      JSON.stringify(p.Properties?.Bucket).includes(id),
    )!;
    expect(JSON.stringify(policy.Properties)).toContain('"aws:SecureTransport":"false"');
  });
});

describe('lake bucket lifecycle', () => {
  test('keeps the existing rule and moves each lake prefix to STANDARD_IA, then GLACIER_IR', () => {
    const lifecycle = (props(logicalId(stack.dataLakeBucket)) as { LifecycleConfiguration: Json })
      .LifecycleConfiguration;
    expect(lakeBucketPrefixes()).toEqual(['lake/', 'raw/', 'events/', 'frames/', 'frames-identify/']);
    expect(lifecycle).toEqual({
      TransitionDefaultMinimumObjectSize: 'all_storage_classes_128K',
      Rules: [
        {
          Id: 'abort-incomplete-multipart-uploads',
          Status: 'Enabled',
          AbortIncompleteMultipartUpload: { DaysAfterInitiation: 7 },
        },
        ...lakeBucketPrefixes().map((prefix) => ({
          Id: `tier-${prefix.slice(0, -1)}`,
          Prefix: prefix,
          Status: 'Enabled',
          Transitions: [
            { StorageClass: 'STANDARD_IA', TransitionInDays: LAKE_TRANSITIONS.infrequentAccessAfterDays },
            {
              StorageClass: 'GLACIER_IR',
              TransitionInDays: LAKE_TRANSITIONS.glacierInstantRetrievalAfterDays,
            },
          ],
        })),
      ],
    });
    // Athena reads GLACIER_IR like STANDARD; nothing goes to the asynchronous archive classes.
    expect(JSON.stringify(lifecycle)).not.toMatch(/"(GLACIER|DEEP_ARCHIVE)"/);
  });
});

describe('outputs', () => {
  test('name the delivery stream, the Glue database and the Athena workgroup', () => {
    const o = template.Outputs;
    expect(o.TelemetryDeliveryStreamName?.Value).toEqual({
      Ref: logicalId(stack.dataLake.telemetryDeliveryStream),
    });
    expect(o.LakeDatabaseName?.Value).toEqual({ Ref: logicalId(stack.dataLake.database) });
    expect(o.AthenaWorkGroupName?.Value).toEqual({ Ref: logicalId(stack.dataLake.workGroup) });
  });
});
