/** The SQL of the lake views, built from the layout in cloud/rules/lake.ts. */
import { describe, expect, it } from '@jest/globals';
import { LakeLayoutError } from '../../cloud/local/lake/errors.js';
import {
  checkLayout,
  emptySql,
  escapeGlob,
  sourcePattern,
  sourceSql,
  viewStatements,
} from '../../cloud/local/lake/views.js';
import { LAKE_TABLES, type LakeTable } from '../../cloud/rules/lake.js';

const telemetry = LAKE_TABLES.find((t) => t.name === 'telemetry')!;
const buckets = { data: 'edgefleet-data', results: 'edgefleet-results' };

describe('layout', () => {
  it('LAKE_TABLES can be turned into views', () => {
    expect(() => checkLayout(LAKE_TABLES)).not.toThrow();
  });

  it('a partition must come from the key, once', () => {
    const bad: LakeTable = {
      ...telemetry,
      sources: [{ ...telemetry.sources[1]!, pathColumns: {} }],
    };
    expect(() => checkLayout([bad])).toThrow(LakeLayoutError);
    expect(() => checkLayout([bad])).toThrow(/partition thing/);
    const twice: LakeTable = {
      ...telemetry,
      sources: [{ ...telemetry.sources[0]!, pathColumns: { thing: 3 } }],
    };
    expect(() => checkLayout([twice])).toThrow(/exactly one/);
  });

  it('column names must differ when folded to lower case', () => {
    const bad: LakeTable = {
      ...telemetry,
      columns: [...telemetry.columns, { name: 'SensorID', type: 'string', comment: '' }],
    };
    expect(() => checkLayout([bad])).toThrow(/SensorID is defined twice/);
  });
});

describe('sources', () => {
  it('read the bucket directory, leaving hidden file names out, with the data dir taken literally', () => {
    expect(sourcePattern('/data/s3', buckets, telemetry.sources[0]!)).toBe(
      '/data/s3/edgefleet-data/lake/telemetry/thing=*/dt=*/hour=*/[!._]*',
    );
    expect(sourcePattern("/tmp/we[ir]d*dir's?/s3/", buckets, telemetry.sources[1]!)).toBe(
      "/tmp/we[[]ir]d[*]dir's[?]/s3/edgefleet-data/raw/*/telemetry/dt=*/hour=*/[!._]*.ndjson.gz",
    );
    expect(escapeGlob('a[b]*?')).toBe('a[[]b][*][?]');
  });

  it('declare every column and hive partition type, and cut path columns from the file name', () => {
    const sql = sourceSql(telemetry, telemetry.sources[1]!, "/d/it's/x");
    expect(sql).toContain("read_json('/d/it''s/x', format='newline_delimited', compression='gzip'");
    expect(sql).toContain(
      "columns={'sensorId': 'VARCHAR', 'ts': 'BIGINT', 'seq': 'BIGINT', 'temperature': 'DOUBLE', 'vibration': 'DOUBLE', 'operatorId': 'VARCHAR', 'ingest_ts': 'BIGINT'}",
    );
    expect(sql).toContain("hive_types={'dt': 'VARCHAR', 'hour': 'BIGINT'}");
    expect(sql).toContain('ignore_errors=false');
    // raw/{thing}/telemetry/dt=/hour=/{file}: the thing is the 5th segment from the end.
    expect(sql).toContain(
      `CAST(regexp_extract("__lake_file", '([^/]*)(?:/[^/]*){4}$', 1) AS VARCHAR) AS "thing"`,
    );
    expect(sql).not.toContain("'thing': 'VARCHAR'");
  });

  it('an empty source has the same columns and no rows', () => {
    expect(emptySql(telemetry)).toBe(
      'SELECT CAST(NULL AS VARCHAR) AS "sensorId", CAST(NULL AS BIGINT) AS "ts", CAST(NULL AS BIGINT) AS "seq", ' +
        'CAST(NULL AS DOUBLE) AS "temperature", CAST(NULL AS DOUBLE) AS "vibration", CAST(NULL AS VARCHAR) AS "operatorId", ' +
        'CAST(NULL AS BIGINT) AS "ingest_ts", CAST(NULL AS VARCHAR) AS "thing", CAST(NULL AS VARCHAR) AS "dt", ' +
        'CAST(NULL AS BIGINT) AS "hour" WHERE false',
    );
  });

  it('a view is the UNION ALL BY NAME of its sources, with comments from the layout', () => {
    const [create, comment, ...columns] = viewStatements(telemetry, ['SELECT 1', 'SELECT 2']);
    expect(create).toMatch(
      /^CREATE OR REPLACE VIEW "telemetry" AS SELECT "sensorId", .*"hour" FROM \(\(SELECT 1\) UNION ALL BY NAME \(SELECT 2\)\)$/,
    );
    expect(comment).toBe(`COMMENT ON VIEW "telemetry" IS '${telemetry.description}'`);
    expect(columns).toHaveLength(telemetry.columns.length + telemetry.partitions.length);
  });
});
