/**
 * The local Athena: an in-memory DuckDB with one view per table of the lake layout (views.ts) over the
 * local S3's files. Sources are resolved when the engine opens (a source without files yet becomes an
 * empty relation), so one engine serves one CLI invocation; open another to see new prefixes.
 *
 * DuckDB runs with extension auto-install and auto-load off (its json and parquet extensions are built
 * in) and in UTC, so that timestamps without an offset and `epoch_ms` read the same on every machine.
 */
import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  DuckDBArrayValue,
  type DuckDBConnection,
  DuckDBDecimalValue,
  DuckDBInstance,
  DuckDBListValue,
  DuckDBMapValue,
  type DuckDBResultReader,
  DuckDBStructValue,
  DuckDBTimestampMillisecondsValue,
  DuckDBTimestampNanosecondsValue,
  DuckDBTimestampSecondsValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  type DuckDBType,
  DuckDBTypeId,
  DuckDBUnionValue,
  type DuckDBValue,
} from '@duckdb/node-api';
import type { Logger } from 'pino';
import { z } from 'zod';
import { LAKE_TABLES, type LakeTable } from '../../rules/lake.js';
import { LOCAL_DATA_BUCKET, LOCAL_RESULTS_BUCKET } from '../../rules/resources.js';
import { LakeClosedError, LakeConfigError, LakeError, LakeOpenError, LakeQueryError } from './errors.js';
import { LakeJson, type LakeObject, type LakeResult, type LakeValue } from './values.js';
import {
  checkLayout,
  emptySql,
  quoteIdent,
  quoteString,
  sourcePattern,
  sourceSql,
  viewStatements,
} from './views.js';

/** S3 bucket names as S3 accepts them (3-63 lower-case letters, digits, `.` and `-`). */
const BucketName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a bucket name (3-63 of a-z 0-9 . -)');

const OptionsSchema = z.object({
  dataDir: z.string().min(1, 'is required'),
  dataBucket: BucketName.default(LOCAL_DATA_BUCKET),
  resultsBucket: BucketName.default(LOCAL_RESULTS_BUCKET),
});

export interface LakeEngineOptions {
  /** The local cloud's data dir (the local S3 keeps objects under `{dataDir}/s3/{bucket}/`). */
  dataDir: string;
  /** Bucket of the layout's `data` sources (default LOCAL_DATA_BUCKET). */
  dataBucket?: string;
  /** Bucket of the layout's `results` sources (default LOCAL_RESULTS_BUCKET). */
  resultsBucket?: string;
  /** The tables to make views of (default LAKE_TABLES). */
  tables?: readonly LakeTable[];
  logger?: Logger;
}

export interface LakeSourceInfo {
  id: string;
  /** The file glob the source reads. */
  pattern: string;
  /** Whether any file matched when the engine opened (if not, the source is an empty relation). */
  hasFiles: boolean;
}

export interface LakeViewInfo {
  name: string;
  description: string;
  sources: LakeSourceInfo[];
}

export interface LakeTableInfo {
  name: string;
  description: string;
  rows: number;
}

/** DuckDB's message without the hint about `read_json` options, which the views set, not the analyst. */
function duckdbMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message
    .replace(/^Failed to extract statements: /, '')
    .split('\n')
    .filter((line) => !line.startsWith("Try setting 'auto_detect'"))
    .join('\n')
    .trim();
}

export class LakeEngine {
  private closed = false;

  private constructor(
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
    /** The views, as created when the engine opened. */
    readonly views: readonly LakeViewInfo[],
  ) {}

  static async open(options: LakeEngineOptions): Promise<LakeEngine> {
    const parsed = OptionsSchema.safeParse(options);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new LakeConfigError(`invalid ${String(issue.path[0] ?? 'options')}: ${issue.message}`);
    }
    const { dataDir, dataBucket, resultsBucket } = parsed.data;
    const tables = options.tables ?? LAKE_TABLES;
    checkLayout(tables);
    const s3Root = join(resolve(dataDir), 's3');
    if (!isDirectory(dataDir)) throw new LakeConfigError(`data dir ${dataDir} does not exist`);
    if (!isDirectory(s3Root)) {
      throw new LakeConfigError(
        `${dataDir} holds no local S3 (no s3/ directory): is it the data dir of a local cloud?`,
      );
    }

    let instance: DuckDBInstance;
    try {
      instance = await DuckDBInstance.create(':memory:', {
        autoinstall_known_extensions: 'false',
        autoload_known_extensions: 'false',
      });
    } catch (err) {
      throw new LakeOpenError(`cannot start DuckDB: ${duckdbMessage(err)}`, { cause: err });
    }
    let connection: DuckDBConnection | undefined;
    try {
      connection = await instance.connect();
      await connection.run(`SET TimeZone = 'UTC'`);
      const views: LakeViewInfo[] = [];
      for (const table of tables) {
        const sources: LakeSourceInfo[] = [];
        const parts: string[] = [];
        for (const source of table.sources) {
          const pattern = sourcePattern(s3Root, { data: dataBucket, results: resultsBucket }, source);
          const found = await connection.runAndReadAll(
            `SELECT count(*) FROM (SELECT 1 FROM glob(${quoteString(pattern)}) LIMIT 1)`,
          );
          const hasFiles = Number(found.getRows()[0]?.[0] ?? 0) > 0;
          sources.push({ id: source.id, pattern, hasFiles });
          if (hasFiles) parts.push(sourceSql(table, source, pattern));
        }
        if (parts.length === 0) parts.push(emptySql(table));
        for (const statement of viewStatements(table, parts)) await connection.run(statement);
        views.push({ name: table.name, description: table.description, sources });
        options.logger?.debug({ view: table.name, sources }, 'lake view created');
      }
      return new LakeEngine(instance, connection, views);
    } catch (err) {
      connection?.closeSync();
      instance.closeSync();
      if (err instanceof LakeError) throw err;
      throw new LakeOpenError(`cannot create the lake views: ${duckdbMessage(err)}`, { cause: err });
    }
  }

  /** Runs a statement (or several: the result is the last one's). */
  async query(sql: string): Promise<LakeResult> {
    if (this.closed) throw new LakeClosedError('the lake engine is closed');
    try {
      const reader = await this.runAll(sql);
      const types = reader.columnTypes();
      const columns = reader.columnNames().map((name, i) => ({ name, type: typeName(types[i]!) }));
      const rows = reader.getRows().map((row) => row.map((v, i) => toLakeValue(v, types[i]!)));
      return { columns, rows };
    } catch (err) {
      throw new LakeQueryError(duckdbMessage(err), sql, { cause: err });
    }
  }

  /** Runs every statement of `sql` in order; the reader of the last one. */
  private async runAll(sql: string): Promise<DuckDBResultReader> {
    const statements = await this.connection.extractStatements(sql).catch((err: unknown) => {
      // A parse error comes with DuckDB's message; SQL without any statement (`;`) without one.
      if (err instanceof Error && err.message.startsWith('Failed to extract statements')) throw err;
      throw new Error('no SQL statement to run', { cause: err });
    });
    let reader: DuckDBResultReader | undefined;
    for (let i = 0; i < statements.count; i++) {
      const prepared = await statements.prepare(i);
      try {
        if (i < statements.count - 1) await prepared.run();
        else reader = await prepared.runAndReadAll();
      } finally {
        prepared.destroySync();
      }
    }
    if (!reader) throw new Error('no statement to run');
    return reader;
  }

  /** The views with their row counts (reads every file). */
  async tables(): Promise<LakeTableInfo[]> {
    const out: LakeTableInfo[] = [];
    for (const view of this.views) {
      const r = await this.query(`SELECT count(*) FROM ${quoteIdent(view.name)}`);
      out.push({ name: view.name, description: view.description, rows: Number(r.rows[0]?.[0] ?? 0) });
    }
    return out;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.connection.closeSync();
    this.instance.closeSync();
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function typeName(type: DuckDBType): string {
  return type.alias ?? type.toString();
}

const NANOS_PER_MS = 1_000_000n;

/** ISO 8601 of a timestamp in ns since the epoch (UTC); `Z` only for TIMESTAMPTZ. */
function isoTimestamp(nanos: bigint, zoned: boolean): string | undefined {
  let ms = nanos / NANOS_PER_MS;
  let sub = nanos % NANOS_PER_MS;
  if (sub < 0n) {
    ms -= 1n;
    sub += NANOS_PER_MS;
  }
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) return undefined;
  let iso = date.toISOString().slice(0, -1);
  if (sub !== 0n) iso += String(sub).padStart(6, '0').replace(/0+$/, '');
  return zoned ? `${iso}Z` : iso;
}

function timestampNanos(value: DuckDBValue): bigint | undefined {
  if (value instanceof DuckDBTimestampValue || value instanceof DuckDBTimestampTZValue) {
    return value.isFinite ? value.micros * 1000n : undefined;
  }
  if (value instanceof DuckDBTimestampSecondsValue) {
    return value.isFinite ? value.seconds * 1_000_000_000n : undefined;
  }
  if (value instanceof DuckDBTimestampMillisecondsValue) {
    return value.isFinite ? value.millis * NANOS_PER_MS : undefined;
  }
  if (value instanceof DuckDBTimestampNanosecondsValue) return value.isFinite ? value.nanos : undefined;
  return undefined;
}

/** A DuckDB value as a {@link LakeValue}, guided by its type (see values.ts). */
export function toLakeValue(value: DuckDBValue, type: DuckDBType): LakeValue {
  if (value === null) return null;
  switch (type.typeId) {
    case DuckDBTypeId.VARCHAR:
      return type.alias === 'JSON' ? new LakeJson(String(value)) : String(value);
    case DuckDBTypeId.DECIMAL:
      if (value instanceof DuckDBDecimalValue) return value.width <= 15 ? value.toDouble() : value.toString();
      break;
    case DuckDBTypeId.TIMESTAMP:
    case DuckDBTypeId.TIMESTAMP_S:
    case DuckDBTypeId.TIMESTAMP_MS:
    case DuckDBTypeId.TIMESTAMP_NS:
    case DuckDBTypeId.TIMESTAMP_TZ: {
      const nanos = timestampNanos(value);
      const iso =
        nanos === undefined ? undefined : isoTimestamp(nanos, type.typeId === DuckDBTypeId.TIMESTAMP_TZ);
      return iso ?? String(value);
    }
    case DuckDBTypeId.LIST:
    case DuckDBTypeId.ARRAY:
      if (value instanceof DuckDBListValue || value instanceof DuckDBArrayValue) {
        return value.items.map((v) => toLakeValue(v, type.valueType));
      }
      break;
    case DuckDBTypeId.STRUCT:
      if (value instanceof DuckDBStructValue) {
        const out: LakeObject = {};
        type.entryNames.forEach((name, i) => {
          out[name] = toLakeValue(value.entries[name] ?? null, type.entryTypes[i]!);
        });
        return out;
      }
      break;
    case DuckDBTypeId.MAP:
      if (value instanceof DuckDBMapValue) {
        const out: LakeObject = {};
        for (const e of value.entries) out[String(e.key)] = toLakeValue(e.value, type.valueType);
        return out;
      }
      break;
    case DuckDBTypeId.UNION:
      if (value instanceof DuckDBUnionValue) {
        const member = type.memberTypes[type.tagMemberIndexes[value.tag] ?? -1];
        return member ? toLakeValue(value.value, member) : String(value.value);
      }
      break;
  }
  if (typeof value === 'boolean' || typeof value === 'number' || typeof value === 'bigint') return value;
  return String(value);
}
