/**
 * The DuckDB views of the lake, as SQL text built from `LAKE_TABLES` (cloud/rules/lake.ts): one view per
 * table, the `UNION ALL BY NAME` of one `read_json` per source over the local S3's files
 * (`{dataDir}/s3/{bucket}/{key}`).
 *
 * - Every view has exactly the table's columns and then its partitions, in the layout's order, with the
 *   declared types (`columns=` and `hive_types=` are explicit, nothing is sniffed from the data): a missing
 *   field is NULL, and a value of the wrong type fails the query with DuckDB's message, which names the
 *   file. Malformed JSON fails the same way (`ignore_errors=false`): a query never skips data silently.
 * - Partition values come from the key only: `name=value` segments (hive partitioning) or the plain
 *   segment `pathColumns` points at, cut out of the file name. A record field with a partition's name
 *   (the telemetry rule adds `thing` to every record) is not read, so the key's value wins.
 * - File names starting with `.` or `_` are left out, as the Hive connector of Trino (Athena's engine)
 *   leaves hidden files out. The local S3 puts objects into place by rename from `s3-tmp/`, so nothing
 *   partial is ever visible under `s3/`.
 * - A source without files reads as an empty relation of the same columns (DuckDB refuses a glob that
 *   matches nothing); the engine decides which when it opens.
 */
import { sep } from 'node:path';
import type { LakeColumn, LakeColumnType, LakeSource, LakeTable } from '../../rules/lake.js';
import { LakeLayoutError } from './errors.js';

/** DuckDB types of the layout's column types. */
export const DUCKDB_TYPES: Readonly<Record<LakeColumnType, string>> = {
  string: 'VARCHAR',
  bigint: 'BIGINT',
  double: 'DOUBLE',
  boolean: 'BOOLEAN',
  json: 'JSON',
};

/** The file-name column `read_json` adds where a source needs it (never a column of a view). */
export const FILE_COLUMN = '__lake_file';

export interface LakeBuckets {
  /** Bucket of the sources with `bucket: 'data'`. */
  data: string;
  /** Bucket of the sources with `bucket: 'results'`. */
  results: string;
}

export const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;
export const quoteString = (s: string): string => `'${s.replaceAll("'", "''")}'`;

/** A path as a literal glob: `*`, `?` and `[` become one-character classes. */
export const escapeGlob = (path: string): string => path.replace(/[*?[]/g, (c) => `[${c}]`);

/** A table's columns as its view has them: the data columns, then the partitions. */
export const viewColumns = (table: LakeTable): readonly LakeColumn[] => [
  ...table.columns,
  ...table.partitions,
];

function partitionOf(table: LakeTable, name: string): LakeColumn {
  const p = table.partitions.find((c) => c.name === name);
  if (!p) throw new LakeLayoutError(`table ${table.name}: ${name} is not a partition of the table`);
  return p;
}

/** Checks what the views rely on; a failure is a bug in the layout, named in the message. */
export function checkLayout(tables: readonly LakeTable[]): void {
  const names = new Set<string>();
  for (const table of tables) {
    const where = `table ${table.name}`;
    if (!/^[a-z][a-z0-9_]*$/.test(table.name)) {
      throw new LakeLayoutError(`${where}: a view name must be lower case letters, digits and _`);
    }
    if (names.has(table.name)) throw new LakeLayoutError(`${where}: defined twice`);
    names.add(table.name);
    // Athena folds names to lower case and DuckDB matches them case-insensitively: unique either way.
    const seen = new Set<string>();
    for (const c of viewColumns(table)) {
      const folded = c.name.toLowerCase();
      if (seen.has(folded)) throw new LakeLayoutError(`${where}: column ${c.name} is defined twice`);
      seen.add(folded);
    }
    if (table.sources.length === 0) throw new LakeLayoutError(`${where}: no sources`);
    for (const source of table.sources) {
      const at = `${where}, source ${source.id}`;
      if (source.glob.includes('**')) {
        throw new LakeLayoutError(`${at}: ** is not supported (path columns count segments)`);
      }
      const segments = source.glob.split('/');
      for (const h of source.hiveColumns) {
        partitionOf(table, h);
        if (!segments.some((s) => s.startsWith(`${h}=`))) {
          throw new LakeLayoutError(`${at}: hive column ${h} has no ${h}=... segment in ${source.glob}`);
        }
      }
      for (const [name, n] of Object.entries(source.pathColumns)) {
        partitionOf(table, name);
        if (!Number.isInteger(n) || n < 1 || n > segments.length) {
          throw new LakeLayoutError(`${at}: path column ${name} points at segment ${n} of ${source.glob}`);
        }
      }
      for (const p of table.partitions) {
        const hive = source.hiveColumns.includes(p.name);
        const path = Object.hasOwn(source.pathColumns, p.name);
        if (hive === path) {
          throw new LakeLayoutError(
            `${at}: partition ${p.name} must come from exactly one of hiveColumns and pathColumns`,
          );
        }
      }
    }
  }
}

/**
 * The file glob of a source: `{s3Root}/{bucket}/{glob}` with the root and bucket taken literally, and
 * file names starting with `.` or `_` left out.
 */
export function sourcePattern(s3Root: string, buckets: LakeBuckets, source: LakeSource): string {
  const bucket = source.bucket === 'data' ? buckets.data : buckets.results;
  const segments = source.glob.split('/');
  const last = segments.length - 1;
  if (segments[last]!.startsWith('*')) segments[last] = `[!._]${segments[last]}`;
  const root = s3Root.split(sep).join('/').replace(/\/+$/, '');
  return `${escapeGlob(root)}/${escapeGlob(bucket)}/${segments.join('/')}`;
}

/**
 * SQL of segment `n` (1-based) of an object key whose glob has `segments` segments, cut from the end of
 * the file name that `read_json` reports, so that the data dir's own path never matters.
 */
function pathSegmentSql(n: number, segments: number): string {
  const pattern = `([^/]*)(?:/[^/]*){${segments - n}}$`;
  return `regexp_extract(${quoteIdent(FILE_COLUMN)}, ${quoteString(pattern)}, 1)`;
}

/** The SELECT of one source: `read_json` over `pattern` (which must match at least one file). */
export function sourceSql(table: LakeTable, source: LakeSource, pattern: string): string {
  const pathColumns = Object.entries(source.pathColumns);
  const columns = table.columns.map((c) => `${quoteString(c.name)}: ${quoteString(DUCKDB_TYPES[c.type])}`);
  const args = [
    quoteString(pattern),
    source.format === 'ndjson-gzip'
      ? `format='newline_delimited', compression='gzip'`
      : `format='unstructured', compression='uncompressed'`,
    'records=true',
    `columns={${columns.join(', ')}}`,
    'ignore_errors=false',
  ];
  if (source.hiveColumns.length > 0) {
    const hiveTypes = source.hiveColumns.map(
      (h) => `${quoteString(h)}: ${quoteString(DUCKDB_TYPES[partitionOf(table, h).type])}`,
    );
    args.push('hive_partitioning=true', `hive_types={${hiveTypes.join(', ')}}`, 'hive_types_autocast=false');
  } else {
    args.push('hive_partitioning=false');
  }
  if (pathColumns.length > 0) args.push(`filename=${quoteString(FILE_COLUMN)}`);

  const segmentCount = source.glob.split('/').length;
  const select = [
    ...table.columns.map((c) => quoteIdent(c.name)),
    ...table.partitions.map((p) => {
      const n = source.pathColumns[p.name];
      if (n === undefined) return quoteIdent(p.name);
      return `CAST(${pathSegmentSql(n, segmentCount)} AS ${DUCKDB_TYPES[p.type]}) AS ${quoteIdent(p.name)}`;
    }),
  ];
  return `SELECT ${select.join(', ')} FROM read_json(${args.join(', ')})`;
}

/** The SELECT of a source without files: no rows, the same columns and types. */
export function emptySql(table: LakeTable): string {
  const select = viewColumns(table).map(
    (c) => `CAST(NULL AS ${DUCKDB_TYPES[c.type]}) AS ${quoteIdent(c.name)}`,
  );
  return `SELECT ${select.join(', ')} WHERE false`;
}

/** The statements that create a table's view from its sources' SELECTs, with comments from the layout. */
export function viewStatements(table: LakeTable, parts: readonly string[]): string[] {
  const view = quoteIdent(table.name);
  const columns = viewColumns(table)
    .map((c) => quoteIdent(c.name))
    .join(', ');
  const union = parts.map((p) => `(${p})`).join(' UNION ALL BY NAME ');
  return [
    `CREATE OR REPLACE VIEW ${view} AS SELECT ${columns} FROM (${union})`,
    `COMMENT ON VIEW ${view} IS ${quoteString(table.description)}`,
    ...viewColumns(table).map(
      (c) => `COMMENT ON COLUMN ${view}.${quoteIdent(c.name)} IS ${quoteString(c.comment)}`,
    ),
  ];
}
